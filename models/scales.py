"""Named model sizes. A scale is data: the ViT paper's widths, depths, heads and MLP
sizes (Dosovitskiy et al., 2021, Table 1), with the text tower matching the image
tower's width and depth as in LiT and 3T.

Example:
>>> from models.scales import get_scale
>>> get_scale("b16").width, get_scale("b16").patch_size
(768, 16)
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Scale:
    """One model size, shared by the image and text towers.

    Args:
      name: the `--scale` name (`ti16`, `b16`, `tiny`, ...).
      image_size: side of the square images the image tower takes.
      patch_size: side of the square ViT patches.
      width: hidden size of both towers.
      depth: transformer layers of both towers.
      num_heads: attention heads per layer.
      mlp_dim: hidden size of each layer's MLP.
      embed_dim: width of the shared image-text embedding space.

    Example:
    >>> Scale("mine", image_size=64, patch_size=8, width=128, depth=4, num_heads=4, mlp_dim=256,
    ...       embed_dim=128).to_json()["depth"]
    4
    """

    name: str
    image_size: int
    patch_size: int
    width: int  # hidden size of both towers
    depth: int  # transformer layers of both towers
    num_heads: int
    mlp_dim: int
    embed_dim: int  # width of the shared image-text embedding space

    def to_json(self):
        return dataclasses.asdict(self)

    def at_image_size(self, image_size):
        """This scale with its image tower at `image_size` x `image_size` (None: its own).

        Only the number of patches changes: the patch size stays the scale's and the
        position embeddings follow the patch grid. `ValueError` unless `image_size` is a
        multiple of the patch size (a ViT cuts the image into whole patches).

        Example:
        >>> get_scale("tiny").at_image_size(48).image_size
        48
        """
        if image_size is None or image_size == self.image_size:
            return self
        if image_size < self.patch_size or image_size % self.patch_size:
            below = max(image_size // self.patch_size, 1) * self.patch_size
            raise ValueError(
                f"image size {image_size}: must be a multiple of the {self.name} scale's patch size "
                f"{self.patch_size} (e.g. {below} or {below + self.patch_size})"
            )
        return dataclasses.replace(self, image_size=image_size)


def _vit(name, patch, width, depth, heads, mlp):
    return Scale(name, 224, patch, width, depth, heads, mlp, embed_dim=width)


SCALES = {
    s.name: s
    for s in [
        _vit("ti16", 16, 192, 12, 3, 768),
        _vit("s16", 16, 384, 12, 6, 1536),
        _vit("s32", 32, 384, 12, 6, 1536),
        _vit("b16", 16, 768, 12, 12, 3072),
        _vit("b32", 32, 768, 12, 12, 3072),
        _vit("l16", 16, 1024, 24, 16, 4096),
        _vit("l32", 32, 1024, 24, 16, 4096),
        _vit("h14", 14, 1280, 32, 16, 5120),
        # For tests and CPU demos: 32x32 images, 16 patches, two layers.
        Scale("tiny", 32, 8, 64, 2, 2, 128, embed_dim=64),
        # For the built-in demo: 64x64 images, 64 patches, a few seconds a step on CPU.
        Scale("small", 64, 8, 128, 4, 4, 256, embed_dim=128),
    ]
}


def get_scale(name):
    """Returns the `Scale` called `name`; raises `ValueError` naming the known ones."""
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; choose one of {', '.join(SCALES)}")
    return SCALES[name]
