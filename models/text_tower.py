"""The main text tower g: a pre-norm transformer encoder over SentencePiece ids,
pooled at the end-of-sequence token and projected.

Token ids follow `models.tokens`: `PAD_ID` (0) is padding, and every sequence ends
with EOS, so the EOS position is the last non-padding one.

Example:
>>> import numpy as np
>>> from models.text_tower import TextTower
>>> from models.scales import get_scale
>>> tower = TextTower.from_scale(get_scale("tiny"), vocab_size=100, max_len=8)
>>> tower(np.array([[5, 6, 2, 0, 0, 0, 0, 0]], "int32")).shape
TensorShape([1, 64])
"""

import keras
import keras_hub
from keras import ops

from models.tokens import PAD_ID


@keras.saving.register_keras_serializable(package="tt")
class TextTower(keras.layers.Layer):
    """Token embedding (with learned positions) -> pre-norm transformer encoder layers ->
    final layer norm -> the feature at EOS -> linear projection.

    Takes int token ids [batch, max_len] in the `models.tokens` convention; padding is
    masked out of attention. Returns unnormalised embeddings of width `embed_dim`.

    Args:
      vocab_size: number of token ids.
      max_len: sequence length (the position embedding's size).
      width: hidden size of the encoder.
      depth: number of encoder layers.
      num_heads: attention heads per layer.
      mlp_dim: hidden size of each layer's MLP.
      embed_dim: width of the output embedding.
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Example:
    >>> import numpy as np
    >>> tower = TextTower(vocab_size=100, max_len=4, width=16, depth=1, num_heads=2, mlp_dim=32, embed_dim=8)
    >>> tower(np.array([[5, 2, 0, 0]], "int32")).shape
    TensorShape([1, 8])
    """

    def __init__(self, vocab_size, max_len, width, depth, num_heads, mlp_dim, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.max_len = vocab_size, max_len
        self.width, self.depth, self.num_heads, self.mlp_dim = width, depth, num_heads, mlp_dim
        self.embed_dim = embed_dim
        policy = self.dtype_policy
        self.embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocab_size, max_len, width, dtype=policy, name="embedding"
        )
        self.encoder_layers = [
            keras_hub.layers.TransformerEncoder(
                mlp_dim,
                num_heads,
                activation="gelu",
                layer_norm_epsilon=1e-6,
                normalize_first=True,
                dtype=policy,
                name=f"encoder_layer_{i}",
            )
            for i in range(depth)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6, dtype=policy, name="final_norm")
        self.projection = keras.layers.Dense(embed_dim, dtype=policy, name="projection")
        self.embedding.build((None, max_len))
        for layer in self.encoder_layers:
            layer.build((None, max_len, width))
        self.final_norm.build((None, width))
        self.projection.build((None, width))
        self.built = True

    @classmethod
    def from_scale(cls, scale, vocab_size, max_len, embed_dim=None, dtype=None):
        """The tower of a `Scale`, its embedding width `embed_dim` or the scale's own."""
        return cls(
            vocab_size,
            max_len,
            scale.width,
            scale.depth,
            scale.num_heads,
            scale.mlp_dim,
            embed_dim or scale.embed_dim,
            dtype=dtype,
            name="text_tower",
        )

    @property
    def transformer_blocks(self):
        """The encoder layers, in order (what `models.remat.rematerialize` recomputes)."""
        return list(self.encoder_layers)

    def call(self, tokens, training=False):
        tokens = ops.cast(tokens, "int32")
        padding_mask = ops.not_equal(tokens, PAD_ID)
        x = self.embedding(tokens)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=padding_mask, training=training)
        x = self.final_norm(x)
        # The EOS token is the last non-padding one; an all-padding row pools position 0.
        eos_index = ops.maximum(ops.sum(ops.cast(padding_mask, "int32"), axis=1) - 1, 0)
        pooled = ops.take_along_axis(x, eos_index[:, None, None], axis=1)[:, 0]
        return self.projection(pooled)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            max_len=self.max_len,
            width=self.width,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_dim=self.mlp_dim,
            embed_dim=self.embed_dim,
        )
        return config
