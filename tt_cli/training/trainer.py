"""`train(config)`: one run of `tt train`, from shards to checkpoints, resumable.

The steps, in order, each in its own module: the run set-up (`runtime.py`: strategy
before any other TensorFlow op, seed, precision, XLA), the run directory (`prepare.py`:
claim or resume --out, check a resume, put the tokenizer in place), the build
(`build.py`: model, optimizer, checkpoint, in the strategy's scope), the restore of the
last checkpoint, the input (`inputs.py`), the callbacks (`callbacks.py`) and the loop
(`loop.py`) from that step on.

In use (what `tt train --data shards/ --out runs/demo --scale tiny --steps 100` runs; it
needs shards, so it is not run here):

```python
from tt_cli.training.config import TrainConfig

result = train(TrainConfig(data="shards/", out="runs/demo", scale="tiny", steps=100))
result.model, result.tokenizer, result.logs["loss"]
```
"""

import dataclasses

from tt_cli import init_preset, storage
from tt_cli import run_dir as rd
from tt_cli.checkpoints import RunCheckpoints
from tt_cli.data import schema, tfds_catalog
from tt_cli.errors import InvalidValueError, UnreadableDataError
from tt_cli.step_memory import check_step_fits, out_of_memory_named
from tt_cli.training import prepare


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a run leaves in memory for its final evaluation: the trained `model` (with the
    last checkpoint's weights when the run had already finished), its `tokenizer`, and
    the last step's `logs` (empty when there was nothing left to train)."""

    model: object
    tokenizer: object
    logs: dict


def _check_data_exists(config):
    # The commonest mistake, checked before TensorFlow starts (and prints its start-up lines).
    if tfds_catalog.is_tfds(config.data):
        return
    if not config.data or not storage.exists(config.data) and not any(c in config.data for c in "*?["):
        raise UnreadableDataError(f"{config.data}: no such file or directory (the training shards).")


def _check_image_settings(config):
    """The image size and augmentation are the main image tower's, which LiT does not have
    (its image side is the locked pretrained tower, at the size it was trained at)."""
    if config.mode != "lit":
        return
    if config.image_size is not None:
        raise InvalidValueError(
            f"image size {config.image_size}: LiT trains no image tower of its own (the locked "
            "tower takes the size it was trained at); give it for 3T or CLIP only."
        )
    if config.augment:
        raise InvalidValueError(
            "augment: LiT trains no image tower of its own, so there is nothing to augment; augment 3T or CLIP only."
        )


def _write_run_record(config, runtime, built, tokenizer, files, info, steps, init=None):
    """run.json (the settings as given and what they resolved to, `tt_cli.run_record`) and
    model.json (the model rebuilt without network). With an `init` preset, what it resolved:
    the preset and its copy, its sequence length and image size, and the loss."""
    from tt_cli.run_record import RunRecord
    from tt_cli.training.runtime import versions

    resolved = {
        "scale": built.scale.to_json(),
        "third_towers": [tower.to_json() for tower in built.third_towers],
        "vocab_size": tokenizer.vocab_size,
        "steps": steps,
        "warmup_steps": built.warmup,
        "precision": runtime.policy,
        "jit": runtime.jit,
        "strategy": runtime.strategy_name,
        "replicas": runtime.replicas,
    }
    if init is not None:
        resolved.update(init=init.describe(), loss=built.model.loss_name)
    record = RunRecord(config.to_json(), resolved, prepare.fingerprint(files, info), versions())
    rd.write_run_record(config.out, record)
    rd.save_model_config(config.out, built.model)


def train(config, log=print, evaluator=None, show_progress=True):
    """Trains one run; returns a `TrainResult`. `evaluator.evaluate(model, tokenizer) -> dict`
    (e.g. `tt_cli.eval.validation.ValidationEvaluator`) runs every `config.val_every` steps
    when given. A run that stops early raises `loop.TrainingStopped`; one that runs out of
    memory, an `InvalidValueError` naming its sizes."""
    sizes = dict(batch_size=config.batch_size, max_text_len=config.max_text_len, image_size=config.image_size)
    with out_of_memory_named(**sizes):
        return _train(config, log, evaluator, show_progress)


def _train(config, log, evaluator, show_progress):
    _check_data_exists(config)
    _check_image_settings(config)
    if config.init:
        init_preset.check_source(config)
    files, info = schema.resolve_shards(config.data, config.tfds)

    from tt_cli.training.runtime import start_runtime, total_steps

    runtime = start_runtime(
        config.strategy, config.seed, config.precision, config.jit, config.deterministic
    )  # before any other TensorFlow op
    from tt_cli.training.config import model_scale

    scale = model_scale(config.scale, config.image_size)  # a size the scale's patches tile, before any work

    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.training import callbacks as cb
    from tt_cli.training import inputs, loop
    from tt_cli.training.build import build_training
    from tt_cli.training.step import check_accum_steps

    check_accum_steps(config.batch_size, runtime.replicas, config.accum_steps)
    check_step_fits(scale, config.batch_size, runtime.replicas, config.max_text_len, accum_steps=config.accum_steps)
    chief = runtime.chief
    log = log if chief else (lambda *a, **k: None)
    resuming = prepare.prepare_out(config, chief)
    init = None
    if config.init:  # the run's copy of the preset, made before a resume check reads the settings
        if resuming:
            prepare.check_init_matches(config)
        init = init_preset.prepare_init(config, chief, log)
    if resuming:
        prepare.check_resume_matches(config, scale, files, info)
    given = config  # run.json records the settings as given; the preset resolves some (`resolve_config`)
    if init is not None:
        config = init_preset.resolve_config(config, init)
        tokenizer = init_preset.run_tokenizer(init.path)
    else:
        tokenizer = TextTokenizer(
            prepare.setup_tokenizer(config, files, log, chief, schema.record_fields(info)), config.max_text_len
        )
    steps = total_steps(
        config.steps, config.epochs, info.num_examples if info else None, config.batch_size, config.data
    )
    built = build_training(config, runtime, scale, tokenizer, info, files, steps, log, init=init)
    if resuming:  # every worker from the chief's checkpoints: the newest intact one, named
        restored = RunCheckpoints(built.checkpoint, config.out, log=log, readonly=not chief).restore_newest()
    start = int(built.optimizer.iterations.numpy())
    if resuming:
        log(f"resuming {config.out} from {rd.CHECKPOINTS}/ckpt-{restored} at step {start}/{steps}")
    if chief:
        _write_run_record(given, runtime, built, tokenizer, files, info, steps, init)
        prepare.record_run_files(config.out, [rd.RUN_JSON, rd.MODEL_JSON])
    if start >= steps:
        log(f"{config.out} already finished {steps} steps")
        return TrainResult(model=built.model, tokenizer=tokenizer, logs={})

    dataset = inputs.training_input(config, runtime, files, tokenizer, built, start, schema.record_fields(info))
    callbacks, saver = cb.training_callbacks(
        config, chief, built.schedule, built.manager, steps, evaluator, tokenizer, show_progress
    )
    with saver:
        logs, read_error = loop.fit(built.model, runtime, iter(dataset), steps - start, callbacks, config.accum_steps)
    loop.raise_if_stopped(saver, built.manager, read_error, files, config.data)
    return TrainResult(model=built.model, tokenizer=tokenizer, logs=logs)
