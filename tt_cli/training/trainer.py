"""`train(config)`: one run of `tt train`, from shards to checkpoints, resumable.

The steps, in order: make the strategy (before any other TensorFlow op, as
multi-worker training needs), read the shards, resume or start the run directory,
set up the tokenizer, load the frozen tower, build and compile the model in the
strategy's scope, restore the last checkpoint, then `fit` from that step on.

Example:
>>> from tt_cli.training.config import TrainConfig
>>> train(TrainConfig(data="shards/", out="runs/demo", scale="tiny", steps=100))  # doctest: +SKIP
"""

import hashlib
import json
import math
import os
import platform
import shutil
import tempfile

from tt_cli import ownership
from tt_cli import run_dir as rd
from tt_cli.data import schema
from tt_cli.data.tokenizer import check_sentencepiece_file
from tt_cli.errors import ConflictError, InvalidValueError, TtError, UnreadableDataError
from tt_cli.jsonfile import write_json
from tt_cli.presets import load_pretrained_tower
from tt_cli.training.config import MODEL_KEYS


class TrainingStopped(TtError):
    """The run stopped early (a signal or a NaN loss); its checkpoint is kept."""


class ResumeRefused(ConflictError):
    """`out` holds a run that these settings cannot resume: `setting` (a `TrainConfig` field)
    was `previous` there and is `given` now. `restart=True` starts the run over."""

    def __init__(self, out, setting, previous, given, note="", advice="restart it or choose another run directory"):
        self.out, self.setting, self.previous, self.given, self.note = out, setting, previous, given, note
        super().__init__(f"{out} holds a run trained with {setting} {previous}, not {given}{note}; {advice}.")


def _fingerprint(files, info):
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{os.path.basename(f)}:{os.path.getsize(f)}".encode())
    return {"files": len(files), "num_examples": info.num_examples if info else None, "sha256": digest.hexdigest()[:16]}


# Everything `tt train` writes in --out; --restart removes all of them but the tokenizer.
RUN_ENTRIES = (rd.RUN_JSON, rd.MODEL_JSON, rd.TOKENIZER, rd.CHECKPOINTS, rd.METRICS, rd.LOGS)
RESTART_REMOVES = (rd.CHECKPOINTS, rd.LOGS, rd.METRICS, rd.RUN_JSON, rd.MODEL_JSON)
# Keys every run.json of tt train has had: with model.json and checkpoints/ they mark a
# run directory written before tt kept a manifest.
LEGACY_RUN_KEYS = ("config", "mode", "scale", "steps", "dataset", "versions")


def _is_legacy_run(out):
    try:
        with open(os.path.join(out, rd.RUN_JSON)) as f:
            run_json = json.load(f)
    except (OSError, ValueError):
        return False
    return (isinstance(run_json, dict) and all(k in run_json for k in LEGACY_RUN_KEYS)
            and os.path.isfile(os.path.join(out, rd.MODEL_JSON)) and os.path.isdir(os.path.join(out, rd.CHECKPOINTS)))


def _prepare_out(config, chief):
    """Makes --out a run directory of tt's; returns True if it holds a checkpoint to resume.

    The chief refuses a folder whose run-directory names (run.json, logs/, ...) tt did
    not write, and records them as tt's (`tt_cli.ownership`); --restart removes only those.
    """
    folder = ownership.OutputFolder(config.out, "tt train")
    try:
        os.makedirs(config.out, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=config.out)
        os.close(handle)
        os.remove(probe)
    except OSError as e:
        raise InvalidValueError(f"{config.out}: cannot write the run directory ({e.strerror}).")
    checkpoints = os.path.join(config.out, rd.CHECKPOINTS)
    if chief:
        if not folder.has_manifest and _is_legacy_run(config.out):
            folder.adopt(RUN_ENTRIES)
        hint = "choose another run directory (a new folder, or one tt train wrote)"
        folder.check_free(RUN_ENTRIES, hint)
        if config.restart:
            folder.remove_owned(RESTART_REMOVES)
        folder.claim(RUN_ENTRIES, hint)
    return os.path.isdir(checkpoints) and rd.latest_checkpoint(config.out) is not None




def _check_resume_matches(config, files, info):
    """Refuses to resume a run with settings other than those it was trained with (and
    that run.json would then wrongly record): the model's, the batch size, the data, the
    tokenizer. Other settings (--steps, --lr, logging) may change between sessions."""
    run = rd.read_run_config(config.out)
    previous = run["config"]
    keys = [k for k in MODEL_KEYS if not (k == "pretrained" and config.mode == "clip")]  # CLIP has no h
    keys.append("batch_size")  # the schedule, the data order and the resume position all depend on it
    if not config.tokenizer and not previous.get("tokenizer"):
        keys.append("vocab_size")  # of the tokenizer the run trained itself
    for k in keys:
        if previous.get(k) != getattr(config, k):
            raise ResumeRefused(config.out, k, previous.get(k), getattr(config, k))
    # The data by the fingerprint of its shards' names and sizes rather than by its path:
    # a dataset moved to another disk still resumes; other shards under the same path do not.
    trained_on = run.get("dataset", {}).get("sha256")
    if trained_on is not None and trained_on != _fingerprint(files, info)["sha256"]:
        raise ResumeRefused(config.out, "data", previous.get("data"), config.data, " (other shards)")
    if config.tokenizer:
        check_sentencepiece_file(config.tokenizer)
        if not _same_bytes(config.tokenizer, os.path.join(config.out, rd.TOKENIZER)):
            raise ResumeRefused(config.out, "tokenizer", os.path.join(config.out, rd.TOKENIZER), config.tokenizer,
                                " (another model; given none, the run resumes with its own)")


def _same_bytes(path, other):
    if not os.path.isfile(other):
        return False
    with open(path, "rb") as a, open(other, "rb") as b:
        return a.read() == b.read()


def _setup_tokenizer(config, files, log, chief=True):
    """The run's tokenizer.model: the run's own when resuming, else --tokenizer or one
    trained on the captions. Only the chief writes into the run directory (which it has
    checked and claimed); other workers make their identical copy in a private folder."""
    from tt_cli.data.pipeline import read_captions
    from tt_cli.data.tokenizer import train_sentencepiece

    path = os.path.join(config.out, rd.TOKENIZER)
    if not chief and not (os.path.isfile(path) and not config.restart and not config.tokenizer):
        path = os.path.join(tempfile.mkdtemp(prefix="tt-worker-"), rd.TOKENIZER)
    if config.tokenizer:
        check_sentencepiece_file(config.tokenizer)
        if _same_bytes(config.tokenizer, path):
            return path
        # A run resumes only with its own tokenizer (checked before); here no checkpoint uses the old one.
        shutil.copyfile(config.tokenizer, path + f".tmp{os.getpid()}")
    elif os.path.isfile(path) and not config.restart:
        return path
    else:
        log(f"training a SentencePiece tokenizer (vocab {config.vocab_size}) on the training captions")
        # Every worker trains the same model (deterministic).
        train_sentencepiece(read_captions(files, data=config.data), path + f".tmp{os.getpid()}", config.vocab_size,
                            on_warning=log)
    os.replace(path + f".tmp{os.getpid()}", path)
    return path


def _use_precomputed(info, tower):
    """Precomputed h embeddings count only if the same model and preprocessing made them."""
    made = (info.h_embedding or {}) if info else {}
    return bool(made) and made.get("pretrained") == tower.preset and made.get("preprocessing") == tower.preprocessing


def _total_steps(config, files, info):
    if config.steps:
        return config.steps
    if info is None:
        raise InvalidValueError(f"{config.data}: no {schema.DATASET_JSON} to count examples; give the number of steps.")
    return max(1, math.ceil(config.epochs * info.num_examples / config.batch_size))


def _versions():
    import keras
    import keras_hub
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "keras_hub": keras_hub.__version__,
            "python": platform.python_version()}


def train(config, log=print, evaluate=None, show_progress=True):
    """Trains one run; returns the final training logs. `evaluate(model) -> dict` runs
    every `config.val_every` steps when given."""
    # The commonest mistake, checked before TensorFlow starts (and prints its start-up lines).
    if not config.data or not os.path.exists(config.data) and not any(c in config.data for c in "*?["):
        raise UnreadableDataError(f"{config.data}: no such file or directory (the training shards).")
    files, info = schema.resolve_shards(config.data)

    from tt_cli.training.strategy import (
        is_chief,
        make_strategy,
        resolve_jit,
        resolve_precision,
        strategy_name,
        worker_id,
    )

    strategy = make_strategy(config.strategy)  # before any other TensorFlow op

    import keras
    import tensorflow as tf

    from models import ThreeTowers, get_scale
    from tt_cli.data.pipeline import check_features, describe_read_error, train_dataset
    from tt_cli.data.tokenizer import TextTokenizer
    from tt_cli.training import callbacks as cb
    from tt_cli.training.optimizer import make_optimizer, warmup_cosine

    chief = is_chief(strategy)
    log = log if chief else (lambda *a, **k: None)
    resuming = _prepare_out(config, chief)
    if resuming:
        _check_resume_matches(config, files, info)
    # Seeded before any tokenizer exists: reseeding resets eager state that
    # SentencePiece resources live in. The same seed gives every worker the same weights.
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = resolve_precision(config.precision, strategy)
    keras.mixed_precision.set_global_policy(policy)
    jit = resolve_jit(config.jit, strategy)

    tokenizer_path = _setup_tokenizer(config, files, log, chief)
    tokenizer = TextTokenizer(tokenizer_path, config.max_text_len)
    scale = get_scale(config.scale)
    steps = _total_steps(config, files, info)
    warmup = config.warmup_steps if config.warmup_steps is not None else min(10_000, steps // 20)

    with strategy.scope():
        tower = load_pretrained_tower(config.pretrained, config.scale, log) if config.mode != "clip" else None
        precomputed = tower is not None and _use_precomputed(info, tower)
        check_features(files, need_h_embedding=precomputed)
        model = ThreeTowers.from_scale(
            scale, mode=config.mode, vocab_size=tokenizer.vocab_size, max_len=config.max_text_len,
            pretrained_tower=tower, pooling=config.pooling, aux_weight=config.aux_weight,
            lit_head=config.lit_head,
        )
        schedule = warmup_cosine(config.lr, steps, warmup)
        optimizer = make_optimizer(schedule, config.weight_decay, config.beta2, config.grad_clip_norm, policy)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, weights=rd.checkpointed_weights(model))
    checkpoint_dir = os.path.join(config.out, rd.CHECKPOINTS)
    if not chief:  # other workers write their (identical) copy aside
        checkpoint_dir = os.path.join(checkpoint_dir, f".worker-{worker_id(strategy)}")
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=config.keep_checkpoints,
                                         step_counter=optimizer.iterations)
    if resuming:
        rd.restore_checkpoint(checkpoint, rd.latest_checkpoint(config.out))
    start = int(optimizer.iterations.numpy())
    if resuming:
        log(f"resuming {config.out} at step {start}/{steps}")

    if chief:
        write_json(os.path.join(config.out, rd.RUN_JSON), {
            "config": config.to_json(), "mode": config.mode, "scale": config.scale, "scale_config": scale.to_json(),
            "pretrained": tower.preset if tower else None, "precomputed_h_embedding": bool(precomputed),
            "max_text_len": config.max_text_len, "vocab_size": tokenizer.vocab_size, "batch_size": config.batch_size,
            "steps": steps, "warmup_steps": warmup, "precision": policy, "jit": jit,
            "strategy": strategy_name(strategy), "replicas": strategy.num_replicas_in_sync,
            "dataset": _fingerprint(files, info), "versions": _versions(),
        })
        rd.save_model_config(config.out, model)
    if start >= steps:
        log(f"{config.out} already finished {steps} steps")
        return {}

    image_size = model.image_tower.image_size if model.image_tower is not None else (scale.image_size,) * 2
    h_size = tower.image_size if tower is not None and not precomputed else None
    # Each input pipeline makes its own tokenizer: the SentencePiece resource must
    # live where the dataset is built.
    dataset = strategy.distribute_datasets_from_function(lambda ctx: train_dataset(
        files, config.batch_size, image_size, TextTokenizer(tokenizer.model_bytes, config.max_text_len),
        h_image_size=h_size,
        h_embedding_dim=tower.output_dim if precomputed else None, seed=config.seed, start_step=start,
        shuffle_buffer=config.shuffle_buffer, input_context=ctx,
    ))
    metrics_log = cb.MetricsLog(os.path.join(config.out, rd.METRICS), os.path.join(config.out, rd.LOGS),
                                config.log_every, schedule, config.batch_size)
    saver = cb.Checkpoints(manager, config.checkpoint_every)
    callbacks = [saver, cb.TrainProgress(steps, config.batch_size, config.log_every, enabled=chief and show_progress)]
    if chief:
        callbacks.insert(1, metrics_log)
        if evaluate is not None:
            callbacks.append(cb.Validation(evaluate, config.val_every, metrics_log))
    callbacks.append(cb.ResetMetricsEvery(config.log_every, steps))
    with saver:
        logs, read_error = _fit(model, strategy, iter(dataset), steps - start, callbacks, jit)
    step = int(optimizer.iterations.numpy())
    if read_error is not None:
        kept = f"the last checkpoint, {manager.latest_checkpoint}, is kept" if manager.latest_checkpoint else \
            "no checkpoint was saved yet"
        raise TrainingStopped(f"{describe_read_error(read_error, files, config.data)}; training stopped after step "
                              f"{saver.finished_step} and {kept}.")
    if saver.nan_step is not None:
        raise TrainingStopped(f"loss became NaN at step {saver.nan_step}; stopped and kept the last good "
                              f"checkpoint ({manager.latest_checkpoint or 'none'}). Try a lower learning rate or "
                              "float32 precision.")
    if saver.stop_signal is not None:
        raise TrainingStopped(f"stopped by signal {saver.stop_signal} at step {step}; checkpoint saved. "
                              "Run the same command again to resume.")
    return logs


def _fit(model, strategy, iterator, steps, callbacks, jit):
    """`model.fit` for one stretch of steps, with tt's distributed step (see step.py).

    Returns (the last logs, the error that stopped reading the shards or None). A read
    error ends the loop and the callbacks end as usual; the failed step has advanced the
    optimizer's step counter but not the weights, so no checkpoint is saved for it
    (`callbacks.Checkpoints`) and the last one stands.
    """
    import keras
    import tensorflow as tf

    from tt_cli.data.pipeline import is_read_error
    from tt_cli.training.step import make_distributed_step

    distributed_step = make_distributed_step(model, strategy, jit)
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    model.stop_training = False
    model.reset_metrics()
    callback_list.on_train_begin()
    logs, read_error = {}, None
    for batch in range(steps):
        try:
            logs = {k: float(v) for k, v in distributed_step(iterator).items()}
        except tf.errors.OpError as e:
            if not is_read_error(e):
                raise
            read_error = e
            break
        callback_list.on_train_batch_end(batch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return logs, read_error
