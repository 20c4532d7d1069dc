"""The demo's inputs: its synthetic splits and its small pretrained third tower.

Splits are written once under `OUT/demo_data/` (names carry their size, seed and
resolution, so a different demo size writes new ones). The third tower is a tiny
ViT trained by `tt pretrain` on a labelled split of its own seed; it is made on
first use and cached under `$TT_CACHE_DIR`, else `$XDG_CACHE_HOME/tt`, else
`~/.cache/tt` (or inside the run directory when the cache cannot be written), so
later demo runs skip it. Everything is written to a temporary name and renamed
into place, so an interrupted demo never leaves a half-written split or preset.

Example:
>>> train_dir = demo_split("runs/demo/demo_data", "train", 6000, seed=1, image_size=32)  # doctest: +SKIP
>>> preset = demo_tower(settings, "runs/demo", log=print)                                  # doctest: +SKIP
"""

import contextlib
import os

from tt_cli import storage
from tt_cli.data import schema
from tt_cli.demo.settings import DEMO
from tt_cli.errors import ConflictError

CACHE_VERSION = 1  # bump when the demo data or pretraining recipe changes


def cache_root():
    if os.environ.get("TT_CACHE_DIR"):
        return os.environ["TT_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tt")


def _publish(tmp, final):
    """Renames a finished temporary directory into place (another process may have won)."""
    try:
        storage.replace(tmp, final)
    except OSError:  # `final` appeared meanwhile and is not empty: keep it
        _remove_leftover(tmp)


def _remove_leftover(tmp):
    """Removes this process's temporary folder `tmp`, if there is one."""
    with contextlib.suppress(OSError):
        storage.rmtree(tmp)


def demo_split(data_dir, name, count, seed, image_size):
    """A synthetic shapes split at `data_dir`/<name>-<count>-s<seed>-<size>px; written unless present."""
    from tt_cli.demo.shapes import write_demo_split

    path = os.path.join(data_dir, f"{name}-{count}-s{seed}-{image_size}px")
    if not storage.isfile(os.path.join(path, schema.DATASET_JSON)):
        tmp = f"{path}.tmp-{os.getpid()}"
        _remove_leftover(tmp)
        write_demo_split(tmp, count, seed, image_size=image_size, num_shards=2)
        _publish(tmp, path)
        if not storage.isfile(os.path.join(path, schema.DATASET_JSON)):
            # Splits appear only whole (renamed into place): this folder is not one of tt's.
            raise ConflictError(
                f"{path} exists and is not a demo split tt wrote; move it away or choose another run directory."
            )
    return path


def _tower_name(settings):
    return (
        f"demo-tower-v{CACHE_VERSION}-{DEMO.pretrain_scale}-{settings.num_pretrain}ex-"
        f"{settings.pretrain_steps}steps-s{DEMO.pretrain_seed}"
    )


def demo_tower(settings, data_dir, log):
    """The preset directory of the demo's pretrained third tower, made by `tt pretrain` if missing."""
    from models.scales import SCALES
    from tt_cli.pretrain import PRETRAIN_JSON, PretrainConfig, pretrain

    root = cache_root()
    if not storage.can_write_in(root):
        root = os.path.join(settings.config.out, "demo_pretrained")
        storage.makedirs(root)
    preset = os.path.join(root, _tower_name(settings))
    if storage.isfile(os.path.join(preset, PRETRAIN_JSON)):
        log(f"third tower: {preset} (cached)")
        return preset
    size = SCALES[DEMO.pretrain_scale].image_size
    labelled = demo_split(data_dir, "pretrain", settings.num_pretrain, DEMO.pretrain_seed, size)
    command = (
        f"tt pretrain --data {labelled} --out {preset} --scale {DEMO.pretrain_scale} "
        f"--steps {settings.pretrain_steps} --batch-size {DEMO.pretrain_batch_size} --lr {DEMO.pretrain_lr} "
        f"--seed {DEMO.pretrain_seed}"
    )
    log(f"making the demo's pretrained third tower (once; cached): {command}")
    tmp = f"{preset}.tmp-{os.getpid()}"
    _remove_leftover(tmp)
    summary = pretrain(
        PretrainConfig(
            data=labelled,
            out=tmp,
            scale=DEMO.pretrain_scale,
            steps=settings.pretrain_steps,
            batch_size=DEMO.pretrain_batch_size,
            lr=DEMO.pretrain_lr,
            seed=DEMO.pretrain_seed,
            log_every=max(1, settings.pretrain_steps // 4),
            command=command,
        ),
        log=log,
    )
    accuracy = summary["heldout_accuracy"]
    log(
        f"third tower: held-out accuracy {'-' if accuracy is None else f'{accuracy:.3f}'} on "
        f"{summary['num_classes']} classes (chance {summary['chance']:.3f}) -> {preset}"
    )
    _publish(tmp, preset)
    return preset
