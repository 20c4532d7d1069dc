"""Run as a script by test_remat.py: tt's training step (AdamW, `tt_cli.training.step`) with and
without rematerialised tower blocks, on one device (eagerly traced, and with XLA) and on a
2-replica MirroredStrategy in micro-batches (`--accum-steps 2`); prints the largest weight
difference of each pair of runs as JSON.

Logical CPU devices must be configured before any TensorFlow op runs, hence a fresh process.
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np

from models import ThreeTowers, get_scale
from models.remat import rematerialize_towers
from tt_cli.training.optimizer import make_optimizer
from tt_cli.training.step import make_distributed_step

STEPS = 3


def batch():
    rng = np.random.default_rng(0)
    tokens = np.concatenate([rng.integers(3, 50, (8, 5)), np.full((8, 1), 2), np.zeros((8, 2))], 1)
    return {
        "image": tf.constant(rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8")),
        "tokens": tf.constant(tokens.astype("int32")),
    }


def train(strategy, remat, jit, accum_steps):
    """(initial weights, weights after STEPS steps of tt's step); the same seed gives the same initial weights."""
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = ThreeTowers.from_scale(get_scale("tiny"), mode="clip", vocab_size=50, max_len=8)
        if remat:
            assert rematerialize_towers(model) == 4  # two blocks in each tower
        model.compile(optimizer=make_optimizer(1e-3))
        model.optimizer.build(model.trainable_variables)
    initial = [v.numpy() for v in model.trainable_variables]
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch()).repeat())
    step, iterator = make_distributed_step(model, strategy, jit, accum_steps), iter(dataset)
    for _ in range(STEPS):
        step(iterator)
    return initial, [v.numpy() for v in model.trainable_variables]


def largest_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def main():
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one = tf.distribute.get_strategy()
    cases = {
        "one_device": (one, False, 1),
        "one_device_xla": (one, True, 1),
        "two_replicas_accum2": (mirrored, False, 2),
    }
    report = {}
    for name, (strategy, jit, accum) in cases.items():
        initial, plain = train(strategy, False, jit, accum)
        report[name] = largest_difference(plain, train(strategy, True, jit, accum)[1])
        report[name + "/moved"] = largest_difference(initial, plain)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
