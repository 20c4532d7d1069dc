"""Run as a script by test_embeddings_beside_data.py: `tt data embed`'s library call under a
2-replica MirroredStrategy over two logical CPU devices; prints its summary as JSON.

Logical CPU devices must be configured before any TensorFlow op runs, hence a fresh process.

Usage: python embed_two_replicas.py SHARDS PRESET OUT BATCH_SIZE
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tt_cli.data.embed import embed_shards  # noqa: E402

if __name__ == "__main__":
    shards, preset, out, batch_size = sys.argv[1:]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps(embed_shards(shards, preset, out, batch_size=int(batch_size), strategy=strategy)))
