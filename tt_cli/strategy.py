"""Which `tf.distribute` strategy and precision a run uses when they are left on `auto`.

`auto`: `MultiWorkerMirroredStrategy` when `TF_CONFIG` is set, `TPUStrategy` on a
TPU, `MirroredStrategy` over all local GPUs, the default strategy otherwise.
Precision `auto`: bfloat16 mixed precision on GPU and TPU, float32 on CPU.
The strategy must be made before any other TensorFlow op runs (multi-worker needs it).
"""

import functools
import json
import os

import tensorflow as tf

from tt_cli.errors import InvalidValueError

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
PRECISIONS = {"auto": None, "float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def _tpu_resolver():
    if not (os.environ.get("TPU_NAME") or os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio")):
        return None
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, tf.errors.NotFoundError):
        return None


def make_strategy(name="auto"):
    if name not in STRATEGIES:
        raise InvalidValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name == "multiworker" or (name == "auto" and "TF_CONFIG" in os.environ):
        try:
            json.loads(os.environ.get("TF_CONFIG", "{}"))
        except ValueError:
            raise InvalidValueError("TF_CONFIG is not valid JSON.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name in ("tpu", "auto"):
        resolver = _tpu_resolver()
        if resolver is not None:
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        if name == "tpu":
            raise InvalidValueError("strategy 'tpu': no TPU found (set TPU_NAME).")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and gpus):
        return _mirrored()
    return tf.distribute.get_strategy()


@functools.cache
def _mirrored():
    """One `MirroredStrategy` per process: TensorFlow 2.21 numbers a new one's collective ops
    from the same instance keys as the last, so a second run in the process (`train()` called
    twice) failed at its first all-reduce ("Collective instance N expected type ...")."""
    return tf.distribute.MirroredStrategy()


def on_accelerator(strategy):
    return isinstance(strategy, tf.distribute.TPUStrategy) or bool(tf.config.list_logical_devices("GPU"))


def resolve_precision(precision, strategy):
    """Returns the Keras dtype policy name for a precision name (`PRECISIONS`)."""
    if precision not in PRECISIONS:
        raise InvalidValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        return "mixed_bfloat16" if on_accelerator(strategy) else "float32"
    return PRECISIONS[precision]


def resolve_jit(jit, strategy):
    """XLA where it works: on GPU and TPU, and on a single CPU device (`tt bench` at tiny
    scale: 45 ms a step instead of 109). It fails under multi-replica strategies on CPU."""
    cpu_replicas = not on_accelerator(strategy) and strategy.num_replicas_in_sync > 1
    if jit and cpu_replicas:
        raise InvalidValueError("jit (XLA compilation) does not work with several CPU replicas; turn jit off.")
    return not cpu_replicas if jit is None else bool(jit)


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def worker_id(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return 0 if resolver is None or resolver.task_id is None else int(resolver.task_id)


def worker_position(strategy):
    """(this worker's index, the number of workers) of a multi-worker cluster, the chief
    first; (0, 1) on one machine. For work split by worker (each takes every n-th shard)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if chiefs + workers <= 1:
        return 0, 1
    index = 0 if resolver.task_type == "chief" else chiefs + int(resolver.task_id)
    return index, chiefs + workers


def strategy_name(strategy):
    """The public name of a strategy (TF's multi-worker class is called CollectiveAllReduceStrategy)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__.lstrip("_")
