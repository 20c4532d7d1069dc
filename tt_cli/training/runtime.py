"""The run set-up every entry point that trains shares (`tt train`, `tt pretrain`, `tt bench`):
the distribution strategy, the random seed, the precision policy and XLA, in that order;
the step count from `--epochs`; and the library versions a result records.

The strategy comes first because multi-worker training needs it made before any other
TensorFlow op; the seed comes before any tokenizer exists, because reseeding resets the
eager state SentencePiece's TensorFlow resources live in.

Example:
>>> runtime = start_runtime(strategy="default", seed=0, precision="float32", jit=False)
>>> runtime.policy, runtime.jit, runtime.replicas, runtime.chief
('float32', False, 1, True)
"""

import dataclasses
import math
import platform

from tt_cli.data import schema
from tt_cli.errors import InvalidValueError


@dataclasses.dataclass(frozen=True)
class Runtime:
    """What a run resolved: `strategy` (a `tf.distribute.Strategy`), the Keras dtype
    `policy` name set globally, and whether steps are `jit`-compiled with XLA."""

    strategy: object
    policy: str
    jit: bool

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync

    @property
    def chief(self):
        """True on the one process that writes the run's files (every process but a
        non-chief worker of a multi-worker run)."""
        from tt_cli.strategy import is_chief

        return is_chief(self.strategy)

    @property
    def strategy_name(self):
        from tt_cli.strategy import strategy_name

        return strategy_name(self.strategy)


def start_runtime(strategy="auto", seed=0, precision="auto", jit=None, deterministic=False):
    """Makes the strategy (before any other TensorFlow op), seeds Python, NumPy and
    TensorFlow, sets the global precision policy and resolves XLA (`jit=None`: where it
    works). `--strategy`, `--precision` and `--jit` values it cannot use fail with one line."""
    from tt_cli.strategy import make_strategy, resolve_jit, resolve_precision

    made = make_strategy(strategy)  # before any other TensorFlow op

    import keras
    import tensorflow as tf

    # The same seed gives every worker the same initial weights.
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = resolve_precision(precision, made)
    keras.mixed_precision.set_global_policy(policy)
    return Runtime(strategy=made, policy=policy, jit=resolve_jit(jit, made))


def total_steps(steps, epochs, num_examples, batch_size, data):
    """`steps` when given, else `epochs` passes of `num_examples` (None: the shards at
    `data` have no dataset.json to count them) in batches of `batch_size`."""
    if steps:
        return steps
    if num_examples is None:
        raise InvalidValueError(f"{data}: no {schema.DATASET_JSON} to count examples; give the number of steps.")
    return max(1, math.ceil(epochs * num_examples / batch_size))


def versions():
    """The versions a run's results depend on, recorded beside them."""
    import keras
    import keras_hub
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_hub": keras_hub.__version__,
        "python": platform.python_version(),
    }
