"""Writes shards of the tt schema from TensorFlow code (the TF-free side uses
`shard_writer.py`; both produce the same records).

Example:
>>> rows = [{"image": png_bytes, "texts": ["a red circle"], "key": "0", "label": 3}]  # doctest: +SKIP
>>> write_shards("out/", rows, num_shards=1, source="demo", class_names=names)       # doctest: +SKIP
"""

import os

import tensorflow as tf

from tt_cli.data import schema


def example_bytes(row):
    def bytes_list(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    feature = {
        schema.IMAGE: bytes_list([row["image"]]),
        schema.TEXTS: bytes_list([t.encode("utf-8") for t in row["texts"]]),
        schema.KEY: bytes_list([str(row["key"]).encode("utf-8")]),
    }
    if row.get("label") is not None:
        feature[schema.LABEL] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row["label"])]))
    if row.get("h_embedding") is not None:
        feature[schema.H_EMBEDDING] = tf.train.Feature(float_list=tf.train.FloatList(value=row["h_embedding"]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(out_dir, rows, num_shards, source, class_names=None):
    """Writes `rows` round-robin into `num_shards` shards plus `dataset.json`."""
    os.makedirs(out_dir, exist_ok=True)
    names = [schema.shard_name(i, num_shards) for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(os.path.join(out_dir, n)) for n in names]
    count = 0
    for i, row in enumerate(rows):
        writers[i % num_shards].write(example_bytes(row))
        count += 1
    for w in writers:
        w.close()
    schema.write_info(out_dir, schema.DatasetInfo(
        num_examples=count, num_shards=num_shards, source=source, class_names=class_names, shards=names))
    return out_dir
