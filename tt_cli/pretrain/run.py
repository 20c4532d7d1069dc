"""`pretrain(config)`: one run of `tt pretrain`, from labelled shards to a KerasHub preset,
on `tt train`'s distributed loop (`tt_cli.training`: the run set-up, the step, the
callbacks, the stop handling), resumable by running it again. The order: the run set-up
(strategy first), the output folder (`output.py`), the data and its classes (`data.py`),
the build in the strategy's scope and the restore of the last checkpoint, the loop from
that step on, then the held-out accuracy and the preset.
"""

import json
import os
import time

from tt_cli import run_dir as rd
from tt_cli import storage
from tt_cli.errors import InvalidValueError
from tt_cli.pretrain import output
from tt_cli.pretrain.data import class_names_of, labelled_dataset, read_errors_named, resolve_labelled

KEPT_CHECKPOINTS = 2


def _accuracy(classifier, dataset):
    """(top-1 accuracy, example count) of a finite dataset; accuracy None when it is empty."""
    import numpy as np

    correct = total = 0
    for images, labels in dataset:
        predicted = np.argmax(classifier.predict_on_batch(images), axis=-1)
        correct += int(np.sum(predicted == labels.numpy()))
        total += len(predicted)
    return (correct / total if total else None), total


def _last_logged(out, key):
    """`key` of the last line of `out`'s metrics.jsonl that has it (None if none does)."""
    path = os.path.join(out, rd.METRICS)
    if not storage.isfile(path):
        return None
    values = []
    with storage.open(path) as f:
        for line in f:
            try:
                values.append(json.loads(line)[key])
            except (ValueError, KeyError):  # another line, or the last one cut by a kill
                pass
    return values[-1] if values else None


def _inputs(config):
    """(the training shards, their dataset.json info, the class names, the shards the
    held-out accuracy is measured on, the share of the training shards held out)."""
    files, info = resolve_labelled(config.data, "training shards")
    class_names = class_names_of(files, info, config.data)
    if not config.val_data:
        return files, info, class_names, files, config.holdout
    val_files, _ = resolve_labelled(config.val_data, "validation shards")
    class_names_of(val_files, None, config.val_data)  # labelled too
    return files, info, class_names, val_files, 0.0


def _build(runtime, scale, num_classes, steps, warmup, config):
    """The classifier in its training model, the optimizer and their checkpoint, in the strategy's scope."""
    import tensorflow as tf

    from tt_cli.pretrain.classifier import ClassifierTraining, build_classifier
    from tt_cli.training.optimizer import make_optimizer, warmup_cosine

    with runtime.strategy.scope():
        model = ClassifierTraining(build_classifier(scale, num_classes))
        schedule = warmup_cosine(config.lr, steps, warmup)
        # Keras' AdamW defaults (β₂ 0.999, ε 1e-7) suit a classifier; the schedule is tt train's.
        optimizer = make_optimizer(schedule, config.weight_decay, beta2=0.999, policy=runtime.policy, epsilon=1e-7)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, weights=rd.checkpointed_weights(model))
    return model, schedule, checkpoint


def pretrain(config, log=print, show_progress=True):
    """Trains the classifier, saves the preset to `config.out`, returns the summary it wrote.
    A run that stops early (a signal, a NaN loss, an unreadable shard) raises
    `tt_cli.training.loop.TrainingStopped` with its last checkpoint kept."""
    if not 0 <= config.holdout < 1:
        raise InvalidValueError(f"holdout {config.holdout}: must be in [0, 1).")
    if config.batch_size < 1:
        raise InvalidValueError(f"batch size {config.batch_size}: must be at least 1.")

    from tt_cli.training.runtime import start_runtime, total_steps

    runtime = start_runtime(
        config.strategy, config.seed, config.precision, config.jit, config.deterministic
    )  # before any other TensorFlow op

    from tt_cli.pretrain.classifier import build_classifier
    from tt_cli.step_memory import check_step_fits
    from tt_cli.strategy import worker_id
    from tt_cli.training import callbacks as cb
    from tt_cli.training import loop
    from tt_cli.training.config import model_scale
    from tt_cli.training.prepare import fingerprint
    from tt_cli.training.step import check_accum_steps

    check_accum_steps(config.batch_size, runtime.replicas, 1)
    scale = model_scale(config.scale, config.image_size)
    check_step_fits(scale, config.batch_size, runtime.replicas, max_text_len=1)  # images only
    size = (scale.image_size, scale.image_size)
    folder = output.check_out(config)
    files, info, class_names, val_files, holdout = _inputs(config)
    resuming = output.claim_out(folder, config, runtime.chief)
    if resuming:
        output.check_resume_matches(config, fingerprint(files, info), class_names, holdout)
    elif runtime.chief:
        output.write_settings(folder, config, fingerprint(files, info), class_names, holdout)

    num_train = round(info.num_examples * (1 - holdout)) if info is not None else None
    steps = total_steps(config.steps, config.epochs, num_train, config.batch_size, config.data)
    warmup = config.warmup_steps if config.warmup_steps is not None else steps // 20
    model, schedule, checkpoint = _build(runtime, scale, len(class_names), steps, warmup, config)
    # Other workers save their (identical) checkpoints aside, under checkpoints/.worker-<id>, as in tt train.
    worker = None if runtime.chief else worker_id(runtime.strategy)
    manager = output.run_checkpoints(config.out, checkpoint, keep=KEPT_CHECKPOINTS, worker=worker, log=log)
    if resuming:  # every worker from the chief's checkpoints: the newest intact one
        output.run_checkpoints(config.out, checkpoint, log=log, readonly=not runtime.chief).restore_newest()
    start = int(model.optimizer.iterations.numpy())
    log(
        f"pretraining a ViT ({config.scale}, {size[0]}x{size[1]}) on {len(class_names)} classes for {steps} steps"
        + (f" ({holdout:.0%} of the examples held out)" if holdout else "")
        + (f", resuming {config.out} at step {start}" if resuming else "")
    )
    started, logs = time.perf_counter(), {}
    if start < steps:
        dataset = runtime.strategy.distribute_datasets_from_function(
            lambda context: labelled_dataset(
                files,
                size,
                config.batch_size,
                training=True,
                holdout=holdout,
                augment=config.augment,
                seed=config.seed,
                shuffle_buffer=config.shuffle_buffer,
                start_step=start,
                input_context=context,
            )
        )
        # Logged metrics average the last `log_every` steps, so the final training accuracy
        # describes the end of training, not its whole course.
        callbacks, saver = cb.training_callbacks(
            config,
            runtime.chief,
            schedule,
            manager,
            steps,
            show_progress=show_progress,
            label="pretrain",
            unit="images",
            bar_keys=("loss", "accuracy"),
            summary_keys=("loss", "accuracy"),
        )
        with saver:
            logs, read_error = loop.fit(model, runtime, iter(dataset), steps - start, callbacks)
        loop.raise_if_stopped(saver, manager, read_error, files, config.data)
    seconds = time.perf_counter() - started

    # An uncompiled copy on one device, to score and save: saving the trained one would store its
    # optimizer state, which `ImageClassifier.from_preset` warns about and cannot use.
    saved = build_classifier(scale, len(class_names))
    saved.set_weights(model.classifier.get_weights())
    heldout_accuracy, num_heldout = None, 0
    if holdout or config.val_data:
        heldout = labelled_dataset(
            val_files, size, config.batch_size, training=False, holdout=holdout, heldout=holdout > 0
        )
        with read_errors_named(val_files, config.val_data or config.data):
            heldout_accuracy, num_heldout = _accuracy(saved, heldout)
    summary = {
        "command": config.command,
        "config": config.to_json(),
        "scale": scale.to_json(),
        "steps": steps,
        "seconds": round(seconds, 1),  # of this session's training
        "strategy": runtime.strategy_name,
        "replicas": runtime.replicas,
        "num_classes": len(class_names),
        "class_names": class_names,
        "train_accuracy": logs["accuracy"] if "accuracy" in logs else _last_logged(config.out, "accuracy"),
        "heldout_accuracy": heldout_accuracy,
        "heldout": config.val_data or f"{holdout:.0%} of {config.data}",
        "num_heldout": num_heldout,
        "chance": 1 / len(class_names),
        "output_dim": scale.width,
        "image_size": list(size),
    }
    if runtime.chief:
        # The backbone and its image converter make the preset `--pretrained` reads; the
        # task files beside them keep the whole classifier (`ImageClassifier.from_preset`).
        output.save_preset(saved, folder, config.out)
        output.finish(folder, config.out, summary)
    return summary
