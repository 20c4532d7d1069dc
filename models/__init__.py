"""tt's Keras 3 models: scales, the three towers, heads, the contrastive losses and
the `ThreeTowers` model. Usable from Python without the CLI.

Importing the package registers tt's classes with Keras (for `keras.saving.load_model`).
`models.tokens` imports nothing and can be loaded without Keras (see `tt_cli.data.tokenizer`).
"""

from models import tokens
from models.contrastive_loss import contrastive_loss, temperature
from models.heads import ProjectionHead
from models.image_tower import ImageTower, rescale_pixels, vit_backbone, vit_image_converter
from models.preset_image_tower import PresetImageTower
from models.preset_model import three_towers_from_preset
from models.preset_text_tower import PresetTextTower
from models.pretrained_presets import resolve_pretrained
from models.pretrained_text_tower import PretrainedTextTower
from models.pretrained_tower import PretrainedTower
from models.scales import SCALES, Scale, get_scale
from models.sigmoid_loss import sigmoid_loss
from models.text_tower import TextTower
from models.three_towers import MODES, ThreeTowers

__all__ = [
    "MODES",
    "SCALES",
    "ImageTower",
    "PresetImageTower",
    "PresetTextTower",
    "PretrainedTextTower",
    "PretrainedTower",
    "ProjectionHead",
    "Scale",
    "TextTower",
    "ThreeTowers",
    "contrastive_loss",
    "get_scale",
    "rescale_pixels",
    "resolve_pretrained",
    "sigmoid_loss",
    "temperature",
    "three_towers_from_preset",
    "tokens",
    "vit_backbone",
    "vit_image_converter",
]
