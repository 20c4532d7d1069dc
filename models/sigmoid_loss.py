"""The sigmoid loss of SigLIP (Zhai et al., 2023) over the global batch.

Every image-text pair of the batch is its own binary problem, matching (the diagonal)
or not (everything else): with logits z_ij = t a_i·b_j + β and labels y_ij = +1 on the
diagonal, -1 elsewhere, the loss is -(1/B) Σ_i Σ_j log σ(y_ij z_ij), B the global batch.
No softmax ties the rows together, so the loss is a plain sum over pairs.

`sigmoid_loss(a, b, log_t, bias)` takes this replica's L2-normalised rows of `a` and
`b`. Under `tf.distribute` it gathers every replica's `b` (as `contrastive_loss` does)
and scores its local rows against every column; each pair (i, j) of the global batch is
scored on exactly one replica. It returns the mean over the local rows of each row's
sum over the global columns: averaged over replicas (the caller divides by the replica
count before taking gradients) this is the global -(1/B) Σ_i Σ_j.

Example:
>>> import numpy as np
>>> a = np.eye(4, dtype="float32")
>>> loss, accuracy = sigmoid_loss(a, a, np.log(10.0), -10.0)
>>> round(float(accuracy), 2)
1.0
"""

import tensorflow as tf

from models.contrastive_loss import gather_rows, temperature


def sigmoid_loss(a, b, log_t, bias):
    """Returns (loss, a->b top-1 accuracy) for L2-normalised local rows `a`, `b`."""
    a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
    all_b, offset = gather_rows(b)
    logits = temperature(log_t) * tf.matmul(a, all_b, transpose_b=True) + tf.cast(bias, tf.float32)
    labels = offset + tf.range(tf.shape(a)[0])
    # +1 where column j is row i's own pair, -1 elsewhere.
    signs = 2.0 * tf.one_hot(labels, tf.shape(all_b)[0]) - 1.0
    loss = -tf.reduce_mean(tf.reduce_sum(tf.math.log_sigmoid(signs * logits), axis=1))
    hits = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels)
    return loss, tf.reduce_mean(tf.cast(hits, tf.float32))
