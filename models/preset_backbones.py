"""Which KerasHub image-text backbones tt starts from, and how each is taken apart into
tt's towers and put back together.

One row per backbone class (`FAMILIES`): where its image and text encoders pool, whether
it projects (SigLIP's encoders end in their own heads), MetaCLIP 2's layer norm after
pooling, its logit layer (a learned scale, and SigLIP's learned bias), the loss it was
trained with and its preprocessor class. SigLIP 2 presets are `SigLIPBackbone`s with
another tokenizer; everything else about them is SigLIP's.

`split_backbone` gives tt's f and g (`PresetImageTower`, `PresetTextTower`) holding the
backbone's own encoder and projection layers, and its logit scale and bias;
`assemble_backbone` writes towers (trained, or interpolated) back into a new backbone of
the same class, which `save_to_preset` then writes as a preset KerasHub loads.

Example:
>>> import keras_hub
>>> vision = keras_hub.models.SigLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=1,
...     num_heads=2, intermediate_dim=32, image_shape=(32, 32, 3))
>>> text = keras_hub.models.SigLIPTextEncoder(vocabulary_size=40, embedding_dim=16, hidden_dim=16,
...     num_layers=1, num_heads=2, intermediate_dim=32, max_sequence_length=8)
>>> backbone = keras_hub.models.SigLIPBackbone(vision, text)
>>> converter = keras_hub.layers.SigLIPImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0)
>>> parts = split_backbone(backbone, converter)
>>> parts.family.loss, parts.image_tower.embed_dim, parts.text_tower.embed_dim, parts.bias
('sigmoid', 16, 16, 0.0)
>>> rebuilt = assemble_backbone(parts.family, parts.image_tower, parts.text_tower, parts.log_temperature, parts.bias)
>>> type(rebuilt).__name__
'SigLIPBackbone'
"""

import dataclasses

import keras
import numpy as np

from models.preset_image_tower import PresetImageTower
from models.preset_text_tower import PresetTextTower


@dataclasses.dataclass(frozen=True)
class Family:
    """How one KerasHub backbone class maps onto tt's towers."""

    backbone: str  # the KerasHub class name, `keras_hub.models.<backbone>`
    preprocessor: str  # its preprocessor class (tokenizer, packer, image converter)
    head: str  # the backbone attribute holding `logit_scale` (and `logit_bias`)
    image_pooling: str  # `PresetImageTower` pooling
    text_pooling: str  # `PresetTextTower` pooling
    projections: bool  # vision_projection / text_projection layers (CLIP, MetaCLIP 2)
    image_post_norm: str = None  # attribute of the layer norm after pooling (MetaCLIP 2)
    loss: str = "softmax"  # what it was trained with; "sigmoid" models have a logit bias

    @property
    def has_bias(self):
        return self.loss == "sigmoid"


FAMILIES = {
    family.backbone: family
    for family in (
        Family("CLIPBackbone", "CLIPPreprocessor", "clip_head", "class_token", "max_id", projections=True),
        Family(
            "SigLIPBackbone",
            "SigLIPPreprocessor",
            "siglip_head",
            "encoder",
            "encoder",
            projections=False,
            loss="sigmoid",
        ),
        Family(
            "MetaCLIP2Backbone",
            "MetaCLIP2CausalLMPreprocessor",
            "metaclip_2_head",
            "class_token",
            "first_eos",
            projections=True,
            image_post_norm="vision_post_layer_norm",
        ),
    )
}


def family_of(backbone_class_name):
    """The `Family` of a KerasHub backbone class name; ValueError naming the supported ones.

    >>> family_of("CLIPBackbone").head
    'clip_head'
    """
    if backbone_class_name not in FAMILIES:
        raise ValueError(
            f"a {backbone_class_name} is not an image-text backbone tt starts from "
            f"(it starts from {', '.join(FAMILIES)})"
        )
    return FAMILIES[backbone_class_name]


@dataclasses.dataclass(frozen=True)
class PresetParts:
    """A backbone taken apart: tt's f and g, and the image-text logit layer's values."""

    family: Family
    image_tower: PresetImageTower
    text_tower: PresetTextTower
    log_temperature: float  # the logit scale's log, as tt's `log_t`
    bias: float  # SigLIP's logit bias; 0.0 for the others


def split_backbone(backbone, image_converter, frozen_image=False, preset=None, eos_id=None):
    """Takes `backbone` apart into tt's towers, which hold its layers (not copies).

    Args:
      backbone: a `CLIPBackbone`, `SigLIPBackbone` or `MetaCLIP2Backbone`.
      image_converter: the preset's image converter (size, pixel scale and offset).
      frozen_image: the image tower is a frozen third tower (LiT's h, 3T's copy of f).
      preset: where the backbone came from, recorded on the image tower.
      eos_id: the tokenizer's end-of-sequence id (MetaCLIP 2's text pooling).
    """
    family = family_of(type(backbone).__name__)
    image_tower = PresetImageTower(
        backbone.vision_encoder,
        image_converter,
        pooling=family.image_pooling,
        post_norm=getattr(backbone, family.image_post_norm) if family.image_post_norm else None,
        projection=backbone.vision_projection if family.projections else None,
        frozen=frozen_image,
        preset=preset,
        name="pretrained_tower" if frozen_image else "image_tower",
    )
    if family.text_pooling == "first_eos" and eos_id is None:
        eos_id = backbone.text_pooler.eos_token_id
    text_tower = PresetTextTower(
        backbone.text_encoder,
        pooling=family.text_pooling,
        projection=backbone.text_projection if family.projections else None,
        eos_id=eos_id if family.text_pooling == "first_eos" else None,
        name="text_tower",
    )
    head = getattr(backbone, family.head)
    bias = float(keras.ops.convert_to_numpy(head.logit_bias)) if family.has_bias else 0.0
    return PresetParts(family, image_tower, text_tower, float(keras.ops.convert_to_numpy(head.logit_scale)), bias)


def _copy(source, target):
    """Copies `source`'s weights into the same-architecture layer `target`, checking shapes."""
    weights = source.get_weights()
    if [w.shape for w in weights] != [tuple(v.shape) for v in target.weights]:
        raise ValueError(f"{source.name} and {target.name} differ in architecture")
    target.set_weights(weights)


def _clone(layer):
    return layer.__class__.from_config(layer.get_config())


def assemble_backbone(family, image_tower, text_tower, log_temperature, bias=0.0):
    """A new backbone of `family`'s class holding the towers' weights (copied) and the
    logit scale `exp(log_temperature)` (and `bias`): KerasHub's model of tt's towers.
    The backbone is trainable whatever the towers were (a locked tower is locked in tt
    only)."""
    import keras_hub

    vision, text = _clone(image_tower.encoder), _clone(text_tower.encoder)
    vision.trainable = text.trainable = True
    kwargs = {"projection_dim": image_tower.embed_dim} if family.projections else {}
    backbone = getattr(keras_hub.models, family.backbone)(vision, text, **kwargs)
    _copy(image_tower.encoder, backbone.vision_encoder)
    _copy(text_tower.encoder, backbone.text_encoder)
    if family.projections:
        _copy(image_tower.projection, backbone.vision_projection)
        _copy(text_tower.projection, backbone.text_projection)
    if family.image_post_norm:
        _copy(image_tower.post_norm, getattr(backbone, family.image_post_norm))
    head = getattr(backbone, family.head)
    head.logit_scale.assign(np.float32(log_temperature))
    if family.has_bias:
        head.logit_bias.assign(np.float32(bias))
    return backbone
