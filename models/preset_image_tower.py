"""The image encoder of a KerasHub CLIP, SigLIP or MetaCLIP 2 backbone as tt's image tower.

`tt train --init PRESET` starts f from the preset's vision encoder and projection; in
`lit` mode, and as 3T's default third tower, a frozen copy of the same tower is h. The
tower computes what the backbone's `get_vision_embeddings` computes, from uint8 pixels:
the preset's own pixel normalisation (its image converter's `scale` and `offset`, in
the converter's order of operations), the encoder, the pooling (the class token for
CLIP and MetaCLIP 2; SigLIP's encoder pools itself with its attention head), MetaCLIP
2's post-pooling layer norm, and the projection (none for SigLIP).

Resizing stays outside the tower, in the input pipeline: the tower keeps the preset's
image converter so that the pipeline resizes as the preset does (`resizing`).

Example:
>>> import keras_hub, numpy as np
>>> encoder = keras_hub.models.SigLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=1,
...     num_heads=2, intermediate_dim=32, image_shape=(32, 32, 3))
>>> converter = keras_hub.layers.SigLIPImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0)
>>> tower = PresetImageTower(encoder, converter, pooling="encoder")
>>> tower(np.zeros((2, 32, 32, 3), "uint8")).shape, tower.embed_dim
(TensorShape([2, 16]), 16)
"""

import keras
import numpy as np
from keras import ops

POOLINGS = ("class_token", "encoder")


def _serialize(layer):
    return None if layer is None else keras.saving.serialize_keras_object(layer)


def _deserialize(config):
    return None if config is None else keras.saving.deserialize_keras_object(config)


def _channel_values(value):
    """A converter's `scale`/`offset` (None, a number or one per channel) as float32 [3] or None."""
    if value is None:
        return None
    return np.broadcast_to(np.asarray(value, "float32").reshape(-1), (3,)).copy()


@keras.saving.register_keras_serializable(package="tt")
class PresetImageTower(keras.layers.Layer):
    """A preset's vision encoder, pooling and projection, taking uint8 pixels.

    Takes RGB pixels in [0, 255] at `image_size` (the converter's); returns the
    unnormalised image embedding of width `embed_dim`, as the backbone's
    `get_vision_embeddings` does on images the converter prepared.

    Args:
      encoder: the backbone's vision encoder (`CLIPVisionEncoder`, `SigLIPVisionEncoder`,
        `MetaCLIP2VisionEncoder`).
      image_converter: the preset's `ImageConverter`: image size, pixel scale and offset,
        and how images are resized.
      pooling: `"class_token"` (the first position of the sequence) or `"encoder"` (the
        encoder's output is pooled already).
      post_norm: a `LayerNormalization` applied after pooling (MetaCLIP 2), or None.
      projection: the backbone's vision projection (`Dense`), or None.
      frozen: a third tower: never trained, always in inference mode, no gradient.
      preset: where the weights came from, recorded with the run (None: built in code).
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).
    """

    def __init__(
        self,
        encoder,
        image_converter,
        pooling="class_token",
        post_norm=None,
        projection=None,
        frozen=False,
        preset=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.encoder, self.image_converter = encoder, image_converter
        self.pooling, self.post_norm, self.projection = pooling, post_norm, projection
        self.frozen, self.preset = bool(frozen), preset
        self.image_size = tuple(int(s) for s in image_converter.image_size)
        self._scale = _channel_values(image_converter.scale)
        self._offset = _channel_values(image_converter.offset)
        width = encoder.hidden_dim
        for layer in (post_norm, projection):
            if layer is not None and not layer.built:
                layer.build((None, width))
        self.embed_dim = int(projection.units) if projection is not None else int(width)
        if frozen:
            self.trainable = False
            # A sublayer deserialized from a config keeps its variables trainable: freeze them directly.
            for variable in self.weights:
                variable.trainable = False
        self.built = True

    @property
    def output_dim(self):
        """The embedding width, under the name third towers use (`models.PretrainedTower`)."""
        return self.embed_dim

    @property
    def resizing(self):
        """How the input pipeline resizes images for this tower: the converter's
        `keras.layers.Resizing` arguments."""
        c = self.image_converter
        return {
            "interpolation": c.interpolation,
            "antialias": bool(c.antialias),
            "crop_to_aspect_ratio": bool(c.crop_to_aspect_ratio),
            "pad_to_aspect_ratio": bool(c.pad_to_aspect_ratio),
        }

    @property
    def preprocessing(self):
        """What turns pixels into encoder inputs, as JSON (as `PretrainedTower.preprocessing`)."""
        as_list = lambda v: None if v is None else [float(x) for x in v]  # noqa: E731
        return {"image_size": list(self.image_size), "scale": as_list(self._scale), "offset": as_list(self._offset)}

    @property
    def transformer_blocks(self):
        """The encoder's blocks, in order (what `models.remat.rematerialize` recomputes)."""
        return list(self.encoder.encoder_layers)

    def normalize_pixels(self, images):
        """Pixels in [0, 255] -> the encoder's inputs, as the converter computes them (float32)."""
        x = ops.cast(images, "float32")
        if self._scale is not None:
            x = x * ops.convert_to_tensor(self._scale)
        if self._offset is not None:
            x = x + ops.convert_to_tensor(self._offset)
        return x

    def call(self, images, training=False):
        training = training and not self.frozen
        x = ops.cast(self.normalize_pixels(images), self.encoder.compute_dtype)
        features = self.encoder({"images": x}, training=training)
        if self.pooling == "class_token":
            features = features[:, 0, :]
        if self.post_norm is not None:
            features = self.post_norm(features)
        if self.projection is not None:
            features = self.projection(features)
        return ops.stop_gradient(features) if self.frozen else features

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=_serialize(self.encoder),
            image_converter=_serialize(self.image_converter),
            pooling=self.pooling,
            post_norm=_serialize(self.post_norm),
            projection=_serialize(self.projection),
            frozen=self.frozen,
            preset=self.preset,
        )
        return config

    @classmethod
    def from_config(cls, config):
        for key in ("encoder", "image_converter", "post_norm", "projection"):
            config[key] = _deserialize(config.get(key))
        return cls(**config)
