"""Helpers the example scripts share: run `tt` like a user would, make user-style data.

The examples drive the `tt` executable through `subprocess` and print every command
line first (`$ tt ...`), so the output reads like a shell session you can copy.
With `--dry-run` they only print the commands.

The datasets are what a user would have on disk: image files plus a JSON Lines
file of captions, or a folder tree `ROOT/<class>/<image>`. Their content is the
synthetic coloured-shapes set of `tt_cli.demo.shapes` (one shape of one colour per
image, captions that name colour, shape, size and position), so everything runs
offline at a small scale.

Example:
>>> rows = write_jsonl_dataset("/tmp/shapes/train", count=8, seed=0, image_size=32)  # doctest: +SKIP
>>> tt(["data", "convert", "/tmp/shapes/train/captions.jsonl", "/tmp/shapes/train_shards"])  # doctest: +SKIP
$ tt data convert /tmp/shapes/train/captions.jsonl /tmp/shapes/train_shards
"""

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from PIL import Image

from tt_cli.demo.shapes import CLASS_NAMES, shape_rows


def tt_executable():
    """The `tt` next to this Python (a venv's bin/), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "tt")
    if os.path.isfile(beside):
        return beside
    found = shutil.which("tt")
    if found is None:
        sys.exit("error: the `tt` executable is not installed; run `pip install -e .` in the repository.")
    return found


def tt(args, dry_run=False, env=None):
    """Prints `$ tt ARGS` and runs it; exits with tt's code when it fails."""
    args = [str(a) for a in args]
    print("$ " + shlex.join(["tt", *args]), flush=True)
    if dry_run:
        return
    start = time.perf_counter()
    result = subprocess.run([tt_executable(), *args], env=env)
    if result.returncode != 0:
        sys.exit(f"error: `tt {args[0]}` failed with exit code {result.returncode} (see above).")
    print(
        f"# tt {args[0]} {args[1] if args[1:] and not args[1].startswith('-') else ''}".rstrip()
        + f": {time.perf_counter() - start:.1f} s",
        flush=True,
    )


def read_json(path, dry_run=False):
    """A JSON file a `tt ... --json FILE` wrote (None in a dry run, where nothing was written)."""
    if dry_run:
        return None
    with open(path) as f:
        return json.load(f)


def _save_image(png_bytes, path):
    """Writes a shapes image as PNG or JPEG (by `path`'s extension), as a camera or scraper would."""
    image = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    image.save(path, quality=95) if path.endswith(".jpg") else image.save(path)


def write_jsonl_dataset(folder, count, seed, image_size):
    """Writes `folder`/images/*.png|jpg and `folder`/captions.jsonl; returns the jsonl path.

    Each line is {"image": relative path, "captions": [...], "label": class name}, the
    JSON Lines layout `tt data convert` reads. Every other image is a JPEG.
    """
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    jsonl = os.path.join(folder, "captions.jsonl")
    with open(jsonl, "w") as f:
        for i, row in enumerate(shape_rows(count, seed=seed, image_size=image_size)):
            name = f"images/{row['key']}.{'jpg' if i % 2 else 'png'}"
            _save_image(row["image"], os.path.join(folder, name))
            record = {"image": name, "captions": row["texts"], "label": CLASS_NAMES[row["label"]]}
            f.write(json.dumps(record) + "\n")
    return jsonl


def write_image_folder(root, count, seed, image_size):
    """Writes a labelled image folder tree `root`/<class name>/<key>.png; returns `root`."""
    for row in shape_rows(count, seed=seed, image_size=image_size):
        class_dir = os.path.join(root, CLASS_NAMES[row["label"]])
        os.makedirs(class_dir, exist_ok=True)
        _save_image(row["image"], os.path.join(class_dir, f"{row['key']}.png"))
    return root


def write_templates(path, templates=("a {}", "{}", "a picture of a {}")):
    """Zero-shot prompt templates in the captions' own wording, one per line (for --templates)."""
    with open(path, "w") as f:
        f.write("\n".join(templates) + "\n")
    return path


def convert_shapes_splits(data_dir, num_train, num_val, image_size, dry_run=False):
    """Writes train/val JSON Lines datasets and converts them (`tt data convert`).

    Returns the train and val shard directories. Seeds 1 and 2 keep the splits disjoint.
    """
    shards = {}
    for split, count, seed in (("train", num_train, 1), ("val", num_val, 2)):
        if not dry_run:
            write_jsonl_dataset(os.path.join(data_dir, split), count, seed=seed, image_size=image_size)
        shards[split] = os.path.join(data_dir, f"{split}_shards")
        tt(["data", "convert", os.path.join(data_dir, split, "captions.jsonl"), shards[split], "--overwrite"], dry_run)
    return shards["train"], shards["val"]
