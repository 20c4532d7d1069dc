"""`--pretrained NAME` -> the frozen third tower h: the one place that loads it.

An alias (`imagenet21k`, ...) is resolved at the run's scale (`models.resolve_pretrained`),
a remote preset's host is probed first so that an offline machine fails within seconds
(hub clients retry unreachable hosts for tens of seconds), and every failure -- no such
directory, no network, a hub, file or format error -- becomes one `TtError` line that
says what to do instead. `tt train`, `tt data embed` and `tt bench` all call
`load_pretrained_tower`.

Example:
>>> load_pretrained_tower("/no/such/preset", "b16")
Traceback (most recent call last):
...
tt_cli.errors.InvalidValueError: cannot load pretrained preset '/no/such/preset' (no such directory)...
"""

import os
import socket

from tt_cli import storage
from tt_cli.errors import InvalidValueError

# Where `hf://`, `kaggle://` and built-in KerasHub preset names are fetched from.
REMOTE_HOSTS = {"hf://": "huggingface.co", "kaggle://": "www.kaggle.com"}
PROBE_TIMEOUT_SECONDS = 3


def _remote_host(preset):
    for prefix, host in REMOTE_HOSTS.items():
        if preset.startswith(prefix):
            return host
    if os.path.sep in preset or storage.exists(preset):
        return None
    return REMOTE_HOSTS["kaggle://"]  # built-in KerasHub names live on Kaggle


def _unavailable(preset, reason):
    return InvalidValueError(
        f"cannot load pretrained preset {preset!r} ({reason})",
        remedy=(
            "pretrained",
            "/path/to/preset",
            "instead: a local preset directory needs no network (a KerasHub, timm or Hugging Face "
            "directory, e.g. one saved with `save_to_preset` or made by `tt pretrain`)",
        ),
    )


def unreachable_reason(preset):
    """Why `preset` cannot be loaded, found within seconds (no such directory, its host does
    not answer), or None when it is a directory or on a host that answers."""
    host = _remote_host(preset)  # hf:// and kaggle:// first: no TensorFlow filesystem reads them
    if not preset.startswith(tuple(REMOTE_HOSTS)) and storage.isdir(preset):
        return None  # a local folder or a URL (gs://...), which KerasHub reads through tf.io.gfile
    if host is None:
        return "no such directory"
    try:
        socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_SECONDS).close()
    except OSError as e:
        return f"{host} is unreachable: {e.__class__.__name__}"
    return None


def check_reachable(preset):
    """Raises `TtError` within seconds when `preset` is neither a directory nor on a
    host that answers."""
    reason = unreachable_reason(preset)
    if reason is not None:
        raise _unavailable(preset, reason)


def load_pretrained_text_tower(name):
    """The frozen `PretrainedTextTower` of a KerasHub `TextEmbedder` preset (a sentence
    encoder: name, `hf://`/`kaggle://` handle or directory); one line when it cannot load."""
    from models import PretrainedTextTower

    check_reachable(name)
    try:
        return PretrainedTextTower.from_preset(name)
    except Exception as e:  # hub, file and format errors (a preset that is no text embedder) alike
        first_line = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise _unavailable(name, first_line[:200]) from None


def load_pretrained_tower(name, scale_name, on_note=None):
    """The frozen `PretrainedTower` that `name` (alias, preset name, `hf://`/`kaggle://`
    handle or directory) means at scale `scale_name`. `on_note(text)` hears when an alias
    has no exact match at the scale. Raises `TtError` (one line) when it cannot load."""
    from models import PretrainedTower, resolve_pretrained

    preset, note = resolve_pretrained(name, scale_name)
    if note and on_note:
        on_note(note)
    check_reachable(preset)
    try:
        return PretrainedTower.from_preset(preset)
    except Exception as e:  # hub, file and format errors all mean the same to a user
        first_line = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise _unavailable(preset, first_line[:200]) from None
