"""`ThreeTowers` started from a KerasHub CLIP, SigLIP or MetaCLIP 2 preset (`tt train --init`).

| mode   | f (trained)    | g (trained)   | h (frozen)                                              |
| ------ | -------------- | ------------- | ------------------------------------------------------- |
| `clip` | preset's image | preset's text | none                                                    |
| `lit`  | none           | preset's text | a frozen copy of the preset's image tower               |
| `3t`   | preset's image | preset's text | a frozen copy of the preset's image tower, or any given |

The image-text pair starts at the preset's own logit scale (and SigLIP's bias), so that
the model at step 0 is the preset's model. tt clips every temperature at 100, as
OpenCLIP does for every model it fine-tunes; a preset whose scale is larger (a trained
SigLIP's may be) starts at 100 (`clipped_temperature` says by how much).

Example:
>>> import keras_hub, tempfile
>>> preset = tempfile.mkdtemp()
>>> vision = keras_hub.models.SigLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=1,
...     num_heads=2, intermediate_dim=32, image_shape=(32, 32, 3))
>>> text = keras_hub.models.SigLIPTextEncoder(vocabulary_size=40, embedding_dim=16, hidden_dim=16,
...     num_layers=1, num_heads=2, intermediate_dim=32, max_sequence_length=8)
>>> keras_hub.models.SigLIPBackbone(vision, text).save_to_preset(preset)
>>> keras_hub.layers.SigLIPImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0).save_to_preset(preset)
>>> model = three_towers_from_preset(preset, mode="3t")
>>> model.loss_name, model.image_size, type(model.pretrained_tower).__name__
('sigmoid', (32, 32), 'PresetImageTower')
"""

import math

import keras

from models.contrastive_loss import MAX_LOG_TEMPERATURE
from models.preset_backbones import split_backbone
from models.three_towers import ThreeTowers


def load_preset_parts(preset, frozen_image=False, dtype=None):
    """`split_backbone` of the backbone and image converter a preset directory (or name,
    `hf://`, `kaggle://` handle) holds; `dtype`: the layers' dtype policy (None: the
    global one)."""
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(preset, dtype=dtype or keras.config.dtype_policy().name)
    converter = keras_hub.layers.ImageConverter.from_preset(preset)
    return split_backbone(backbone, converter, frozen_image=frozen_image, preset=preset)


def frozen_image_tower(preset, dtype=None):
    """A frozen copy of a preset's image tower: the default third tower of 3T with `--init`,
    and LiT's locked tower."""
    return load_preset_parts(preset, frozen_image=True, dtype=dtype).image_tower


def clipped_temperature(log_temperature):
    """(tt's initial log t, the preset's t when tt clips it, else None)."""
    if log_temperature > MAX_LOG_TEMPERATURE:
        return MAX_LOG_TEMPERATURE, math.exp(log_temperature)
    return log_temperature, None


def three_towers_from_preset(
    preset, mode="3t", pretrained_tower=None, aux_weight=1.0, lit_head=False, loss=None, dtype=None, parts=None
):
    """A `ThreeTowers` whose f and g (and the image-text temperature and bias) start from
    `preset`.

    Args:
      preset: a KerasHub preset of a `CLIPBackbone`, `SigLIPBackbone` or `MetaCLIP2Backbone`
        with its preprocessor (a directory, a preset name or a `kaggle://`/`hf://` handle).
      mode: `clip`, `lit` or `3t`.
      pretrained_tower: 3T's third towers (one or a list); None: a frozen copy of the
        preset's image tower (`frozen_image_tower`), which LiT always locks.
      aux_weight: as for `ThreeTowers`.
      lit_head: as for `ThreeTowers`.
      loss: `softmax` or `sigmoid`; None: the preset's own (sigmoid for SigLIP).
      dtype: the layers' dtype policy (None: the global one).
      parts: `load_preset_parts(preset)` when the caller has loaded them already.
    """
    parts = parts or load_preset_parts(preset, dtype=dtype)
    if mode != "clip" and pretrained_tower is None:
        pretrained_tower = frozen_image_tower(preset, dtype=dtype)
    loss = loss or parts.family.loss
    model = ThreeTowers(
        parts.text_tower,
        parts.image_tower,
        pretrained_tower,
        mode=mode,
        aux_weight=aux_weight,
        lit_head=lit_head,
        loss=loss,
        name=f"three_towers_{mode}",
    )
    model.log_temperatures["image_text"].assign(clipped_temperature(parts.log_temperature)[0])
    if loss == "sigmoid" and parts.family.has_bias:
        model.biases["image_text"].assign(parts.bias)
    return model
