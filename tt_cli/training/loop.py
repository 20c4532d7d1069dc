"""The training loop of `tt train`: tt's distributed step (see step.py) driven with Keras
callbacks, and the one line that says why a run stopped early.

In use (inside `trainer.train`, after the model, its input and the callbacks are built):

```python
logs, read_error = fit(model, runtime, iter(dataset), steps, callbacks)
```
"""

from tt_cli.errors import TtError


class TrainingStopped(TtError):
    """The run stopped early (a signal or a NaN loss); its checkpoint is kept."""


def fit(model, runtime, iterator, steps, callbacks, accum_steps=1):
    """`model.fit` for one stretch of steps, with tt's distributed step (see step.py), each
    in `accum_steps` micro-batches.

    Returns (the last logs, the error that stopped reading the shards or None). A read
    error ends the loop and the callbacks end as usual; the failed step has advanced the
    optimizer's step counter but not the weights, so no checkpoint is saved for it
    (`callbacks.Checkpoints`) and the last one stands.
    """
    import keras
    import tensorflow as tf

    from tt_cli.data.pipeline import is_read_error
    from tt_cli.training.step import make_distributed_step

    distributed_step = make_distributed_step(model, runtime.strategy, runtime.jit, accum_steps)
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


def raise_if_stopped(saver, manager, read_error, files, data):
    """Raises `TrainingStopped` naming why the loop ended before its last step (a shard it
    could not read, a NaN loss, a signal) and which checkpoint stands."""
    from tt_cli.data.pipeline import shard_read_error
    from tt_cli.training.callbacks import global_step

    if read_error is not None:
        kept = (
            f"the last checkpoint, {manager.latest_checkpoint}, is kept"
            if manager.latest_checkpoint
            else "no checkpoint was saved yet"
        )
        then = f"; training stopped after step {saver.finished_step} and {kept}"
        raise shard_read_error(read_error, files, data, TrainingStopped, then)
    if saver.nan_step is not None:
        raise TrainingStopped(
            f"loss became NaN at step {saver.nan_step}; stopped and kept the last good "
            f"checkpoint ({manager.latest_checkpoint or 'none'}). Try a lower learning rate or "
            "float32 precision."
        )
    if saver.stop_signal is not None:
        raise TrainingStopped(
            f"stopped by signal {saver.stop_signal} at step {global_step(saver.model)}; "
            "checkpoint saved. Run the same command again to resume."
        )
