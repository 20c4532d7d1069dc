"""Run as a script by test_distributed_step.py: one 3T training step on one device and
the same step under a 2-replica MirroredStrategy, with the same global batch; prints the
largest weight difference as JSON.

Logical CPU devices must be configured before any TensorFlow op runs, hence a fresh
process.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np

from models import PretrainedTower, ThreeTowers, get_scale


def build(strategy, preset, initial_weights=None):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = ThreeTowers.from_scale(
            get_scale("tiny"), mode="3t", vocab_size=50, max_len=8, pretrained_tower=PretrainedTower.from_preset(preset)
        )
        # Plain SGD: unlike Adam, its update is proportional to the gradient, so a
        # wrongly scaled or local-only gradient shows up in the weights.
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.optimizer.build(model.trainable_variables)  # as the trainer does
        if initial_weights is not None:
            model.set_weights(initial_weights)
    return model


def main(preset):
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (8, 32, 32, 3)).astype("float32"),
        "tokens": np.concatenate([rng.integers(3, 50, (8, 5)), np.full((8, 1), 2), np.zeros((8, 2))], 1).astype(
            "int32"
        ),
        "h_image": rng.integers(0, 256, (8, 32, 32, 3)).astype("float32"),
    }
    dataset = tf.data.Dataset.from_tensors(batch)
    single = build(tf.distribute.get_strategy(), preset)
    initial = single.get_weights()
    mirrored = build(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), preset, initial)
    single_logs = single.fit(dataset, epochs=1, verbose=0).history
    mirrored_logs = mirrored.fit(dataset, epochs=1, verbose=0).history
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), initial))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), mirrored.get_weights()))
    from tt_cli.strategy import resolve_jit

    print(
        json.dumps(
            {
                "replicas": mirrored.distribute_strategy.num_replicas_in_sync,
                "jit_default": {
                    "single": resolve_jit(None, single.distribute_strategy),
                    "mirrored": resolve_jit(None, mirrored.distribute_strategy),
                },
                "max_weight_diff": diff,
                "max_weight_update": moved,
                "loss_single": single_logs["loss"][0],
                "loss_mirrored": mirrored_logs["loss"][0],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
