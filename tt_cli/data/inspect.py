"""`tt data inspect`: what a set of shards holds, and whether it is intact.

Reads every record once (without TensorFlow): counts per shard, the features
present and their types, caption statistics, a label histogram and a few
sample rows. Every image's header (not its pixels) is read with the same
check `convert` uses: images over `schema.MAX_IMAGE_PIXELS`, which convert
rejects and training skips, and headers Pillow cannot parse are counted and
named in a warning. Shards that are not what `dataset.json` recorded (another
size, not a regular file: `shard_files.shard_problems`) are listed as `damaged`,
and a FIFO or device is never opened.

With `verify=True` each record's two CRC32C checksums are checked, and every
image is decoded as training decodes it (`validate.check_stored_image`: the
formats TensorFlow reads, the pixel limit): a corrupt file is named with the byte
offset of its bad record (reading of that file stops there, since later record
boundaries are unknown), and an image training would stop at with its key.

Example:
>>> import json, os, tempfile
>>> from PIL import Image
>>> from tt_cli.data.convert import convert
>>> folder = tempfile.mkdtemp()
>>> Image.new("RGB", (8, 8), "red").save(os.path.join(folder, "red.png"))
>>> with open(os.path.join(folder, "captions.jsonl"), "w") as f:
...     print(json.dumps({"image": "red.png", "captions": ["a red square", "red"]}), file=f)
>>> _ = convert(os.path.join(folder, "captions.jsonl"), os.path.join(folder, "shards"), workers=1)
>>> summary = inspect_shards(os.path.join(folder, "shards"), verify=True)
>>> summary["num_examples"], summary["corrupt"]
(1, [])
"""

import collections
import os

import numpy as np

from tt_cli import storage
from tt_cli.data import schema, validate
from tt_cli.data.records import CorruptRecord
from tt_cli.data.shard_files import shard_problems
from tt_cli.data.shard_reader import iter_examples

_KINDS = {bytes: "bytes", float: "float", int: "int64"}
MAX_LISTED = 100  # images training cannot decode, listed by key (all are counted)


def _describe_image(data):
    """'PNG 64x48', 'PNG 30000x30000 (too large)' or 'unreadable', as convert would judge the header."""
    header = validate.image_header(data)
    if header is None:
        return "unreadable"
    kind, width, height = header
    return f"{kind} {width}x{height}" + (" (too large)" if validate.too_many_pixels(width, height) else "")


def _stats(values):
    if not values:
        return None
    a = np.asarray(values, dtype=np.float64)
    return {
        "min": int(a.min()),
        "mean": round(float(a.mean()), 2),
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "max": int(a.max()),
    }


def inspect_shards(path, verify=False, samples=3):
    """Returns a JSON-able summary of the shards at `path` (a dataset folder or a glob)."""
    files, info = schema.resolve_shards(path, check=False)  # every problem is listed below instead
    damaged = shard_problems(files, info)
    shards, corrupt, undecodable, features = [], [], [], {}
    caption_chars, caption_words, captions_per_example = [], [], []
    labels, sample_rows, embedding_dims = collections.Counter(), [], collections.Counter()
    total, image_problems = 0, collections.Counter()
    first_problem = {}
    for file in files:
        count = 0
        try:
            storage.check_regular(file)
        except storage.NotARegularFile:  # listed in `damaged`; never opened
            shards.append({"file": os.path.basename(file), "examples": 0, "bytes": 0})
            continue
        try:
            for example in iter_examples(file, verify=verify):
                count += 1
                for name, values in example.items():
                    kind = _KINDS.get(type(values[0]), "empty") if values else "empty"
                    entry = features.setdefault(name, {"type": kind, "examples": 0})
                    entry["examples"] += 1
                texts = [t.decode("utf-8", "replace") for t in example.get(schema.TEXTS, [])]
                captions_per_example.append(len(texts))
                caption_chars.extend(len(t) for t in texts)
                caption_words.extend(len(t.split()) for t in texts)
                if example.get(schema.LABEL):
                    labels[int(example[schema.LABEL][0])] += 1
                if example.get(schema.IMAGE):
                    key = example.get(schema.KEY, [b""])[0].decode("utf-8", "replace")
                    problem = _image_problem(example[schema.IMAGE][0], verify)
                    if isinstance(problem, validate.Rejection):  # training would stop here
                        if len(undecodable) < MAX_LISTED:
                            why = f"{problem.reason}: {problem.detail}"
                            undecodable.append({"file": file, "key": key, "why": why})
                        problem = "unreadable"
                    if problem:
                        image_problems[problem] += 1
                        first_problem.setdefault(problem, key)
                if schema.H_EMBEDDING in example:
                    embedding_dims[len(example[schema.H_EMBEDDING])] += 1
                if len(sample_rows) < samples:
                    sample_rows.append(_sample(example, info))
        except CorruptRecord as e:
            corrupt.append({"file": e.path, "offset": e.offset, "why": e.why})
        shards.append({"file": os.path.basename(file), "examples": count, "bytes": storage.getsize(file)})
        total += count
    class_names = info.class_names if info else None
    histogram = [
        {"label": label, "name": class_names[label] if class_names and label < len(class_names) else None, "count": n}
        for label, n in sorted(labels.items())
    ]
    warnings = []
    if info is not None and info.num_examples != total and not corrupt:
        warnings.append(f"dataset.json says {info.num_examples} examples, the shards hold {total}.")
    for problem, count in sorted(image_problems.items()):
        what = (
            f"over the {schema.MAX_IMAGE_PIXELS:,}-pixel limit (training skips them)"
            if problem == "too_large"
            else "that cannot be read as an image (training stops at them)"
        )
        warnings.append(f"{count} image(s) {what}; first: key {first_problem[problem]!r}.")
    return {
        "path": path,
        "num_examples": total,
        "num_shards": len(files),
        "bytes": sum(s["bytes"] for s in shards),
        "shards": shards,
        "features": features,
        "captions_per_example": _stats(captions_per_example),
        "caption_chars": _stats(caption_chars),
        "caption_words": _stats(caption_words),
        "labels": histogram,
        "h_embedding": (info.h_embedding if info and info.h_embedding else None),
        "h_embedding_dims": dict(embedding_dims),
        "dataset_json": info.to_json() if info else None,
        "samples": sample_rows,
        "verified": verify,
        "corrupt": corrupt,
        "damaged": damaged,
        "undecodable": undecodable,
        "images_too_large": image_problems["too_large"],
        "images_unreadable": image_problems["unreadable"],
        "warnings": warnings,
    }


def _image_problem(data, decode=False):
    """'too_large', 'unreadable' or None for one encoded image, from its header alone; with
    `decode`, a `Rejection` for one that training cannot decode (`validate.check_stored_image`)."""
    if decode:
        problem = validate.check_stored_image(data)
        return "too_large" if problem is not None and problem.reason == validate.TOO_LARGE else problem
    header = validate.image_header(data)
    if header is None:
        return "unreadable"
    return "too_large" if validate.too_many_pixels(header[1], header[2]) else None


def _sample(example, info):
    row = {
        "key": example.get(schema.KEY, [b""])[0].decode("utf-8", "replace"),
        "texts": [t.decode("utf-8", "replace") for t in example.get(schema.TEXTS, [])],
    }
    if example.get(schema.IMAGE):
        row["image"] = _describe_image(example[schema.IMAGE][0])
    if example.get(schema.LABEL):
        label = int(example[schema.LABEL][0])
        names = info.class_names if info else None
        row["label"] = f"{label} ({names[label]})" if names and label < len(names) else str(label)
    return row
