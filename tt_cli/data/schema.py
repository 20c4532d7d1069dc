"""The shard schema (DESIGN.md §3) and `dataset.json`, shared by both sides.

This module imports neither TensorFlow nor the `tfrecord` package, so the
TF-free `tt data` commands and the `tf.data` pipeline can both use it.

Example:
>>> info = DatasetInfo(num_examples=10, num_shards=2, source="demo")
>>> shard_name(0, 2)
'shard-00000-of-00002.tfrecord'
"""

import dataclasses
import glob
import json
import os

from tt_cli.errors import InvalidValueError, UnreadableDataError
from tt_cli.jsonfile import write_json

SCHEMA_VERSION = 1
DATASET_JSON = "dataset.json"

# Feature keys of each tf.train.Example.
IMAGE = "image"  # bytes: encoded JPEG or PNG
TEXTS = "texts"  # bytes list: one or more UTF-8 captions
LABEL = "label"  # int64, optional
KEY = "key"  # bytes: the source's own id
H_EMBEDDING = "h_embedding"  # float list, optional (tt data embed)

# The largest image (width x height) any part of tt reads: `tt data convert` rejects larger
# ones as `too_large`, `tt data inspect` reports them, and the tf.data pipelines skip them
# without decoding. Pillow's own default bomb limit (2**30 / 4 / 3, about 89.5 megapixels);
# also far below TensorFlow's PNG limit (width x height x 3 must fit an int32).
MAX_IMAGE_PIXELS = 89_478_485


def shard_name(index, num_shards):
    return f"shard-{index:05d}-of-{num_shards:05d}.tfrecord"


@dataclasses.dataclass
class DatasetInfo:
    """What `dataset.json` records beside the shards."""

    num_examples: int
    num_shards: int
    source: str = ""
    class_names: list = None
    schema_version: int = SCHEMA_VERSION
    # Set by `tt data embed`: {"pretrained": ..., "preprocessing": {...}, "dim": ...}
    h_embedding: dict = None
    shards: list = None  # file names, relative to the dataset directory

    def to_json(self):
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def write_info(directory, info):
    write_json(os.path.join(directory, DATASET_JSON), info.to_json())


def read_info(directory):
    """Reads `dataset.json` from a dataset directory, or fails with one clear line."""
    path = os.path.join(directory, DATASET_JSON)
    if not os.path.isfile(path):
        raise InvalidValueError(f"{directory}: no {DATASET_JSON} here; make shards with `tt data convert`.")
    try:
        with open(path) as f:
            raw = json.load(f)
        fields = {f.name for f in dataclasses.fields(DatasetInfo)}
        return DatasetInfo(**{k: v for k, v in raw.items() if k in fields})
    except (ValueError, TypeError) as e:
        raise UnreadableDataError(f"{path}: not a valid {DATASET_JSON} ({e}).")


def resolve_shards(path):
    """Returns (shard paths, DatasetInfo or None) for a dataset directory or a glob.

    A directory must hold `dataset.json`; a glob or single file is taken as is.
    """
    if os.path.isdir(path):
        info = read_info(path)
        names = info.shards or sorted(
            os.path.basename(p) for p in glob.glob(os.path.join(path, "*.tfrecord"))
        )
        files = [os.path.join(path, n) for n in names]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise UnreadableDataError(f"{path}: shard {missing[0]} listed in {DATASET_JSON} is missing.")
    else:
        files, info = sorted(glob.glob(path)), None
    if not files:
        raise UnreadableDataError(f"{path}: no TFRecord shards found.")
    return files, info
