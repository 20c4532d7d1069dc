"""The output folder of `tt pretrain`: a KerasHub preset when finished, the run's
checkpoints while pretraining, and what tt may do with either (`tt_cli.ownership`).

    OUT/config.json, model.weights.h5, task.json, ...   the preset (KerasHub names its files)
    OUT/tt_pretrain.json    the summary; written last, so it marks a finished preset
    OUT/metrics.jsonl       one JSON line per logged step (loss, accuracy, lr, images/s)
    OUT/logs/               TensorBoard
    OUT/checkpoints/        model + optimizer while pretraining, and settings.json (what a
                            resume must match); removed once the preset is finished

Running the same command again resumes an unfinished run from its last checkpoint;
a finished preset is replaced, and an unfinished run started over, only with `overwrite`.
The preset's files are listed in the manifest before they are copied in, so a run killed
while saving them resumes too.

Example:
>>> import tempfile
>>> from tt_cli.pretrain.config import PretrainConfig
>>> config = PretrainConfig(out=os.path.join(tempfile.mkdtemp(), "preset"))
>>> folder = check_out(config)
>>> claim_out(folder, config), sorted(folder.owned())
(False, ['checkpoints', 'logs', 'metrics.jsonl'])
"""

import json
import os
import tempfile

from tt_cli import ownership, storage
from tt_cli import run_dir as rd
from tt_cli.checkpoints import RunCheckpoints
from tt_cli.errors import ConflictError, InvalidValueError, UnreadableDataError
from tt_cli.jsonfile import write_json
from tt_cli.pretrain.config import PRETRAIN_JSON, RESUME_KEYS

COMMAND = "tt pretrain"
SETTINGS = f"{rd.CHECKPOINTS}/settings.json"  # its name in the manifest
RUN_ENTRIES = (rd.CHECKPOINTS, rd.METRICS, rd.LOGS)
HINT = "choose another output folder"


def run_checkpoints(out, checkpoint=None, **kwargs):
    """The run's checkpoints, listed in OUT's manifest as `tt pretrain`'s (`tt_cli.checkpoints`,
    as `tt train` keeps its own)."""
    return RunCheckpoints(checkpoint, out, command=COMMAND, start_over="overwrite", **kwargs)


def check_out(config):
    """Before anything is read: `out` must not be, lie in or hold the input shards, may hold
    only what `tt pretrain` wrote there, and not a finished preset unless `config.overwrite`.
    Changes nothing; returns the `OutputFolder`."""
    if not config.out:
        raise InvalidValueError("no output directory given for the preset.")
    for data in (config.data, config.val_data):
        inputs = [data] if not data or storage.exists(data) else ownership.glob_folders(data)
        ownership.refuse_overlap(config.out, inputs, "output folder")
    if storage.lexists(config.out) and not storage.isdir(config.out):
        raise InvalidValueError(f"{config.out} exists and is not a folder; {HINT}.")
    inputs = [p for data in (config.data, config.val_data) if data for p in storage.expand(data)]
    folder = ownership.OutputFolder(config.out, COMMAND, inputs)
    folder.check_free(folder.existing(), HINT)
    if storage.isfile(os.path.join(config.out, PRETRAIN_JSON)) and not config.overwrite:
        raise ConflictError(
            f"{config.out} already holds a tt pretrain preset",
            ("overwrite", True, "to replace it, or choose another path"),
        )
    return folder


def claim_out(folder, config, chief=True):
    """Returns whether `out` holds an unfinished run to resume. Otherwise (and with
    `config.overwrite`) the chief removes what `tt pretrain` wrote there before, to start
    over; it lists the run's entries as tt's."""
    resuming = bool(run_checkpoints(config.out).steps()) and not config.overwrite
    if chief:
        if not resuming:
            folder.remove_owned()  # an earlier preset, or a start that never reached a checkpoint
        folder.claim(RUN_ENTRIES, HINT)
    return resuming


def _settings(config, fingerprint, class_names, holdout):
    return {
        **{key: getattr(config, key) for key in RESUME_KEYS},
        "holdout": holdout,  # the share of `data` not trained on (0 with separate held-out shards)
        "data": fingerprint,
        "class_names": class_names,
    }


def write_settings(folder, config, fingerprint, class_names, holdout):
    """Records, beside the checkpoints (and as tt's in the manifest), what a resumed run must match."""
    storage.makedirs(os.path.join(config.out, rd.CHECKPOINTS))
    write_json(os.path.join(config.out, SETTINGS), _settings(config, fingerprint, class_names, holdout))
    folder.record([SETTINGS])


def check_resume_matches(config, fingerprint, class_names, holdout):
    """Refuses to resume a run that was started with other settings or other data."""
    path = os.path.join(config.out, SETTINGS)
    try:
        with storage.open(path) as f:
            previous = json.load(f)
    except (OSError, ValueError):
        raise UnreadableDataError(
            f"{path}: missing or damaged, so the checkpoints beside it cannot be resumed",
            ("overwrite", True, "to start over"),
        ) from None
    given = _settings(config, fingerprint, class_names, holdout)
    for key, value in given.items():
        if previous.get(key) != value:
            shown = {"data": "other shards", "class_names": "other classes"}
            raise ConflictError(
                f"{config.out} holds an unfinished run with {key} "
                + (f"{previous.get(key)}, not {value}" if key not in shown else f"of {shown[key]}"),
                ("overwrite", True, "to start it over, or choose another path"),
            )


def save_preset(classifier, folder, out):
    """Saves `classifier` (KerasHub) as the preset in `out`: written to a local temporary
    folder (KerasHub writes local disk only), its names listed as tt's in the manifest,
    then copied in and stamped (so that `overwrite` may replace them)."""
    with tempfile.TemporaryDirectory(prefix="tt-preset-") as local:
        classifier.save_to_preset(local)
        names = sorted(storage.listdir(local))
        folder.claim(names, HINT)
        storage.upload_tree(local, out)
    folder.record(names)


def finish(folder, out, summary):
    """Writes the summary (the preset is finished from here on), then removes the checkpoints."""
    folder.claim([PRETRAIN_JSON], HINT)
    write_json(os.path.join(out, PRETRAIN_JSON), summary)
    folder.record([PRETRAIN_JSON, rd.METRICS, rd.LOGS])
    folder.remove_owned([rd.CHECKPOINTS])
