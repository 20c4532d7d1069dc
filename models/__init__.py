"""tt's Keras 3 models: scales, the three towers, heads, the contrastive loss and
the `ThreeTowers` model. Usable from Python without the CLI."""

from models.contrastive_loss import contrastive_loss
from models.heads import ProjectionHead
from models.image_tower import ImageTower
from models.pretrained_presets import PresetUnavailableError, resolve_pretrained
from models.pretrained_tower import PretrainedTower
from models.scales import SCALES, Scale, get_scale
from models.text_tower import TextTower
from models.three_towers import MODES, ThreeTowers

__all__ = [
    "MODES", "SCALES", "ImageTower", "PresetUnavailableError", "PretrainedTower", "ProjectionHead", "Scale",
    "TextTower", "ThreeTowers", "contrastive_loss", "get_scale", "resolve_pretrained",
]
