"""Reads TFRecord shards without TensorFlow, checking CRCs on request.

A TFRecord is: length (uint64), masked CRC32C of the length, the data, masked
CRC32C of the data. `iter_records(verify=True)` checks both CRCs and raises
`CorruptRecord` naming the file and the byte offset of the bad record.

Example:
>>> for offset, data in iter_records("shard-00000-of-00001.tfrecord"):   # doctest: +SKIP
...     features = parse_example(data)
"""

import struct

from tfrecord import example_pb2
from tfrecord.writer import TFRecordWriter

from tt_cli.data import schema
from tt_cli.errors import UserError


class CorruptRecord(Exception):
    def __init__(self, path, offset, why):
        super().__init__(f"{path}: corrupt record at byte offset {offset}: {why}")
        self.path, self.offset, self.why = path, offset, why


def iter_records(path, verify=False):
    """Yields (byte offset, record bytes) for every record of one file."""
    with open(path, "rb") as f:
        offset = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise CorruptRecord(path, offset, "file ends inside a record header")
            length_bytes, length_crc = header[:8], header[8:]
            if verify and TFRecordWriter.masked_crc(length_bytes) != length_crc:
                raise CorruptRecord(path, offset, "length CRC mismatch")
            (length,) = struct.unpack("<Q", length_bytes)
            data = f.read(length)
            data_crc = f.read(4)
            if len(data) != length or len(data_crc) != 4:
                raise CorruptRecord(path, offset, f"file ends inside a record of {length} bytes")
            if verify and TFRecordWriter.masked_crc(data) != data_crc:
                raise CorruptRecord(path, offset, "data CRC mismatch")
            yield offset, data
            offset += 16 + length


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
    """All captions (str) of the shards at `path`, a dataset folder or a glob."""
    files, _ = schema.resolve_shards(path)
    captions = []
    for file in files:
        try:
            for _, data in iter_records(file):
                captions.extend(t.decode("utf-8", "replace") for t in parse_example(data).get(schema.TEXTS, []))
        except CorruptRecord as e:
            raise UserError(f"{e}; run `tt data inspect --verify`.") from None
    return captions
