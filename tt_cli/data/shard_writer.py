"""Writes TFRecord shards of `tf.train.Example` without TensorFlow.

Uses the `tfrecord` package (never import this module next to TensorFlow: the
two register the same protobuf names). A shard is written under a temporary
name and renamed when complete, so a shard file that exists is a finished one.
Records are built by `example_codec.encode_example`.

Example:
>>> with ShardWriter("/tmp/shard-00000-of-00001.tfrecord") as w:   # doctest: +SKIP
...     w.write(encode_example(image=jpeg, texts=["a cat"], key="cat.jpg"))
"""

import os
import struct

from tfrecord.writer import TFRecordWriter


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
