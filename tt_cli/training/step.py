"""One distributed training step: what `tt train` runs and `tt bench` times.

Keras 3's `fit` cannot be used under `MultiWorkerMirroredStrategy` with tt's dict
batches (it all-reduces a peeked batch and scalar metrics along axis 0), so the step
is written out: the model's own `train_step` on every replica, the metrics averaged.
"""

import tensorflow as tf


def make_distributed_step(model, strategy, jit=False):
    """Returns step(iterator) -> {metric name: scalar tensor} for the global batch."""

    @tf.function(jit_compile=jit)
    def one_step(batch):
        return model.train_step(batch)

    @tf.function
    def distributed_step(iterator):
        per_replica = strategy.run(one_step, args=(next(iterator),))
        # Each replica's metrics cover its rows; their mean is the global batch's.
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in per_replica.items()}

    return distributed_step
