"""The progress bar of `tt pretrain`: step, loss, accuracy, images/s and ETA.

Metrics are averages over the last `log_every` steps (reset after each summary
line), so the final training accuracy describes the end of training, not its
whole course.

Example:
>>> classifier.fit(ds, steps_per_epoch=200, callbacks=[PretrainProgress(200, 64, 50)])  # doctest: +SKIP
"""

import time

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

STDERR = Console(stderr=True)


class PretrainProgress(keras.callbacks.Callback):
    def __init__(self, total_steps, batch_size, log_every, enabled=True):
        super().__init__()
        self.total, self.batch_size, self.log_every, self.enabled = total_steps, batch_size, log_every, enabled
        self.progress = Progress(
            TextColumn("[bold]pretrain"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]} acc {task.fields[acc]}"), TextColumn("{task.fields[rate]} images/s"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=STDERR, disable=not enabled,
        )

    def on_train_begin(self, logs=None):
        self.progress.start()
        self.task = self.progress.add_task("pretrain", total=self.total, loss="-", acc="-", rate="-")
        self.window_start, self.window_step = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        logs = {k: float(v) for k, v in (logs or {}).items()}
        now = time.perf_counter()
        rate = (step - self.window_step) * self.batch_size / max(now - self.window_start, 1e-9)
        loss, acc = logs.get("loss", float("nan")), logs.get("accuracy", float("nan"))
        self.progress.update(self.task, completed=step, loss=f"{loss:.4f}", acc=f"{acc:.3f}", rate=f"{rate:,.0f}")
        if step % self.log_every == 0 or step == self.total:
            if self.enabled:
                self.progress.console.print(f"step {step}/{self.total} loss {loss:.4g} accuracy {acc:.4g} {rate:,.0f} images/s")
            self.window_start, self.window_step = now, step
            if step < self.total:  # the last window is the run's result
                self.model.reset_metrics()

    def on_train_end(self, logs=None):
        self.progress.stop()
