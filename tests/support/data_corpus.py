"""Builds tiny source corpora for the `tt data` tests, and runs `tt` in a subprocess.

The test process imports TensorFlow to read shards back, so the TF-free
commands (`convert`, `inspect`, `tokenizer`), which import the `tfrecord`
package, always run in a `tt` subprocess here.
"""

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib

import numpy as np
from PIL import Image

# Wide columns: rich would wrap the messages the tests look for at 80.
ENV = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2", HF_HUB_OFFLINE="1", COLUMNS="200")


def tt_command():
    exe = shutil.which("tt") or os.path.join(os.path.dirname(sys.executable), "tt")
    return [exe] if os.path.exists(exe) else [sys.executable, "-c", "from tt_cli.main import cli; cli()"]


def run_tt(*args, check=True, timeout=None):
    """Runs `tt ARGS` in a subprocess. `timeout`: for inputs that would hang a regression (then it fails)."""
    command = tt_command() + [a if isinstance(a, bytes) else str(a) for a in args]
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, env=ENV, timeout=timeout, errors="backslashreplace"
    )
    if check and result.returncode != 0:
        raise AssertionError(f"tt {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr}")
    return result


def pixels(seed, width, height, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def save_image(path, array, fmt=None, mode=None):
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, fmt)
    return path


def png_of_zeros(path, width, height):
    """A valid RGB PNG of width x height black pixels, compressed row by row: a few hundred
    KB on disk however large it is (a decompression bomb when it is large)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row = zlib.compressobj(9), b"\0" * (1 + 3 * width)  # filter byte 0, then black pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def encoded(array, fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def decode_pil(path_or_bytes):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else open(path_or_bytes, "rb").read()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def good_rows(root, n=6, with_jpeg=True):
    """n small RGB images (PNG, and the last one JPEG) with 1-2 captions and a class name each."""
    rows = []
    for i in range(n):
        width, height = 16 + 3 * i, 40 - 2 * i
        array = pixels(i, width, height)
        jpeg = with_jpeg and i == n - 1
        name = f"img{i}.{'jpg' if jpeg else 'png'}"
        save_image(os.path.join(root, "images", name), array)
        captions = [f"a photo number {i}"] + ([f"second caption of image {i}"] if i % 2 else [])
        rows.append({"image": f"images/{name}", "captions": captions, "label": ["cat", "dog"][i % 2], "key": name})
    return rows


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def write_wds(path, rows, root):
    with tarfile.open(path, "w") as tar:
        for row in rows:
            stem = row["key"].rsplit(".", 1)[0]
            ext = row["image"].rsplit(".", 1)[1]
            tar.add(os.path.join(root, row["image"]), arcname=f"{stem}.{ext}")
            text = json.dumps({"captions": row["captions"]}).encode()
            info = tarfile.TarInfo(f"{stem}.json")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))


def read_back(out_dir):
    """Reads every example of a converted dataset through tf.data: {key: dict}."""
    import tensorflow as tf

    from tt_cli.data.schema import read_info

    info = read_info(str(out_dir))
    files = [os.path.join(out_dir, n) for n in info.shards]
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "texts": tf.io.VarLenFeature(tf.string),
        "key": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    }

    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, spec)
        return {
            "pixels": tf.io.decode_image(ex["image"], channels=3, expand_animations=False),
            "image": ex["image"],
            "texts": tf.sparse.to_dense(ex["texts"]),
            "key": ex["key"],
            "label": ex["label"],
        }

    rows = {}
    for ex in tf.data.TFRecordDataset(files).map(parse):
        key = ex["key"].numpy().decode()
        assert key not in rows, f"duplicate key {key}"
        rows[key] = {
            "pixels": ex["pixels"].numpy(),
            "image": ex["image"].numpy(),
            "texts": [t.decode() for t in ex["texts"].numpy()],
            "label": int(ex["label"].numpy()),
        }
    return info, rows
