"""Which pretrained model a `--pretrained` name means, and loading it without hanging.

Aliases name the KerasHub ViT presets by their pre-training data; the scale picks the
size and patch. A scale without an exact match gets the nearest preset, and the
returned note says which was chosen.

Example:
>>> resolve_pretrained("imagenet21k", "b16")
('vit_base_patch16_224_imagenet21k', None)
>>> resolve_pretrained("./my_preset", "b16")
('./my_preset', None)
"""

import os
import socket

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

REMOTE_HOSTS = {"hf://": "huggingface.co", "kaggle://": "www.kaggle.com"}


class PresetUnavailableError(RuntimeError):
    """A preset that cannot be fetched or read; the message says what to do instead."""


def resolve_pretrained(name, scale_name):
    """Returns (preset, note): the preset an alias means at a scale, and a note when
    the choice is not an exact match (None otherwise). Other names pass through."""
    if name not in ALIASES:
        return name, None
    table = ALIASES[name]
    prefix = scale_name.rstrip("0123456789")
    patch = int(scale_name[len(prefix):] or 16)
    wanted = (_SCALE_TO_SIZE.get(prefix, "base"), patch)
    exact = prefix in ("b", "l", "h")  # ViT-Ti and ViT-S have no KerasHub presets
    if exact and wanted in table:
        return table[wanted], None
    rank = {"base": 0, "large": 1, "huge": 2}
    choice = min(table, key=lambda k: (abs(rank[k[0]] - rank[wanted[0]]), abs(k[1] - patch)))
    return table[choice], (
        f"no {name} preset matches scale {scale_name!r}; using {table[choice]}"
    )


def _remote_host(preset):
    for prefix, host in REMOTE_HOSTS.items():
        if preset.startswith(prefix):
            return host
    if os.path.sep in preset or os.path.exists(preset):
        return None
    return REMOTE_HOSTS["kaggle://"]  # built-in KerasHub names live on Kaggle


def _unavailable(preset, reason):
    return PresetUnavailableError(
        f"cannot load pretrained preset {preset!r} ({reason}). Without a network, pass a "
        "local preset directory instead: --pretrained /path/to/preset (a KerasHub, timm or "
        "Hugging Face directory, e.g. one saved with `save_to_preset` or made by `tt pretrain`)."
    )


def load_preset(loader, preset):
    """Calls `loader(preset)` (e.g. `Backbone.from_preset`), failing within seconds with
    `PresetUnavailableError` when a remote preset cannot be reached."""
    host = _remote_host(preset)
    if host is None and not os.path.isdir(preset):
        raise _unavailable(preset, "no such directory")
    if host is not None and not os.path.isdir(preset):
        # Hub clients retry unreachable hosts for tens of seconds; probe once instead.
        try:
            socket.create_connection((host, 443), timeout=3).close()
        except OSError as e:
            raise _unavailable(preset, f"{host} is unreachable: {e.__class__.__name__}")
    try:
        return loader(preset)
    except Exception as e:  # hub, file and format errors all mean the same to a user
        first_line = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise _unavailable(preset, first_line[:200])
