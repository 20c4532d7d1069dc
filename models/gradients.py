"""The one place where gradients become what an optimizer is given: every train step of
tt (`ThreeTowers.train_step`, with or without gradient caching, which `fit` runs too, and
`tt pretrain`'s) calls `optimizer_gradients` just before `optimizer.apply`.

It works around two things Keras 3.15's optimizers do on TensorFlow that are not the
textbook step:

- **Repeated rows of an embedding gradient.** A gradient through `ops.take` (a token
  embedding's) comes as `tf.IndexedSlices`, one row per token in the batch: a token that
  occurs k times appears k times. Keras applies it row by row: Adam and AdamW square each
  slice before adding them up, so the row's second moment gets Σ gᵢ² instead of (Σ gᵢ)²,
  and a global-norm clip measures Σ ‖gᵢ‖² for it too. Row 0 given [1, 1] twice moves
  -0.283 after two AdamW steps at learning rate 0.1, not -0.200. Under `tf.distribute`
  the sum over replicas concatenates slices, so a token seen on two replicas repeats even
  when each replica's rows are unique: summing duplicate indices on each replica would not
  be enough. The gradient is made dense (`dense_gradients`), where rows add up as they should.
- **Clipping before the sum over replicas.** Keras clips each replica's gradient by that
  replica's own norm and only then sums the replicas' gradients; a float16 loss scale is
  likewise checked for overflow on one replica's gradient only. The global-norm clip must
  see the global gradient. So on several replicas the gradients are summed here first,
  clipped by their global norm (Keras' formula, the loss scale taken out), and each replica
  hands the optimizer an equal share: Keras' own clip then has nothing left to do, and its
  sum gives back the clipped global gradient. This costs a second all-reduce of the
  gradients per step, on several replicas and only with clipping or loss scaling.

`tests/test_gradients.py` has the embedding case above; `tests/test_accum.py` compares
steps on one device and on two replicas.

Example:
>>> import tensorflow as tf
>>> slices = tf.IndexedSlices(tf.ones([2, 2]), tf.constant([0, 0]), tf.constant([3, 2]))
>>> dense_gradients([slices, None])[0].numpy().tolist()
[[2.0, 2.0], [0.0, 0.0], [0.0, 0.0]]
"""

import tensorflow as tf


def dense_gradients(gradients):
    """`gradients` (a list, None where a variable has none) with every `tf.IndexedSlices`
    made dense, its repeated rows summed."""
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]


def optimizer_gradients(optimizer, gradients):
    """This replica's `gradients` of a loss that `optimizer.scale_loss` scaled, as
    `optimizer.apply` must get them for the textbook step: dense, and on several replicas
    already clipped by the global gradient's norm (see the module docstring)."""
    gradients = dense_gradients(gradients)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    clip_norm = inner.global_clipnorm
    if replicas == 1 or not (clip_norm or inner is not optimizer):
        return gradients
    total = tf.distribute.get_replica_context().all_reduce("SUM", [g for g in gradients if g is not None])
    if clip_norm:
        norm = tf.linalg.global_norm(total) / optimizer.scale_loss(1.0)
        # Keras' `clip_by_global_norm`: NaN for a non-finite norm, which a loss scale then skips.
        factor = clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)
        total = [g * tf.cast(factor, g.dtype) for g in total]
    shares = iter([g / replicas for g in total])
    return [None if g is None else next(shares) for g in gradients]
