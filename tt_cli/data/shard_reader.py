"""Reads TFRecord shards and their Examples without TensorFlow.

The record framing lives in `records` (shared with the TensorFlow side):
`iter_records` always checks each length, `iter_records(verify=True)` each data
CRC too, and a bad record raises `CorruptRecord` naming the file and byte offset.
Examples are decoded by `example_codec`.

Example:
>>> import os, tempfile
>>> from tt_cli.data.example_codec import encode_example
>>> from tt_cli.data.shard_writer import ShardWriter
>>> path = os.path.join(tempfile.mkdtemp(), "shard-00000-of-00001.tfrecord")
>>> with ShardWriter(path) as writer:
...     for key, text in [("cat.png", "a cat"), ("dog.png", "a dog")]:
...         writer.write(encode_example(image=b"...", texts=[text], key=key))
>>> for example in iter_examples(path, verify=True):
...     print(example["key"], example["texts"])
[b'cat.png'] [b'a cat']
[b'dog.png'] [b'a dog']
"""

import os

from google.protobuf.message import DecodeError

from tt_cli.data import schema
from tt_cli.data.example_codec import decode_example
from tt_cli.data.records import CorruptRecord, iter_records
from tt_cli.errors import UnreadableDataError


def iter_examples(path, verify=False):
    """Yields {feature name: list of values} for every record of one shard;
    raises `CorruptRecord` at a bad record or one that is not an Example."""
    for offset, data in iter_records(path, verify=verify):
        try:
            example = decode_example(data)
        except DecodeError as e:
            raise CorruptRecord(path, offset, f"not a tf.train.Example ({e})") from None
        yield example


def read_captions(files, limit=1_000_000, data=None):
    """Up to `limit` (None: all) captions (str) of the shard `files` (`data`, as the user
    named them); one clear line naming the shard and offset when a record is corrupt.

    The TF-free twin of `pipeline.read_captions` (same signature, same words): `tt data
    tokenizer` must not import TensorFlow, and a TensorFlow process cannot import the
    `tfrecord` package this one decodes with.
    """
    count = 0
    for file in files:
        try:
            for example in iter_examples(file):
                for text in example.get(schema.TEXTS, []):
                    if limit is not None and count >= limit:
                        return
                    count += 1
                    yield text.decode("utf-8", "replace")
        except CorruptRecord as e:
            data = data or os.path.dirname(files[0])
            raise UnreadableDataError(str(e), shards=data) from None
