"""The third tower h: a frozen pretrained image model from any KerasHub preset.

`h` gives pooled pre-logits features: the class token for ViT backbones, global
average pooling of the last feature map for CNN backbones (ResNet, EfficientNet,
...). Its input preprocessing comes from the preset's own image converter when it
has one, at the preset's own resolution; otherwise pixels are scaled to [0, 1] at
the backbone's input size (224 when the backbone takes any size). It is never
trained and always runs in inference mode.

Example:
>>> import keras_hub, numpy as np, tempfile
>>> preset = tempfile.mkdtemp()
>>> keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=1,
...     num_heads=2, hidden_dim=16, mlp_dim=32).save_to_preset(preset)
>>> tower = PretrainedTower.from_preset(preset)
>>> tower(np.zeros((2, 32, 32, 3), "uint8")).shape
TensorShape([2, 16])
"""

import os

import keras
import keras_hub
from keras import ops

DEFAULT_IMAGE_SIZE = 224


@keras.saving.register_keras_serializable(package="tt")
class PretrainedTower(keras.layers.Layer):
    """A frozen backbone with its preprocessing and pooling.

    Call it on RGB pixels in [0, 255]; images not at `image_size` are resized. The
    output is float32 pooled features of width `output_dim`, pooled as `pooling` says:
    `"token"` (the class token of a ViT-like sequence) or `"gap"` (the mean over all
    positions of a feature map or a sequence without a class token).

    Args:
      backbone: any KerasHub `Backbone` taking images; frozen here.
      image_converter: a KerasHub `ImageConverter`; None scales pixels to [0, 1] at the
        backbone's input size (224 when it takes any size).
      preset: the preset name or absolute directory it came from, recorded with
        embeddings it makes (None for a backbone built in code).
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Example:
    >>> import keras_hub, numpy as np
    >>> backbone = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=1,
    ...     num_heads=2, hidden_dim=16, mlp_dim=32)
    >>> tower = PretrainedTower(backbone)
    >>> tower.pooling, tower.output_dim
    ('token', 16)
    """

    def __init__(self, backbone, image_converter=None, preset=None, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.backbone.trainable = False
        # A backbone deserialized with `trainable=False` in its config (model.json, a
        # .keras file) gets the flag without it reaching its sublayers' variables, which
        # would then count as trainable in the enclosing model: freeze them directly.
        for variable in backbone.weights:
            variable.trainable = False
        self.preset = preset
        if image_converter is None:
            size = tuple(backbone.image_shape[:2]) if backbone.image_shape[0] else None
            image_converter = keras_hub.layers.ImageConverter(
                image_size=size or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE), scale=1 / 255.0
            )
        self.image_converter = image_converter
        self.image_size = tuple(image_converter.image_size)
        features = backbone.compute_output_shape((None, *self.image_size, 3))
        self.output_dim = int(features[-1])
        # ViT-like sequences with a class token pool it; feature maps and token
        # sequences without one are averaged.
        self.pooling = "token" if len(features) == 3 and getattr(backbone, "use_class_token", False) else "gap"
        self.trainable = False
        self.built = True

    @classmethod
    def from_preset(cls, preset):
        """Loads a KerasHub, timm or Hugging Face preset (a name, `hf://`, `kaggle://` or a
        directory). Errors are the hub's and the file readers' own; the CLI's
        `tt_cli.presets.load_pretrained_tower` turns them into one line and fails fast
        when a remote host is unreachable."""
        backbone = keras_hub.models.Backbone.from_preset(preset)
        try:
            converter = keras_hub.layers.ImageConverter.from_preset(preset)
        except Exception:  # a preset without image preprocessing
            converter = None
        # A local directory is recorded absolute, so that embeddings made by `tt data embed`
        # and a run naming the same directory differently are still recognised as one model.
        name = os.path.abspath(preset) if os.path.isdir(preset) else preset
        return cls(backbone, converter, preset=name, name="pretrained_tower")

    @property
    def preprocessing(self):
        """What turns pixels into backbone inputs, as JSON (recorded with embeddings)."""
        c = self.image_converter
        as_list = lambda v: None if v is None else [float(x) for x in ops.convert_to_numpy(v).reshape(-1)]
        return {
            "image_size": list(self.image_size),
            "scale": as_list(c.scale),
            "offset": as_list(c.offset),
            "interpolation": c.interpolation,
            "crop_to_aspect_ratio": c.crop_to_aspect_ratio,
        }

    def call(self, images, training=False):
        del training  # frozen: always inference mode (no dropout, no BatchNorm updates)
        x = self.image_converter(ops.cast(images, "float32"))
        features = self.backbone(ops.cast(x, self.backbone.compute_dtype), training=False)
        if self.pooling == "token":
            pooled = features[:, 0]
        else:
            pooled = ops.mean(features, axis=tuple(range(1, len(features.shape) - 1)))
        return ops.stop_gradient(ops.cast(pooled, "float32"))

    def get_config(self):
        config = super().get_config()
        config.update(
            backbone=keras.saving.serialize_keras_object(self.backbone),
            image_converter=keras.saving.serialize_keras_object(self.image_converter),
            preset=self.preset,
        )
        return config

    @classmethod
    def from_config(cls, config):
        for key in ("backbone", "image_converter"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
