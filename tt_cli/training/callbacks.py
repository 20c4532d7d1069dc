"""Keras callbacks of `tt train`: progress, metrics logs, checkpoints, signals, NaN guard.

Each reads the global step from the optimizer, so a resumed run logs and
checkpoints at the same step numbers an uninterrupted run would.
"""

import math
import signal
import time

import keras
import tensorflow as tf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tt_cli.console import STDERR
from tt_cli.jsonfile import append_json_lines


def global_step(model):
    return int(model.optimizer.iterations.numpy())


def scalar_logs(logs):
    return {k: float(v) for k, v in (logs or {}).items()}


class TrainProgress(keras.callbacks.Callback):
    """A rich bar with step, loss, examples/s and ETA, and a summary line every N steps.

    `tt train` counts image-text pairs; `tt pretrain` (label "pretrain", unit "images",
    the bar also showing accuracy) counts images.
    """

    def __init__(
        self,
        total_steps,
        batch_size,
        log_every,
        enabled=True,
        label="train",
        unit="pairs",
        bar_keys=("loss",),
        summary_keys=("loss", "accuracy", "t_image_text"),
    ):
        super().__init__()
        self.total, self.batch_size, self.log_every, self.enabled = total_steps, batch_size, log_every, enabled
        self.label, self.unit, self.bar_keys, self.summary_keys = label, unit, bar_keys, summary_keys
        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TextColumn(f"{{task.fields[rate]}} {unit}/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=STDERR,
            disable=not enabled,
        )

    def on_train_begin(self, logs=None):
        self.progress.start()
        step = global_step(self.model)
        self.task = self.progress.add_task(self.label, total=self.total, completed=step, metrics="", rate="-")
        self.window_start, self.window_step = time.perf_counter(), step

    def on_train_batch_end(self, batch, logs=None):
        step, logs = global_step(self.model), scalar_logs(logs)
        now = time.perf_counter()
        rate = (step - self.window_step) * self.batch_size / max(now - self.window_start, 1e-9)
        metrics = " ".join(f"{BAR_NAMES.get(k, k)} {logs[k]:.4f}" for k in self.bar_keys if k in logs)
        self.progress.update(self.task, completed=step, metrics=metrics, rate=f"{rate:,.0f}")
        if step % self.log_every == 0 or step == self.total:
            if self.enabled:
                parts = " ".join(f"{k} {logs[k]:.4g}" for k in self.summary_keys if k in logs)
                self.progress.console.print(f"step {step}/{self.total} {parts} {rate:,.0f} {self.unit}/s")
            self.window_start, self.window_step = now, step

    def on_train_end(self, logs=None):
        self.progress.stop()


BAR_NAMES = {"accuracy": "acc"}


class ResetMetricsEvery(keras.callbacks.Callback):
    """Makes logged metrics averages over the last N steps, not since the run began.
    Must come after every callback that reads the logs."""

    def __init__(self, every, total_steps):
        super().__init__()
        self.every, self.total = every, total_steps

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if step % self.every == 0 and step < self.total:  # the last window is the run's result
            self.model.reset_metrics()


class MetricsLog(keras.callbacks.Callback):
    """Appends a JSON line to `metrics.jsonl` and TensorBoard scalars every N steps, with the
    rate as `<unit>_per_second` (examples per step: `batch_size`), and hands the same numbers
    to each of `also` (`write(step, values)`: the W&B logger)."""

    def __init__(self, path, logdir, log_every, learning_rate_fn, batch_size, also=(), unit="pairs"):
        super().__init__()
        self.path, self.log_every, self.lr, self.batch_size = path, log_every, learning_rate_fn, batch_size
        self.rate_key = f"{unit}_per_second"
        self.writer = tf.summary.create_file_writer(logdir)
        self.window = None
        self.also = tuple(also)

    def write(self, step, values):
        append_json_lines(self.path, [{"step": step, **values}])
        with self.writer.as_default(step=step):
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    tf.summary.scalar(k, v)
        self.writer.flush()
        for logger in self.also:
            logger.write(step, values)
        self.after_write()

    def after_write(self):
        """Called after each write (the run stamps what it appended: `RunCheckpoints.record_logs`)."""

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        now = time.perf_counter()
        if self.window is None:
            self.window = (now, step - 1)
        if step % self.log_every == 0:
            start, start_step = self.window
            values = scalar_logs(logs)
            values["lr"] = float(self.lr(step))
            values[self.rate_key] = (step - start_step) * self.batch_size / max(now - start, 1e-9)
            self.write(step, values)
            self.window = (now, step)


class Checkpoints(keras.callbacks.Callback):
    """Saves every N steps, at the end, and when SIGTERM or Ctrl-C asks the run to stop.

    A signal only sets a flag: the checkpoint is written between steps, where the
    weights are consistent, and then training stops. A step that failed (its input
    could not be read) has still advanced the optimizer's step counter, so the end of
    training saves only when the counter is where the last finished step left it.
    """

    def __init__(self, manager, every):
        super().__init__()
        self.manager, self.every = manager, every
        self.stop_signal = None
        self.nan_step = None
        self.finished_step = None

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _on_signal(self, signum, frame):
        self.stop_signal = signum

    def save(self):
        step = global_step(self.model)
        if self.manager.latest_checkpoint is None or not self.manager.latest_checkpoint.endswith(f"-{step}"):
            self.manager.save(checkpoint_number=step)

    def on_train_begin(self, logs=None):
        self.finished_step = global_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.finished_step = global_step(self.model)
        loss = scalar_logs(logs).get("loss", 0.0)
        if not math.isfinite(loss):
            # Keep the last good checkpoint: stop without saving these weights.
            self.nan_step = global_step(self.model)
            self.model.stop_training = True
            return
        if global_step(self.model) % self.every == 0 or self.stop_signal is not None:
            self.save()
        if self.stop_signal is not None:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.nan_step is None and global_step(self.model) == self.finished_step:
            self.save()


class Validation(keras.callbacks.Callback):
    """Runs `evaluator.evaluate(model, tokenizer) -> dict` every N steps and logs the numbers."""

    def __init__(self, evaluator, tokenizer, every, metrics_log, enabled=True):
        super().__init__()
        self.evaluator, self.tokenizer, self.every = evaluator, tokenizer, every
        self.metrics_log, self.enabled = metrics_log, enabled

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if self.enabled and step % self.every == 0:
            results = self.evaluator.evaluate(self.model, self.tokenizer)
            self.metrics_log.write(step, {f"val/{k}": v for k, v in results.items()})
            STDERR.print(f"step {step} validation " + " ".join(f"{k} {v:.4f}" for k, v in results.items()))


def training_callbacks(
    config, chief, schedule, manager, steps, evaluator=None, tokenizer=None, show_progress=True, **progress
):
    """(the callbacks of `tt train` in the order they must run, the checkpoint saver).

    `config` gives `out`, `batch_size`, `log_every`, `checkpoint_every` (and `val_every` with
    an `evaluator`): a `TrainConfig`, or `tt pretrain`'s, which also passes `progress`, the
    `TrainProgress` label, unit and keys (the unit names the logged rate too).
    Only the chief writes metrics and validates; every worker checkpoints. Metrics are
    reset last, after every callback that reads them.
    """
    import os

    from tt_cli import run_dir as rd

    wandb_log = None
    if chief and getattr(config, "wandb", None):
        from tt_cli.training.wandb_log import WandbLog

        wandb_log = WandbLog(config.wandb, config.wandb_run, config.out, config.to_json())
    saver = Checkpoints(manager, config.checkpoint_every)
    callbacks = [
        saver,
        TrainProgress(steps, config.batch_size, config.log_every, enabled=chief and show_progress, **progress),
    ]
    if chief:  # (its event file appears as the writer is made: other workers make none in RUN/logs)
        metrics_log = MetricsLog(
            os.path.join(config.out, rd.METRICS),
            os.path.join(config.out, rd.LOGS),
            config.log_every,
            schedule,
            config.batch_size,
            also=[wandb_log] if wandb_log else (),
            unit=progress.get("unit", "pairs"),
        )
        metrics_log.after_write = manager.record_new_logs
        manager.record_logs()
        callbacks.insert(1, metrics_log)
        if evaluator is not None:
            callbacks.append(Validation(evaluator, tokenizer, config.val_every, metrics_log))
    if wandb_log is not None:
        callbacks.append(wandb_log)  # after the metrics log: its curves read metrics.jsonl at the end
    callbacks.append(ResetMetricsEvery(config.log_every, steps))
    return callbacks, saver
