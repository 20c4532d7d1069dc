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

from tt_cli import storage
from tt_cli.ownership import ContentStamp


class ShardWriter:
    """Appends serialized records to `path + '.tmp'`; `close()` renames it to `path`."""

    def __init__(self, path):
        self.path = path
        self._file = storage.open(path + ".tmp", "wb")
        self.count = 0
        self.content = ContentStamp()  # the shard's hash for tt's manifest, taken as the bytes go out

    def write(self, record):
        # The framing of TFRecordWriter.write, which takes a dict; records here are already serialized.
        length = struct.pack("<Q", len(record))
        for part in (length, TFRecordWriter.masked_crc(length), record, TFRecordWriter.masked_crc(record)):
            self._file.write(part)
            self.content.update(part)
        self.count += 1

    def close(self):
        self._file.flush()
        if not storage.is_url(self.path):  # on disk: the bytes are durable before the rename
            os.fsync(self._file.fileno())
        self._file.close()  # an object store uploads here
        storage.replace(self.path + ".tmp", self.path)

    def abort(self):
        self._file.close()
        if storage.exists(self.path + ".tmp"):
            storage.remove(self.path + ".tmp")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
