"""The main image tower f: a KerasHub `ViTBackbone` from scratch, pooled and projected.

This module owns two decisions every ViT of tt shares: how a `Scale` becomes a
`ViTBackbone` (`vit_backbone`), and how pixels in [0, 255] become the backbone's
[-1, 1] inputs (`PIXEL_SCALE`, `PIXEL_OFFSET`; `vit_image_converter` states the same
rescaling for KerasHub presets).

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

# Pixels in [0, 255] -> [-1, 1] as `x * PIXEL_SCALE + PIXEL_OFFSET` (big_vision's
# `value_range(-1, 1)`), the arithmetic of a KerasHub `ImageConverter(scale, offset)`.
PIXEL_SCALE = 1 / 127.5
PIXEL_OFFSET = -1.0


def rescale_pixels(images, dtype):
    """RGB pixels in [0, 255] -> [-1, 1] in `dtype`."""
    return keras.ops.cast(images, dtype) * PIXEL_SCALE + PIXEL_OFFSET


def vit_image_converter(image_size):
    """A KerasHub `ViTImageConverter` doing `rescale_pixels` at `image_size` (H, W), for
    presets whose backbone expects the inputs tt's ViTs were trained on."""
    return keras_hub.layers.ViTImageConverter(image_size=tuple(image_size), scale=PIXEL_SCALE, offset=PIXEL_OFFSET)


def vit_backbone(scale, use_class_token=True, dtype=None, name=None):
    """A randomly initialised KerasHub `ViTBackbone` of a `models.scales.Scale`.

    Args:
      scale: the `Scale` giving image size, patch size, width, depth, heads and MLP size.
      use_class_token: prepend a class token (False for global average pooling).
      dtype: the layer dtype policy (None: the global policy).
      name: the backbone's layer name.

    Example:
    >>> from models.scales import get_scale
    >>> vit_backbone(get_scale("tiny")).hidden_dim
    64
    """
    return keras_hub.models.ViTBackbone(
        image_shape=(scale.image_size, scale.image_size, 3),
        patch_size=scale.patch_size,
        num_layers=scale.depth,
        num_heads=scale.num_heads,
        hidden_dim=scale.width,
        mlp_dim=scale.mlp_dim,
        use_class_token=use_class_token,
        dtype=dtype,
        name=name,
    )


@keras.saving.register_keras_serializable(package="tt")
class ImageTower(keras.layers.Layer):
    """ViT encoder -> pooling (class token or global average) -> linear projection.

    Takes RGB pixels in [0, 255] at the backbone's resolution; the rescaling to
    [-1, 1] (`rescale_pixels`) is part of the tower so that exported models take raw
    pixels. Returns unnormalised embeddings of width `embed_dim`.

    Args:
      backbone: a KerasHub `ViTBackbone` (with a class token when `pooling="token"`).
      embed_dim: width of the output embedding (the linear projection's units).
      pooling: `"token"` pools the class token, `"gap"` averages all positions.
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Example:
    >>> import numpy as np
    >>> from models.scales import get_scale
    >>> tower = ImageTower(vit_backbone(get_scale("tiny")), embed_dim=32)
    >>> tower(np.zeros((2, 32, 32, 3), "uint8")).shape
    TensorShape([2, 32])
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
        """The tower of a `Scale`, its embedding width `embed_dim` or the scale's own."""
        # Global average pooling needs no class token (big_vision's `gap`).
        backbone = vit_backbone(scale, use_class_token=pooling == "token", dtype=dtype, name="image_backbone")
        return cls(backbone, embed_dim or scale.embed_dim, pooling=pooling, dtype=dtype, name="image_tower")

    @property
    def transformer_blocks(self):
        """The ViT's encoder blocks, in order (what `models.remat.rematerialize` recomputes)."""
        return list(self.backbone.get_layer("vit_encoder").encoder_layers)

    def call(self, images, training=False):
        x = rescale_pixels(images, self.compute_dtype)
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
