"""Run as a script by test_distributed_step.py: one 3T training step through the step
`tt train` runs (`tt_cli.training.step.make_distributed_step`, fed by
`distribute_datasets_from_function` as the trainer feeds it) on one device and under a
2-replica MirroredStrategy, with the same global batch; prints the weight differences as JSON.

Logical CPU devices must be configured before any TensorFlow op runs, hence a fresh
process.
"""

import json
import sys

import numpy as np
import tensorflow as tf

# Importing it configures two logical CPUs (before any TensorFlow op runs); `build` makes
# the same model and SGD optimizer as the `model.fit` script.
from mirrored_step import build

from tt_cli.strategy import resolve_jit
from tt_cli.training.step import make_distributed_step

GLOBAL_BATCH = 8


def one_step(strategy, model, batch, accum_steps=1, jit=None):
    """One step of `tt train`'s loop: per-replica batches from an input function, the
    distributed step with the XLA setting the trainer would resolve from `jit`."""
    def per_replica_batches(context):
        size = context.get_per_replica_batch_size(GLOBAL_BATCH)
        return tf.data.Dataset.from_tensor_slices(batch).batch(size, drop_remainder=True)

    iterator = iter(strategy.distribute_datasets_from_function(per_replica_batches))
    jit = resolve_jit(jit, strategy)
    logs = make_distributed_step(model, strategy, jit, accum_steps)(iterator)
    return {k: float(v) for k, v in logs.items()}, jit


def main(preset):
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
        "tokens": np.concatenate([rng.integers(3, 50, (GLOBAL_BATCH, 5)), np.full((GLOBAL_BATCH, 1), 2),
                                  np.zeros((GLOBAL_BATCH, 2))], 1).astype("int32"),
        "h_image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
    }
    single_strategy = tf.distribute.get_strategy()
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = build(single_strategy, preset)
    initial = single.get_weights()
    mirrored = build(mirrored_strategy, preset, initial)
    single_logs, single_jit = one_step(single_strategy, single, batch)
    mirrored_logs, mirrored_jit = one_step(mirrored_strategy, mirrored, batch)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), initial))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), mirrored.get_weights()))
    print(json.dumps({
        "replicas": mirrored_strategy.num_replicas_in_sync,
        "jit": {"single": single_jit, "mirrored": mirrored_jit},
        "steps": {"single": int(single.optimizer.iterations.numpy()),
                  "mirrored": int(mirrored.optimizer.iterations.numpy())},
        "max_weight_diff": diff,
        "max_weight_update": moved,
        "loss_single": single_logs["loss"],
        "loss_mirrored": mirrored_logs["loss"],
    }))


if __name__ == "__main__":
    main(sys.argv[1])
