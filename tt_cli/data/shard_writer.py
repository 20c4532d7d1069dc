"""`ShardWriter`: the one writer of TFRecord files in tt, on both sides of the TF split.

It frames records with `records.frame` and writes them through `tt_cli.storage`, so it
imports neither TensorFlow nor the `tfrecord` package: `tt data convert` (records from
`example_codec`), the shards the demo and tests write (`tf_shards`, records from
`tf_schema`) and `tt data embed` all use it. A shard is written under a temporary name
and renamed when complete, so a shard file that exists is a finished one.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "shard-00000-of-00001.tfrecord")
>>> with ShardWriter(path) as writer:
...     writer.write(b"a serialized tf.train.Example")
>>> writer.count, os.path.getsize(path)
(1, 45)
"""

import os

from tt_cli import storage
from tt_cli.data.records import frame
from tt_cli.ownership import ContentStamp


class ShardWriter:
    """Appends serialized records to `path + '.tmp'`; `close()` renames it to `path`."""

    def __init__(self, path):
        self.path = path
        self._file = storage.open(path + ".tmp", "wb")
        self.count = 0
        self.content = ContentStamp()  # the shard's hash for tt's manifest, taken as the bytes go out

    def write(self, record):
        framed = frame(record)
        self._file.write(framed)
        self.content.update(framed)
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
