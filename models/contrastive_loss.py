"""The symmetric InfoNCE loss of CLIP over the global batch.

`contrastive_loss(a, b, log_t)` takes this replica's L2-normalised rows of `a` and
`b`. Under `tf.distribute` it gathers every replica's rows (`all_gather` carries
gradients) and compares local rows against the global columns, with the labels
offset by this replica's position. It returns the mean over the local rows; the
caller divides by the replica count before taking gradients, since Keras sums
gradients across replicas.

Example:
>>> import numpy as np
>>> a = np.eye(4, dtype="float32")
>>> loss, accuracy = contrastive_loss(a, a, np.log(10.0))
>>> round(float(accuracy), 2)
1.0
"""

import math

import tensorflow as tf

# The learned temperature t = exp(log_t) is clipped at 100 (CLIP), in the loss, in the
# reported metric and at evaluation alike: `temperature` is the one place that does it.
MAX_LOG_TEMPERATURE = math.log(100.0)


def temperature(log_t):
    """The logit scale t = exp(min(log_t, log 100)) in float32, as the loss uses it."""
    return tf.exp(tf.minimum(tf.cast(log_t, tf.float32), MAX_LOG_TEMPERATURE))


def gather_rows(x):
    """All replicas' rows of `x` and where this replica's rows start (the sigmoid loss
    gathers the same way)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x, 0
    local_rows = tf.shape(x)[0]
    return context.all_gather(x, axis=0), context.replica_id_in_sync_group * local_rows


def contrastive_loss(a, b, log_t):
    """Returns (loss, a->b top-1 accuracy) for L2-normalised local rows `a`, `b`."""
    a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
    t = temperature(log_t)
    all_a, offset = gather_rows(a)
    all_b, _ = gather_rows(b)
    labels = offset + tf.range(tf.shape(a)[0])
    logits_ab = t * tf.matmul(a, all_b, transpose_b=True)  # local a vs every b
    logits_ba = t * tf.matmul(b, all_a, transpose_b=True)  # local b vs every a
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits
    loss = 0.5 * (tf.reduce_mean(ce(labels, logits_ab)) + tf.reduce_mean(ce(labels, logits_ba)))
    hits = tf.equal(tf.argmax(logits_ab, axis=1, output_type=tf.int32), labels)
    return loss, tf.reduce_mean(tf.cast(hits, tf.float32))
