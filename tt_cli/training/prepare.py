"""Run-directory preparation for `tt train`: makes --out a run directory of tt's (or
refuses it), checks that a resumed run keeps the settings it was trained with, and puts
the run's tokenizer in place.

Only the chief claims and cleans the folder (`tt_cli.ownership`); every worker resumes
from the same checkpoints and trains the same tokenizer.

In use (inside `trainer.train`, before anything is built):

```python
resuming = prepare_out(config, chief=True)
tokenizer_path = setup_tokenizer(config, files, print)
```
"""

import hashlib
import json
import os
import tempfile
import uuid

from tt_cli import ownership, storage
from tt_cli import run_dir as rd
from tt_cli.checkpoints import RunCheckpoints
from tt_cli.data.tokenizer import check_sentencepiece_file
from tt_cli.errors import ConflictError, InvalidValueError
from tt_cli.init_preset import INIT_DIR
from tt_cli.training.config import MODEL_KEYS, TrainConfig, pretrained_names


def fingerprint(files, info):
    """The shards' identity by their names and sizes (not their path), recorded in run.json;
    a TFDS dataset's by its name, config, split and version (not where it is prepared)."""
    if info is not None and info.tfds:
        source = {k: info.tfds[k] for k in ("name", "config", "split", "version")}
        digest = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:16]
        return {"files": len(files), "num_examples": info.num_examples, "sha256": digest, "tfds": source}
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{os.path.basename(f)}:{storage.getsize(f)}".encode())
    return {"files": len(files), "num_examples": info.num_examples if info else None, "sha256": digest.hexdigest()[:16]}


# Everything `tt train` writes in --out (and with --wandb, WANDB_ENTRIES); --restart removes all of
# them but the tokenizer, the copy of the init preset (replaced when the run restarts from another
# one) and W&B's local files (an offline run there may not be uploaded yet; the restarted run gets a
# new W&B id).
RUN_ENTRIES = (rd.RUN_JSON, rd.MODEL_JSON, rd.TOKENIZER, rd.CHECKPOINTS, rd.METRICS, rd.LOGS)
WANDB_ENTRIES = (rd.WANDB_JSON, rd.WANDB)
RESTART_REMOVES = (rd.CHECKPOINTS, rd.LOGS, rd.METRICS, rd.RUN_JSON, rd.MODEL_JSON, rd.WANDB_JSON)
# Keys every run.json of tt train has had: with model.json and checkpoints/ they mark a
# run directory written before tt kept a manifest.
LEGACY_RUN_KEYS = ("config", "mode", "scale", "steps", "dataset", "versions")


def _is_legacy_run(out):
    try:
        with storage.open(os.path.join(out, rd.RUN_JSON)) as f:
            run_json = json.load(f)
    except (OSError, ValueError):
        return False
    return (
        isinstance(run_json, dict)
        and all(k in run_json for k in LEGACY_RUN_KEYS)
        and storage.isfile(os.path.join(out, rd.MODEL_JSON))
        and storage.isdir(os.path.join(out, rd.CHECKPOINTS))
    )


def prepare_out(config, chief):
    """Makes --out a run directory of tt's; returns True if it holds checkpoints to resume
    (by its manifest: `tt_cli.checkpoints`).

    The chief refuses a folder whose run-directory names (run.json, logs/, ...) tt did
    not write, or checkpoints tt did not record, and lists the names as tt's
    (`tt_cli.ownership`); --restart removes only what it proves is tt's.
    """
    folder = ownership.OutputFolder(config.out, "tt train", [config.tokenizer])
    try:
        storage.makedirs(config.out)
        if storage.is_url(config.out):  # an object store: a probe object of a name no one else writes
            probe = os.path.join(config.out, f".write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            with storage.open(probe, "w") as f:
                f.write("")
        else:
            handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=config.out)
            os.close(handle)
        storage.remove(probe)
    except OSError as e:
        raise InvalidValueError(f"{config.out}: cannot write the run directory ({e.strerror or e}).")
    if chief:
        if not folder.hashed() and _is_legacy_run(config.out):
            folder.adopt(RUN_ENTRIES, grows=(rd.METRICS, rd.LOGS))
        hint = "choose another run directory (a new folder, or one tt train wrote)"
        # The preset's copy is claimed only by a run that makes one: a user's own `init` folder
        # stays theirs in any other run directory.
        entries = RUN_ENTRIES + ((INIT_DIR,) if config.init else ()) + (WANDB_ENTRIES if config.wandb else ())
        folder.check_free(entries, hint)
        if config.restart:
            folder.remove_owned(RESTART_REMOVES)
        folder.claim(entries, hint)
        folder.check_replaceable([rd.RUN_JSON, rd.MODEL_JSON])  # rewritten by every session
    checkpoints = RunCheckpoints(None, config.out)
    unrecorded = checkpoints.unrecorded()
    if unrecorded:
        raise ConflictError(
            f"{os.path.join(config.out, rd.CHECKPOINTS, unrecorded[0])}: a checkpoint tt did not record; move it "
            "away (tt resumes only from checkpoints it wrote) or choose another run directory."
        )
    return bool(checkpoints.steps())


def record_run_files(out, names):
    """Stamps run files the chief has just written (run.json, the tokenizer, ...)."""
    ownership.OutputFolder(out, "tt train").record(names)


class ResumeRefused(ConflictError):
    """`out` holds a run that these settings cannot resume: `setting` (a `TrainConfig` field)
    was `previous` there and is `given` now. `restart=True` starts the run over."""

    def __init__(self, out, setting, previous, given, note="", advice="restart it or choose another run directory"):
        self.out, self.setting, self.previous, self.given, self.note = out, setting, previous, given, note
        super().__init__(f"{out} holds a run trained with {setting} {previous}, not {given}{note}; {advice}.")


def check_resume_matches(config, scale, files, info):
    """Refuses to resume a run with settings other than those it was trained with (and
    that run.json would then wrongly record): the model's (`scale`: the main image tower's,
    as resolved now), the batch size, the data, the tokenizer. Other settings (--steps,
    --lr, --accum-steps, logging) may change between sessions."""
    run = rd.read_run_record(config.out)
    # The image size as resolved (none given means the scale's own).
    previous = dict(run.config, image_size=run.image_size)
    given = dict(config.to_json(), image_size=scale.image_size)
    keys = [k for k in MODEL_KEYS if not (k == "pretrained" and config.mode == "clip")]  # CLIP has no h
    keys.append("batch_size")  # the schedule, the data order and the resume position all depend on it
    keys.append("augment")  # the images the steps to come see
    if not config.tokenizer and not previous.get("tokenizer"):
        keys.append("vocab_size")  # of the tokenizer the run trained itself
    for k in keys:
        if _setting(previous, k) != _setting(given, k):
            raise ResumeRefused(config.out, k, _setting(previous, k), _setting(given, k))
    # The data by the fingerprint of its shards' names and sizes rather than by its path:
    # a dataset moved to another disk still resumes; other shards under the same path do not.
    trained_on = (run.dataset or {}).get("sha256")
    if trained_on is not None and trained_on != fingerprint(files, info)["sha256"]:
        raise ResumeRefused(config.out, "data", previous.get("data"), config.data, " (other shards)")
    if config.tokenizer:
        check_sentencepiece_file(config.tokenizer)
        if not _same_bytes(config.tokenizer, os.path.join(config.out, rd.TOKENIZER)):
            raise ResumeRefused(
                config.out,
                "tokenizer",
                os.path.join(config.out, rd.TOKENIZER),
                config.tokenizer,
                " (another model; given none, the run resumes with its own)",
            )


def check_init_matches(config):
    """Refuses to resume a run from another init preset than it started from, before the
    run's copy of that preset is touched."""
    previous = rd.read_run_record(config.out).config.get("init")
    if previous != config.init:
        raise ResumeRefused(config.out, "init", previous, config.init)


def _setting(settings, key):
    """`key` of a run's settings as trained: a setting run.json lacks did not exist yet when
    it was written (its default then), and runs before several third towers recorded
    `pretrained` as one name."""
    value = settings.get(key, getattr(TrainConfig, key))
    if key == "loss" and value is None and not settings.get("init"):  # none given: softmax, but for --init
        value = "softmax"
    if key in ("pretrained", "pretrained_text"):
        value = " ".join(pretrained_names(value))
    return value


def _same_bytes(path, other):
    if not storage.isfile(other):
        return False
    return storage.read_bytes(path) == storage.read_bytes(other)


def setup_tokenizer(config, files, log, chief=True, fields=None):
    """The run's tokenizer.model: the run's own when resuming, else --tokenizer or one
    trained on the captions (of a TFDS dataset with `fields`). Only the chief writes into the
    run directory (which it has checked and claimed); other workers make their identical copy
    in a private folder."""
    from tt_cli.data.pipeline import read_captions
    from tt_cli.data.tokenizer import train_sentencepiece

    path = os.path.join(config.out, rd.TOKENIZER)
    if not chief and not (storage.isfile(path) and not config.restart and not config.tokenizer):
        path = os.path.join(tempfile.mkdtemp(prefix="tt-worker-"), rd.TOKENIZER)
    tmp = path + ownership.TMP
    if chief and (config.tokenizer or config.restart):  # may replace the run's tokenizer: only tt's own
        ownership.OutputFolder(config.out, "tt train").check_replaceable([rd.TOKENIZER])
    if config.tokenizer:
        check_sentencepiece_file(config.tokenizer)
        if _same_bytes(config.tokenizer, path):
            return path
        # A run resumes only with its own tokenizer (checked before); here no checkpoint uses the old one.
        storage.copyfile(config.tokenizer, tmp)
    elif storage.isfile(path) and not config.restart:
        return path
    else:
        log(f"training a SentencePiece tokenizer (vocab {config.vocab_size}) on the training captions")
        # Every worker trains the same model (deterministic).
        train_sentencepiece(
            read_captions(files, data=config.data, fields=fields), tmp, config.vocab_size, on_warning=log
        )
    storage.replace(tmp, path)
    if chief:
        record_run_files(config.out, [rd.TOKENIZER])
    return path
