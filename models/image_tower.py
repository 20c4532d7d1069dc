"""The main image tower f: a KerasHub `ViTBackbone` from scratch, pooled and projected.

Example:
>>> import numpy as np
>>> from models.image_tower import ImageTower
>>> from models.scales import get_scale
>>> tower = ImageTower.from_scale(get_scale("tiny"))
>>> tower(np.zeros((2, 32, 32, 3), "uint8")).shape
TensorShape([2, 64])
"""

import keras
import keras_hub


@keras.saving.register_keras_serializable(package="tt")
class ImageTower(keras.layers.Layer):
    """ViT encoder -> pooling (class token or global average) -> linear projection.

    Takes RGB pixels in [0, 255] at the backbone's resolution; the rescaling to
    [-1, 1] is part of the tower so that exported models take raw pixels.
    Returns unnormalised embeddings of width `embed_dim`.
    """

    def __init__(self, backbone, embed_dim, pooling="token", **kwargs):
        super().__init__(**kwargs)
        if pooling not in ("token", "gap"):
            raise ValueError(f"pooling must be 'token' or 'gap', got {pooling!r}")
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.pooling = pooling
        self.projection = keras.layers.Dense(embed_dim, name="projection", dtype=self.dtype_policy)
        self.projection.build((None, backbone.hidden_dim))
        self.image_size = tuple(backbone.image_shape[:2])
        self.built = True

    @classmethod
    def from_scale(cls, scale, pooling="token", embed_dim=None, dtype=None):
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(scale.image_size, scale.image_size, 3),
            patch_size=scale.patch_size,
            num_layers=scale.depth,
            num_heads=scale.num_heads,
            hidden_dim=scale.width,
            mlp_dim=scale.mlp_dim,
            # Global average pooling needs no class token (big_vision's `gap`).
            use_class_token=pooling == "token",
            dtype=dtype,
            name="image_backbone",
        )
        return cls(backbone, embed_dim or scale.embed_dim, pooling=pooling, dtype=dtype, name="image_tower")

    def call(self, images, training=False):
        x = keras.ops.cast(images, self.compute_dtype) / 127.5 - 1.0
        sequence = self.backbone(x, training=training)
        pooled = sequence[:, 0] if self.pooling == "token" else keras.ops.mean(sequence, axis=1)
        return self.projection(pooled)

    def get_config(self):
        config = super().get_config()
        config.update(
            backbone=keras.saving.serialize_keras_object(self.backbone),
            embed_dim=self.embed_dim,
            pooling=self.pooling,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
