"""The linear adaptor heads of 3T (f_h, h_f, g_h, h_g): `Dense(d)` then L2 normalisation.

Example:
>>> import numpy as np
>>> from models.heads import ProjectionHead
>>> head = ProjectionHead(8, input_dim=4)
>>> round(float(np.linalg.norm(head(np.ones((1, 4), "float32")))), 5)   # unit length, to float32 rounding
1.0
"""

import keras

from models.normalize import l2_normalize


@keras.saving.register_keras_serializable(package="tt")
class ProjectionHead(keras.layers.Layer):
    """A linear map to `dim` followed by L2 normalisation (in float32).

    Args:
      dim: output width.
      input_dim: input width (the layer is built on creation).
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Example:
    >>> import numpy as np
    >>> ProjectionHead(8, input_dim=4)(np.ones((2, 4), "float32")).shape
    TensorShape([2, 8])
    """

    def __init__(self, dim, input_dim, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.input_dim = dim, input_dim
        self.dense = keras.layers.Dense(dim, dtype=self.dtype_policy, name="dense")
        self.dense.build((None, input_dim))
        self.built = True

    def call(self, x):
        return l2_normalize(self.dense(x))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "input_dim": self.input_dim}
