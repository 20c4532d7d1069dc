"""Writes shards of the tt schema from TensorFlow code: records built by `tf_schema` (the
TF-free side builds them with `example_codec`; both through `schema.build_example`, so they
are the same), written by the one `shard_writer.ShardWriter`.

Example:
>>> import tempfile
>>> rows = [{"image": b"<PNG bytes>", "texts": ["a red circle"], "key": str(i), "label": i % 2} for i in range(3)]
>>> out = write_shards(tempfile.mkdtemp(), rows, num_shards=2, source="demo", class_names=["circle", "square"])
>>> info = schema.read_info(out)
>>> info.shards, info.shard_examples
(['shard-00000-of-00002.tfrecord', 'shard-00001-of-00002.tfrecord'], [2, 1])
"""

import contextlib
import os

from tt_cli import storage
from tt_cli.data import schema
from tt_cli.data.shard_writer import ShardWriter
from tt_cli.data.tf_schema import example_bytes


def write_shards(out_dir, rows, num_shards, source, class_names=None):
    """Writes `rows` round-robin into `num_shards` shards plus `dataset.json`."""
    storage.makedirs(out_dir)
    names = [schema.shard_name(i, num_shards) for i in range(num_shards)]
    counts = [0] * num_shards
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(ShardWriter(os.path.join(out_dir, n))) for n in names]
        for i, row in enumerate(rows):
            record = example_bytes(row["image"], row["texts"], row["key"], row.get("label"), row.get("h_embedding"))
            writers[i % num_shards].write(record)
            counts[i % num_shards] += 1
    schema.write_info(
        out_dir,
        schema.DatasetInfo(
            num_examples=sum(counts),
            num_shards=num_shards,
            source=source,
            class_names=class_names,
            shards=names,
            shard_examples=counts,
            shard_bytes=[storage.getsize(os.path.join(out_dir, n)) for n in names],
        ),
    )
    return out_dir
