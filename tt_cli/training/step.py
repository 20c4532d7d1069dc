"""One distributed training step: what `tt train` runs and `tt bench` times.

Keras 3's `fit` cannot be used under `MultiWorkerMirroredStrategy` with tt's dict
batches (it all-reduces a peeked batch and scalar metrics along axis 0), so the step
is written out: the model's own `train_step` on every replica, the metrics averaged.

With `accum_steps` > 1 each replica runs its rows through the towers in that many
micro-batches (gradient caching, `models.gradient_cache`), with the loss still over the
global batch: the same step in less memory, at the cost of one more forward pass.
"""

import tensorflow as tf

from tt_cli.errors import InvalidValueError


def check_accum_steps(batch_size, replicas, accum_steps=1):
    """Refuses a global batch that does not split into `accum_steps` equal micro-batches
    on each of `replicas` replicas."""
    if batch_size % (replicas * accum_steps):
        parts = f"{accum_steps} equal micro-batches on each of " if accum_steps > 1 else "equal shares for "
        raise InvalidValueError(
            f"batch size {batch_size} does not split into {parts}{replicas} replica(s): "
            f"it must be a multiple of {replicas * accum_steps}.",
            remedy=(
                "batch_size",
                batch_size - batch_size % (replicas * accum_steps) or replicas * accum_steps,
                "(or fewer micro-batches)" if accum_steps > 1 else "to split it equally",
            ),
        )


def make_distributed_step(model, strategy, jit=False, accum_steps=1):
    """Returns step(iterator) -> {metric name: scalar tensor} for the global batch: `model`'s
    own `train_step` on every replica (a `ThreeTowers`, or `tt pretrain`'s classifier, whose
    step takes no `accum_steps`)."""

    @tf.function(jit_compile=jit)
    def one_step(batch):
        return model.train_step(batch, accum_steps=accum_steps) if accum_steps > 1 else model.train_step(batch)

    @tf.function
    def distributed_step(iterator):
        per_replica = strategy.run(one_step, args=(next(iterator),))
        # Each replica's metrics cover its rows; their mean is the global batch's.
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in per_replica.items()}

    return distributed_step
