"""Writes TFRecord shards of `tf.train.Example` without TensorFlow.

Uses the `tfrecord` package (never import this module next to TensorFlow: the
two register the same protobuf names). A shard is written under a temporary
name and renamed when complete, so a shard file that exists is a finished one.

Example:
>>> with ShardWriter("/tmp/shard-00000-of-00001.tfrecord") as w:   # doctest: +SKIP
...     w.write(example_bytes(image=jpeg, texts=["a cat"], key="cat.jpg"))
"""

import os
import struct

from tfrecord.writer import TFRecordWriter

from tt_cli.data import schema


def example_bytes(image, texts, key, label=None, h_embedding=None):
    """Serializes one example with the schema's feature keys."""
    datum = {
        schema.IMAGE: (image, "byte"),
        schema.TEXTS: ([t.encode("utf-8") for t in texts], "byte"),
        schema.KEY: (key.encode("utf-8", "surrogateescape"), "byte"),
    }
    if label is not None:
        datum[schema.LABEL] = (int(label), "int")
    if h_embedding is not None:
        datum[schema.H_EMBEDDING] = (list(map(float, h_embedding)), "float")
    return TFRecordWriter.serialize_tf_example(datum)


class ShardWriter:
    """Appends serialized records to `path + '.tmp'`; `close()` renames it to `path`."""

    def __init__(self, path):
        self.path = path
        self._writer = TFRecordWriter(path + ".tmp")
        self._writer_file = self._writer.file
        self.count = 0

    def write(self, record):
        # TFRecordWriter.write takes a dict; records here are already serialized.
        length = struct.pack("<Q", len(record))
        self._writer_file.write(length)
        self._writer_file.write(TFRecordWriter.masked_crc(length))
        self._writer_file.write(record)
        self._writer_file.write(TFRecordWriter.masked_crc(record))
        self.count += 1

    def close(self):
        self._writer_file.flush()
        os.fsync(self._writer_file.fileno())
        self._writer.close()
        os.replace(self.path + ".tmp", self.path)

    def abort(self):
        self._writer.close()
        if os.path.exists(self.path + ".tmp"):
            os.remove(self.path + ".tmp")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
