"""The shard schema and `dataset.json`: the one owner of the shard format (ARCHITECTURE.md).

This module imports neither TensorFlow nor the `tfrecord` package, so the
TF-free `tt data` commands and the `tf.data` pipeline can both use it. It owns
the feature keys, the one way an Example is built (`build_example`)
and read back as lists (`feature_values`); each side supplies its own protobuf
classes, because TensorFlow and the `tfrecord` package register the same proto
names and can never be imported in one process:

- TensorFlow side: `tf_schema` (feature specs, the one `parse_example` every
  `tf.data` reader maps over, `example_bytes`, `embedding_example_bytes` for the
  `(key, h_embedding)` records of an embedding folder, `with_h_embedding`).
- TF-free side: `example_codec` (`encode_example` / `decode_example` with the
  `tfrecord` package's protobuf).

Example:
>>> info = DatasetInfo(num_examples=10, num_shards=2, source="demo")
>>> shard_name(0, 2)
'shard-00000-of-00002.tfrecord'
"""

import dataclasses
import json
import os

from tt_cli import storage
from tt_cli.data import tfds_catalog
from tt_cli.data.shard_files import check_shard_files
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

NO_LABEL = -1  # what every reader reads as the label of a record without one
# What training needs in every record (H_EMBEDDING too when training reads precomputed embeddings).
TRAINING_FEATURES = (IMAGE, TEXTS)

# The largest image (width x height) any part of tt reads: `tt data convert` rejects larger
# ones as `too_large`, `tt data inspect` reports them, and the tf.data pipelines skip them
# without decoding. Pillow's own default bomb limit (2**30 / 4 / 3, about 89.5 megapixels);
# also far below TensorFlow's PNG limit (width x height x 3 must fit an int32).
MAX_IMAGE_PIXELS = 89_478_485


def build_example(protos, image, texts, key, label=None, h_embedding=None):
    """One serialized `tf.train.Example` of the schema, built with `protos` (the module holding
    Example, Features, Feature, BytesList, Int64List and FloatList: `tf.train` on the TensorFlow
    side, `tfrecord.example_pb2` on the TF-free side), so both sides write the same bytes.
    `key` may be any value; it is stored as its `str`."""

    def feature(kind, values):
        lists = {"bytes_list": protos.BytesList, "int64_list": protos.Int64List, "float_list": protos.FloatList}
        return protos.Feature(**{kind: lists[kind](value=values)})

    features = {
        IMAGE: feature("bytes_list", [image]),
        TEXTS: feature("bytes_list", [t.encode("utf-8") for t in texts]),
        KEY: feature("bytes_list", [str(key).encode("utf-8", "surrogateescape")]),
    }
    if label is not None:
        features[LABEL] = feature("int64_list", [int(label)])
    if h_embedding is not None:
        features[H_EMBEDDING] = feature("float_list", list(map(float, h_embedding)))
    return serialize(protos.Example(features=protos.Features(feature=features)))


def build_embedding_example(protos, key, embedding):
    """One serialized record of an embedding folder (`tt data embed`): the source record's
    `key` (bytes, as stored there) and its `h_embedding`, built with `protos` as above."""
    features = {
        KEY: protos.Feature(bytes_list=protos.BytesList(value=[key])),
        H_EMBEDDING: protos.Feature(float_list=protos.FloatList(value=list(map(float, embedding)))),
    }
    return serialize(protos.Example(features=protos.Features(feature=features)))


def serialize(example):
    """The bytes of an Example, its features in name order. Protobuf's default order of map
    entries varies from process to process; this makes equal Examples equal bytes, whichever
    side or run wrote them."""
    return example.SerializeToString(deterministic=True)


def feature_values(example):
    """{feature name: list of values} (bytes, floats or ints; [] for a feature of no kind)
    of a parsed Example, of either side's protobuf classes."""
    values = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values[name] = list(getattr(feature, kind).value) if kind else []
    return values


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
    # Per shard of `shards`, as written: its records and its bytes (`shard_files` checks them).
    shard_examples: list = None
    shard_bytes: list = None
    # Set on an embedding folder of `tt data embed` (shards of (key, h_embedding) beside a
    # dataset, one per source shard, same names, same record order): the source dataset,
    # {"dataset": absolute path or glob, "num_examples": ..., "shards": [names]}.
    embeddings_of: dict = None
    # A TFDS dataset read where it is (`tfds_source`): {"name", "config", "split", "version",
    # "path" (its prepared folder)}, and how its records map onto the schema (`tfds_catalog.RecordFields`).
    tfds: dict = None
    fields: object = None

    def to_json(self):
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def write_info(directory, info):
    write_json(os.path.join(directory, DATASET_JSON), info.to_json())


def read_info(directory):
    """Reads `dataset.json` from a dataset directory, or fails with one clear line."""
    path = os.path.join(directory, DATASET_JSON)
    if not storage.isfile(path):
        raise InvalidValueError(f"{directory}: no {DATASET_JSON} here; make shards with `tt data convert`.")
    try:
        with storage.open(path) as f:
            raw = json.load(f)
        fields = {f.name for f in dataclasses.fields(DatasetInfo)}
        info = DatasetInfo(**{k: v for k, v in raw.items() if k in fields})
    except (ValueError, TypeError) as e:
        raise UnreadableDataError(f"{path}: not a valid {DATASET_JSON} ({e}).")
    counts = [info.num_examples, *(info.shard_examples or []), *(info.shard_bytes or [])]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise UnreadableDataError(f"{path}: not a valid {DATASET_JSON} (its counts must be whole numbers).")
    return info


def resolve_shards(path, tfds=None, check=True):
    """Returns (shard paths, DatasetInfo or None) for a dataset directory or a glob.

    A directory must hold `dataset.json`; a single file is taken as is, a path that does not
    exist as a glob (`storage.expand`: an existing path is never read as a pattern). With
    `check`, the shards must be intact regular files (`shard_files.check_shard_files`).
    A TFDS dataset `tfds:NAME[/CONFIG]:SPLIT` gives its split's files, read where they are
    (`tfds_source`; needs TensorFlow), under the data directory of `tfds`
    (`tfds_catalog.TfdsOptions`).
    """
    if tfds_catalog.is_tfds(path):
        from tt_cli.data import tfds_source

        return tfds_source.resolve(path, tfds)
    if storage.isdir(path):
        info = read_info(path)
        names = info.shards or storage.names_ending(path, ".tfrecord")
        files = [os.path.join(path, n) for n in names]
        missing = [f for f in files if not storage.lexists(f)]
        if missing:
            raise UnreadableDataError(f"{path}: shard {missing[0]} listed in {DATASET_JSON} is missing.")
    else:
        files, info = storage.expand(path), None
    if not files:
        raise UnreadableDataError(f"{path}: no TFRecord shards found.")
    if check:
        check_shard_files(files, info, path)
    return files, info


def record_fields(info):
    """How the records of the data `info` describes map onto the schema: None for shards
    (the schema itself), a `tfds_catalog.RecordFields` for a TFDS dataset."""
    return info.fields if info is not None else None
