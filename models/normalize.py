"""L2 normalisation in float32, whatever the compute dtype (mixed precision)."""

from keras import ops


def l2_normalize(x):
    x = ops.cast(x, "float32")
    return x * ops.rsqrt(ops.maximum(ops.sum(x * x, axis=-1, keepdims=True), 1e-12))
