"""Combined shards as `tt data embed` wrote them before embedding folders: a copy of every
data record with its `h_embedding` inside, and `dataset.json` naming the tower.

`tt train` still reads such shards; tests make them from a dataset and its embedding
folder to compare the two ways of training on precomputed embeddings, and
`benchmarks/embedding_storage.py` to measure what the copy costs on disk.

Example:
>>> write_combined("shards/", "shards_h/", "combined/")   # doctest: +SKIP
"""

import dataclasses
import os

from tt_cli.data import schema


def write_combined(data, embeddings, out):
    """Writes `out`: the shards of `data`, each record with its embedding from `embeddings` added."""
    import tensorflow as tf

    from tt_cli.data.tf_schema import parse_example, with_h_embedding

    files, info = schema.resolve_shards(data)
    made = schema.read_info(embeddings)
    dim = made.h_embedding["dim"]
    os.makedirs(out, exist_ok=True)
    for file in files:
        name = os.path.basename(file)
        pairs = tf.data.Dataset.zip(
            tf.data.TFRecordDataset(file), tf.data.TFRecordDataset(os.path.join(embeddings, name))
        )
        with tf.io.TFRecordWriter(os.path.join(out, name)) as writer:
            for record, embedded in pairs:
                vector = parse_example(embedded, (schema.H_EMBEDDING,), dim)[schema.H_EMBEDDING].numpy()
                writer.write(with_h_embedding(record.numpy(), vector))
    sizes = [os.path.getsize(os.path.join(out, os.path.basename(f))) for f in files]
    schema.write_info(out, dataclasses.replace(info, h_embedding=made.h_embedding, shard_bytes=sizes))
    return out
