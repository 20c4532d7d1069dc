"""Run as a script by test_accum.py: for each mode, one training step with gradient
caching (`accum_steps=4`) under a 2-replica MirroredStrategy and on one device, against
one step without accumulation (the model's `train_step` called eagerly), all from the
same weights and the same global batch. The 2-replica steps, and clip's on one device
(with XLA, as tt train resolves it there), run through the step `tt train` runs; the
other one-device steps call the same `train_step` eagerly, since tracing is what costs.
For 3T also `tt train`'s step without accumulation on 2 replicas (`mirrored_plain`). Also
plain per-micro-batch accumulation, and the sigmoid loss on two replicas against NumPy.
Prints what it measured as JSON.

Logical CPU devices must be configured before any TensorFlow op runs, hence a fresh
process (importing `mirrored_step` configures them).
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf
from mirrored_step import build as build_3t  # noqa: F401  (configures two logical CPUs first)

from models import PretrainedTower, ThreeTowers, get_scale
from models.sigmoid_loss import sigmoid_loss
from tt_cli.strategy import resolve_jit
from tt_cli.training.step import make_distributed_step

GLOBAL_BATCH = 8

ACCUM = 4
# Every mode and both losses: 3T with the sigmoid loss on all three pairs.
CASES = (("clip", "softmax"), ("lit", "softmax"), ("3t", "sigmoid"))


def one_step(strategy, model, batch, accum_steps=1, jit=None):
    """One step of `tt train`'s loop: per-replica batches from an input function, the
    distributed step with the XLA setting the trainer would resolve from `jit`."""

    def per_replica_batches(context):
        size = context.get_per_replica_batch_size(GLOBAL_BATCH)
        return tf.data.Dataset.from_tensor_slices(batch).batch(size, drop_remainder=True)

    iterator = iter(strategy.distribute_datasets_from_function(per_replica_batches))
    jit = resolve_jit(jit, strategy)
    logs = make_distributed_step(model, strategy, jit, accum_steps)(iterator)
    return {k: float(v) for k, v in logs.items()}, jit


def build(strategy, mode, loss, preset, initial_weights=None):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        tower = PretrainedTower.from_preset(preset) if mode != "clip" else None
        model = ThreeTowers.from_scale(
            get_scale("tiny"), mode=mode, vocab_size=50, max_len=8, pretrained_tower=tower, loss=loss
        )
        # Plain SGD: its update is proportional to the gradient, so any error shows.
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.optimizer.build(model.trainable_variables)
        if initial_weights is not None:
            model.set_weights(initial_weights)
    return model


def max_diff(weights, other):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(weights, other))


def eager_step(model, batch, accum_steps=1):
    """One step of the model's own `train_step` (what tt's step traces), run eagerly:
    tracing costs more than everything else here."""
    logs = model.train_step({k: tf.constant(v) for k, v in batch.items()}, accum_steps=accum_steps)
    return float(logs["loss"])


def naive_accumulation(model, batch):
    """What plain gradient accumulation would do: the loss of each micro-batch on its
    own (its rows against its rows only), gradients averaged, one SGD step."""
    pieces = [{k: np.split(v, ACCUM)[i] for k, v in batch.items()} for i in range(ACCUM)]
    total = None
    for piece in pieces:
        with tf.GradientTape() as tape:
            loss = model.compute_losses(piece, training=True)["loss"] / ACCUM
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
        total = grads if total is None else [a + b for a, b in zip(total, grads)]
    model.optimizer.apply(total, model.trainable_variables)
    return model.get_weights()


def numpy_sigmoid_loss(a, b, log_t, bias):
    """-(1/B) Σ_i Σ_j log σ(z_ij (t a_i·b_j + β)) in float64, written independently."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    logits = np.exp(min(log_t, np.log(100.0))) * a @ b.T + bias
    signs = 2 * np.eye(len(a)) - 1
    return float(np.mean(np.sum(np.logaddexp(0.0, -signs * logits), axis=1)))


def normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_3t_sigmoid_loss(model, batch):
    """The 3T objective with the sigmoid loss on all three pairs, from the towers' and
    heads' linear outputs, in float64 (equal weights: (L1 + L2 + L3) / 3)."""
    f = np.asarray(model.image_tower(batch["image"]))
    g = np.asarray(model.text_tower(batch["tokens"]))
    h = np.asarray(model.pretrained_tower(batch["h_image"]))
    lin = lambda head, x: normalize(np.asarray(head.dense(x)))  # noqa: E731
    log_t, bias = np.log(10.0), -10.0  # the initial values
    return (
        numpy_sigmoid_loss(normalize(f), normalize(g), log_t, bias)
        + numpy_sigmoid_loss(lin(model.image_head, f), lin(model.pretrained_image_head, h), log_t, bias)
        + numpy_sigmoid_loss(lin(model.text_head, g), lin(model.pretrained_text_head, h), log_t, bias)
    ) / 3


def sigmoid_loss_on_two_replicas(strategy):
    """sigmoid_loss on 2 replicas (each with half the rows) against NumPy on all rows."""
    rng = np.random.default_rng(3)
    a, b = normalize(rng.normal(size=(8, 6))), normalize(rng.normal(size=(8, 6)))
    a[2], b[2] = a[5], b[5]  # a repeated pair: still a negative of the other
    log_t, bias = np.log(20.0), -3.0

    def per_replica(context):
        rows = slice(4 * context.replica_id_in_sync_group, 4 * (context.replica_id_in_sync_group + 1))
        return tf.constant(a[rows], tf.float32), tf.constant(b[rows], tf.float32)

    inputs = strategy.experimental_distribute_values_from_function(per_replica)
    loss, _ = strategy.run(lambda x, y: sigmoid_loss(x, y, log_t, bias), args=inputs)
    return float(strategy.reduce("MEAN", loss, axis=None)), numpy_sigmoid_loss(a, b, log_t, bias)


def main(preset):
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
        "tokens": np.concatenate(
            [rng.integers(3, 50, (GLOBAL_BATCH, 5)), np.full((GLOBAL_BATCH, 1), 2), np.zeros((GLOBAL_BATCH, 2))], 1
        ).astype("int32"),
        "h_image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
    }
    single_strategy = tf.distribute.get_strategy()
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"cases": {}}
    for mode, loss in CASES:
        reference = build(single_strategy, mode, loss, preset)
        initial = reference.get_weights()
        expected_loss = numpy_3t_sigmoid_loss(reference, batch) if loss == "sigmoid" else None
        reference_loss = eager_step(reference, batch)
        weights = reference.get_weights()
        case = {
            "max_weight_update": max_diff(weights, initial),
            "losses": {"reference": reference_loss},
            "numpy_loss": expected_loss,
            "max_weight_diff": {},
        }
        runs = [("single", single_strategy, ACCUM), ("mirrored", mirrored_strategy, ACCUM)]
        if mode == "3t":
            runs.append(("mirrored_plain", mirrored_strategy, 1))
        for name, strategy, accum_steps in runs:
            model = build(strategy, mode, loss, preset, initial)
            if name == "single" and mode != "clip":
                # Traced and XLA-compiled (tt train's default on one device) for clip; the
                # same train_step eagerly for the others.
                logs, jit = {"loss": eager_step(model, batch, accum_steps)}, False
            else:
                logs, jit = one_step(strategy, model, batch, accum_steps=accum_steps)
            case["max_weight_diff"][name] = max_diff(model.get_weights(), weights)
            case["losses"][name] = logs["loss"]
            case[f"jit_{name}"] = jit
            case[f"steps_{name}"] = int(model.optimizer.iterations.numpy())
        if mode == "clip":
            naive = naive_accumulation(build(single_strategy, mode, loss, preset, initial), batch)
            report["naive_weight_diff"] = max_diff(naive, weights)
        report["cases"][f"{mode}-{loss}"] = case
    report["sigmoid_two_replicas"], report["sigmoid_numpy"] = sigmoid_loss_on_two_replicas(mirrored_strategy)
    report["replicas"] = mirrored_strategy.num_replicas_in_sync
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
