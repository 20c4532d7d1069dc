"""`tt data inspect`: what a set of shards holds, and whether it is intact.

Reads every record once (without TensorFlow): counts per shard, the features
present and their types, caption statistics, a label histogram and a few
sample rows. Every image's header (not its pixels) is read with the same
check `convert` uses: images over `schema.MAX_IMAGE_PIXELS`, which convert
rejects and training skips, and headers Pillow cannot parse are counted and
named in a warning. With `verify=True` each record's two CRC32C checksums are
checked; a corrupt file is named with the byte offset of its bad record
(reading of that file stops there, since later record boundaries are unknown).

Example:
>>> summary = inspect_shards("shards/", verify=True)   # doctest: +SKIP
>>> summary["num_examples"], summary["corrupt"]        # doctest: +SKIP
(998, [])
"""

import collections
import os

import numpy as np

from tt_cli import storage
from tt_cli.data import schema, validate
from tt_cli.data.records import CorruptRecord
from tt_cli.data.shard_reader import iter_examples

_KINDS = {bytes: "bytes", float: "float", int: "int64"}


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
    files, info = schema.resolve_shards(path)
    shards, corrupt, features = [], [], {}
    caption_chars, caption_words, captions_per_example = [], [], []
    labels, sample_rows, embedding_dims = collections.Counter(), [], collections.Counter()
    total, image_problems = 0, collections.Counter()
    first_problem = {}
    for file in files:
        count = 0
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
                    problem = _image_problem(example[schema.IMAGE][0])
                    if problem:
                        image_problems[problem] += 1
                        first_problem.setdefault(problem, example.get(schema.KEY, [b""])[0].decode("utf-8", "replace"))
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
            else "with a header no image reader can parse"
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
        "images_too_large": image_problems["too_large"],
        "images_unreadable": image_problems["unreadable"],
        "warnings": warnings,
    }


def _image_problem(data):
    """'too_large', 'unreadable' or None for one encoded image, from its header alone."""
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
