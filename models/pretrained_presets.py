"""Which pretrained model a name (an alias such as `imagenet21k`) means at a scale.

Aliases name the KerasHub ViT presets by their pre-training data; the scale picks the
size and patch. A scale without an exact match gets the nearest preset, and the
returned note says which was chosen.

Example:
>>> resolve_pretrained("imagenet21k", "b16")
('vit_base_patch16_224_imagenet21k', None)
>>> resolve_pretrained("./my_preset", "b16")
('./my_preset', None)
"""

ALIASES = {
    "imagenet21k": {
        ("base", 16): "vit_base_patch16_224_imagenet21k",
        ("base", 32): "vit_base_patch32_224_imagenet21k",
        ("large", 16): "vit_large_patch16_224_imagenet21k",
        ("large", 32): "vit_large_patch32_224_imagenet21k",
        ("huge", 14): "vit_huge_patch14_224_imagenet21k",
    },
    "imagenet": {
        ("base", 16): "vit_base_patch16_224_imagenet",
        ("base", 32): "vit_base_patch32_384_imagenet",
        ("large", 16): "vit_large_patch16_224_imagenet",
        ("large", 32): "vit_large_patch32_384_imagenet",
    },
}
# Scale name -> (size, patch) in the presets' vocabulary; tiny sizes map to base.
_SCALE_TO_SIZE = {"ti": "base", "s": "base", "b": "base", "l": "large", "h": "huge"}


def resolve_pretrained(name, scale_name):
    """Returns (preset, note): the preset an alias means at a scale, and a note when
    the choice is not an exact match (None otherwise). Other names pass through."""
    if name not in ALIASES:
        return name, None
    table = ALIASES[name]
    prefix = scale_name.rstrip("0123456789")
    patch = int(scale_name[len(prefix) :] or 16)
    wanted = (_SCALE_TO_SIZE.get(prefix, "base"), patch)
    exact = prefix in ("b", "l", "h")  # ViT-Ti and ViT-S have no KerasHub presets
    if exact and wanted in table:
        return table[wanted], None
    rank = {"base": 0, "large": 1, "huge": 2}
    choice = min(table, key=lambda k: (abs(rank[k[0]] - rank[wanted[0]]), abs(k[1] - patch)))
    return table[choice], (f"no {name} preset matches scale {scale_name!r}; using {table[choice]}")
