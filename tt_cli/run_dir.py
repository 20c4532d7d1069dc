"""The run directory (ARCHITECTURE.md, "Data flow"): everything needed to resume, evaluate and export.

    RUN/run.json          every setting as given and as resolved, versions, dataset fingerprint (`run_record`)
    RUN/model.json        the model's Keras config (rebuilds it with no network)
    RUN/tokenizer.model   the SentencePiece model
    RUN/init/             with --init: the preset's copy (`tt_cli.init_preset`), its tokenizer
    RUN/checkpoints/      tf.train checkpoints (model + optimizer) for resuming, listed in the
                          run's manifest (`tt_cli.checkpoints`)
    RUN/metrics.jsonl     one JSON line per logged step
    RUN/logs/             TensorBoard event files
    RUN/wandb.json        with --wandb: the W&B run's project and id (a resume continues it)
    RUN/wandb/            with --wandb: W&B's local files

In use (after a training run):

```python
run = load_run("runs/demo")
run.model.encode_text(run.tokenizer.tokenize(tf.constant(["a red circle"])))
```
"""

import dataclasses
import json
import os

from tt_cli import storage
from tt_cli.checkpoints import CHECKPOINTS, LOGS, METRICS, RunCheckpoints  # noqa: F401  (the run's names)
from tt_cli.errors import ConflictError, InvalidValueError, UnreadableDataError
from tt_cli.jsonfile import write_json
from tt_cli.run_record import RunRecord

RUN_JSON = "run.json"
MODEL_JSON = "model.json"
TOKENIZER = "tokenizer.model"
WANDB_JSON = "wandb.json"
WANDB = "wandb"


def read_run_record(run_dir):
    """The `RunRecord` of `run.json` in `run_dir`; one line when there is none or it is damaged."""
    path = os.path.join(run_dir, RUN_JSON)
    if not storage.isdir(run_dir):
        raise UnreadableDataError(f"{run_dir}: no such run directory.")
    if not storage.isfile(path):
        raise ConflictError(f"{run_dir}: not a run directory (no {RUN_JSON}); `tt train` makes one.")
    try:
        with storage.open(path) as f:
            raw = json.load(f)
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise UnreadableDataError(f"{path}: not a valid {RUN_JSON} ({e}); the run directory is damaged.") from None
    return RunRecord.from_json(raw, path)


def write_run_record(run_dir, record):
    write_json(os.path.join(run_dir, RUN_JSON), record.to_json())


def save_model_config(run_dir, model):
    import keras

    write_json(os.path.join(run_dir, MODEL_JSON), keras.saving.serialize_keras_object(model))


def build_model(run_dir):
    """Rebuilds the run's model from `model.json` (random weights, no network)."""
    import keras

    import models  # noqa: F401  (registers tt's serializable classes)

    with storage.open(os.path.join(run_dir, MODEL_JSON)) as f:
        return keras.saving.deserialize_keras_object(json.load(f))


def checkpointed_weights(model):
    """Every weight of the model, in its build order, for tf.train checkpoints.

    `tf.train.Checkpoint(model=...)` does not reach the layers inside KerasHub's
    functional backbones; trainable ones are still saved through the optimizer, but the
    frozen tower's would be lost. Listing them all makes every checkpoint complete.
    """
    return list(model.weights)


def _first_line(error):
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


@dataclasses.dataclass
class Run:
    path: str
    record: RunRecord  # run.json
    model: object  # models.ThreeTowers with the latest checkpoint's weights
    tokenizer: object  # a tt_cli.data.tokenizer_interface.Tokenizer
    step: int
    interpolate: float = None  # WiSE-FT's weight of the trained model, when asked for (`load_run`)

    @property
    def config(self):
        """The run's settings as given (`TrainConfig` fields)."""
        return self.record.config


def load_run(run_dir, interpolate=None):
    """Loads a trained run for evaluation or export; one clear line if it cannot.

    `interpolate`: for a run started from a preset, WiSE-FT's weight A of the trained model
    (`tt_cli.init_preset.interpolate`): A x trained + (1 - A) x the preset's model at step 0.
    A KerasHub CLIP, SigLIP or MetaCLIP 2 preset directory (`tt export preset` writes them)
    loads as a run too: its model as it is, in clip mode, at step 0."""
    import tensorflow as tf

    from tt_cli import init_preset
    from tt_cli.data.text_tokenizer import TextTokenizer

    if init_preset.is_preset_dir(run_dir):
        if interpolate is not None:
            raise InvalidValueError(f"{run_dir}: a KerasHub preset, not a run; interpolation {interpolate} needs one.")
        return Run(run_dir, *init_preset.load_preset_model(run_dir), 0)
    record = read_run_record(run_dir)
    checkpoints = RunCheckpoints(None, run_dir)
    if not checkpoints.steps() or not storage.isfile(os.path.join(run_dir, MODEL_JSON)):
        raise InvalidValueError(f"{run_dir}: no finished checkpoint yet; train it with `tt train` until it saves one.")
    try:
        model = build_model(run_dir)
    except (ValueError, TypeError, KeyError) as e:  # a damaged model.json: bad JSON or not a model's config
        raise UnreadableDataError(
            f"{os.path.join(run_dir, MODEL_JSON)}: cannot rebuild the model ({_first_line(e)})."
        ) from None
    checkpoints.checkpoint = tf.train.Checkpoint(model=model, weights=checkpointed_weights(model))
    step = checkpoints.restore_latest()
    if record.config.get("init"):  # the preset's own tokenizer, from the run's copy of it
        tokenizer = init_preset.run_tokenizer(os.path.join(run_dir, init_preset.INIT_DIR))
    else:
        try:
            tokenizer = TextTokenizer(os.path.join(run_dir, TOKENIZER), max_len=record.config["max_text_len"])
        except (RuntimeError, tf.errors.OpError):  # SentencePiece cannot parse the file
            raise UnreadableDataError(
                f"{os.path.join(run_dir, TOKENIZER)}: damaged; not a SentencePiece model."
            ) from None
    run = Run(run_dir, record, model, tokenizer, step)
    if interpolate is not None:
        init_preset.interpolate(run, interpolate)
    return run
