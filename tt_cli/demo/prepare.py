"""The demo's inputs: its synthetic splits and its small pretrained third tower.

Splits are written once under `OUT/demo_data/` (names carry their size, seed and
resolution, so a different demo size writes new ones). The third tower is a tiny
ViT trained by `tt pretrain` on a labelled split of its own seed; it is made on
first use and cached under `$TT_CACHE_DIR`, else `$XDG_CACHE_HOME/tt`, else
`~/.cache/tt` (or inside the run directory when the cache cannot be written), so
later demo runs skip it. Everything is written to a fresh temporary folder and renamed
into place, so an interrupted demo never leaves a half-written split or preset. A cached
tower is used only while every file in it still has the hash its manifest recorded when it
was made (`tt_cli.ownership`); a damaged one (a file truncated or changed, one missing) is
refused with one line naming it, and left for the user to delete: tt removes nothing it
cannot prove is its own.

Example:
>>> import tempfile
>>> from tt_cli.data import schema
>>> train_dir = demo_split(tempfile.mkdtemp(), "train", 12, seed=1, image_size=16)
>>> os.path.basename(train_dir), schema.read_info(train_dir).num_examples
('train-12-s1-16px', 12)
>>> demo_split(os.path.dirname(train_dir), "train", 12, seed=1, image_size=16) == train_dir   # kept, not rewritten
True

`demo_tower(settings, "runs/demo", log=print)` returns the demo's third tower: a preset
folder under `cache_root()`, pretrained by `tt pretrain` on the shapes the first time.
"""

import contextlib
import os
import tempfile

from tt_cli import storage
from tt_cli.data import schema
from tt_cli.demo.settings import DEMO
from tt_cli.errors import ConflictError
from tt_cli.ownership import OutputFolder

CACHE_VERSION = 2  # bump when the demo data or pretraining recipe changes (2: towers carry hashes)


def cache_root():
    if os.environ.get("TT_CACHE_DIR"):
        return os.environ["TT_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tt")


def _publish(tmp, final):
    """Renames a finished temporary directory (tt's own, from `tempfile.mkdtemp`) into place
    (another process may have won)."""
    try:
        storage.replace(tmp, final)
    except OSError:  # `final` appeared meanwhile and is not empty: keep it
        _remove_leftover(tmp)


def _remove_leftover(tmp):
    """Removes this process's temporary folder `tmp`, if there is one."""
    with contextlib.suppress(OSError):
        storage.rmtree(tmp)


def _fresh_tmp(final):
    """A new empty folder beside `final` for writing it (a name no one else has)."""
    return tempfile.mkdtemp(dir=os.path.dirname(final), prefix=os.path.basename(final) + ".tmp-")


def demo_split(data_dir, name, count, seed, image_size):
    """A synthetic shapes split at `data_dir`/<name>-<count>-s<seed>-<size>px; written unless present."""
    from tt_cli.demo.shapes import write_demo_split

    path = os.path.join(data_dir, f"{name}-{count}-s{seed}-{image_size}px")
    if not storage.isfile(os.path.join(path, schema.DATASET_JSON)):
        storage.makedirs(data_dir)
        tmp = _fresh_tmp(path)
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

    root = cache_root()
    if not storage.can_write_in(root):
        root = os.path.join(settings.config.out, "demo_pretrained")
        storage.makedirs(root)
    preset = os.path.join(root, _tower_name(settings))
    if storage.lexists(preset):
        damage = cache_damage(preset)
        if damage:
            raise ConflictError(
                f"{preset}: the demo's cached third tower is damaged ({damage}); delete that folder and run "
                "the demo again to make it anew."
            )
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
    tmp = _fresh_tmp(preset)
    try:
        summary = _pretrain_tower(labelled, tmp, settings, command, log)
    except BaseException:
        _remove_leftover(tmp)  # the fresh folder this call made, half-written
        raise
    accuracy = summary["heldout_accuracy"]
    log(
        f"third tower: held-out accuracy {'-' if accuracy is None else f'{accuracy:.3f}'} on "
        f"{summary['num_classes']} classes (chance {summary['chance']:.3f}) -> {preset}"
    )
    _publish(tmp, preset)
    return preset


def cache_damage(preset):
    """What is wrong with a cached tower folder by its manifest (a file missing, changed or
    unlisted, the manifest itself), or None when every file is as `tt pretrain` wrote it."""
    from tt_cli.pretrain import COMMAND

    try:
        folder = OutputFolder(preset, COMMAND)
    except ConflictError:
        return "its manifest is damaged"
    if not folder.hashed():
        return "it has no record of the hashes of its files"
    unlisted = [n for n in folder.existing() if n not in folder.listed()]
    if unlisted:
        return f"{unlisted[0]} is not a file tt wrote there"
    return folder.first_damage()


def _pretrain_tower(labelled, out, settings, command, log):
    from tt_cli.pretrain import PretrainConfig, pretrain

    return pretrain(
        PretrainConfig(
            data=labelled,
            out=out,
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
