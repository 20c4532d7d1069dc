"""The one place where gradients become what an optimizer is given.

A gradient through `ops.take` (a token-embedding table's) comes as `tf.IndexedSlices`:
one row of values per token in the batch, so a token that occurs k times appears k
times. Keras 3.15's optimizers on TensorFlow apply such a gradient row by row: Adam
and AdamW square each slice before adding them up, so a row's second moment becomes
Σ gᵢ² instead of (Σ gᵢ)², and a global-norm clip measures Σ ‖gᵢ‖² for it too. Frequent
tokens then move by a different step from the one the math says (row 0 given [1, 1]
twice moves -0.283 after two AdamW steps at learning rate 0.1, not -0.200). Under
`tf.distribute` the cross-replica sum concatenates slices, so a token seen on two
replicas repeats even when each replica's slices are unique: summing duplicate indices
on a replica would not be enough. Dense gradients are summed where they should be
(`tt bench` times the cost; see `tests/test_gradients.py` for the case above).

Example:
>>> import tensorflow as tf
>>> slices = tf.IndexedSlices(tf.ones([2, 2]), tf.constant([0, 0]), tf.constant([3, 2]))
>>> optimizer_gradients([slices, None])[0].numpy().tolist()
[[2.0, 2.0], [0.0, 0.0], [0.0, 0.0]]
"""

import tensorflow as tf


def optimizer_gradients(gradients):
    """`gradients` (a list, None where a variable has none) as an optimizer must get them:
    every `tf.IndexedSlices` made dense, its repeated rows summed."""
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]
