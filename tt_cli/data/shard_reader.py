"""Reads TFRecord shards and their Examples without TensorFlow.

The record framing lives in `records` (shared with the TensorFlow side):
`iter_records` always checks each length, `iter_records(verify=True)` each data
CRC too, and a bad record raises `CorruptRecord` naming the file and byte offset.

Example:
>>> for offset, data in iter_records("shard-00000-of-00001.tfrecord"):   # doctest: +SKIP
...     features = parse_example(data)
"""

from google.protobuf.message import DecodeError
from tfrecord import example_pb2

from tt_cli.data import schema
from tt_cli.data.records import CorruptRecord, iter_records  # noqa: F401  (the TF-free readers' entry points)
from tt_cli.errors import InvalidValueError


def parse_example(data):
    """Returns {feature name: list of values} (bytes, floats or ints) of one Example."""
    example = example_pb2.Example()
    example.ParseFromString(data)
    features = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        features[name] = list(getattr(feature, kind).value) if kind else []
    return features


def feature_kind(data):
    """Returns {feature name: 'bytes' | 'float' | 'int64'} of one serialized Example."""
    example = example_pb2.Example()
    example.ParseFromString(data)
    names = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64", None: "empty"}
    return {name: names[f.WhichOneof("kind")] for name, f in example.features.feature.items()}


def read_captions(path):
    """All captions (str) of the shards at `path`, a dataset folder or a glob; one clear
    line naming the file and offset when a record is corrupt."""
    files, _ = schema.resolve_shards(path)
    captions = []
    for file in files:
        try:
            for offset, data in iter_records(file):
                try:
                    example = parse_example(data)
                except DecodeError:
                    raise CorruptRecord(file, offset, "not a tf.train.Example") from None
                captions.extend(t.decode("utf-8", "replace") for t in example.get(schema.TEXTS, []))
        except CorruptRecord as e:
            raise InvalidValueError(f"{e}; run `tt data inspect --verify {path}` to check every shard.") from None
    return captions
