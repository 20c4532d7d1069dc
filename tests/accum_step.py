"""Run as a script by test_accum.py: `tt train`'s step with tt's optimizer (AdamW, its
default settings and schedule) for 20 steps, with and without gradient caching
(`accum_steps` 4 and 1), on one device and on a 2-replica MirroredStrategy, for every
mode and both losses, all from the same weights and the same global batches. Also the
same run without `models.gradients` (what Keras does with the raw token-embedding
gradient), plain per-micro-batch accumulation, the sigmoid loss against NumPy, and
gradient caching under mixed precision (float16 with loss scaling, bfloat16) against
float32. Prints what it measured as JSON.

Logical CPU devices must be configured before any TensorFlow op runs, hence a fresh
process.
"""

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models import PretrainedTower, ThreeTowers, get_scale  # noqa: E402
from models.sigmoid_loss import sigmoid_loss  # noqa: E402
from tt_cli.strategy import resolve_jit  # noqa: E402
from tt_cli.training.config import TrainConfig  # noqa: E402
from tt_cli.training.optimizer import make_optimizer, warmup_cosine  # noqa: E402
from tt_cli.training.step import make_distributed_step  # noqa: E402

GLOBAL_BATCH = 8
ACCUM = 4
STEPS = 20
VOCAB = 50  # small: every batch repeats tokens, as captions repeat words
CASES = [(mode, loss) for mode in ("clip", "lit", "3t") for loss in ("softmax", "sigmoid")]
DEFAULTS = TrainConfig()


def make_batches(rng, steps):
    """`steps` global batches of the shapes training sees (tokens EOS-terminated, padded)."""

    def one():
        return {
            "image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
            "tokens": np.concatenate(
                [rng.integers(3, VOCAB, (GLOBAL_BATCH, 5)), np.full((GLOBAL_BATCH, 1), 2), np.zeros((GLOBAL_BATCH, 2))],
                1,
            ).astype("int32"),
            "h_image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
        }

    return [one() for _ in range(steps)]


def build(strategy, mode, loss, preset, initial_weights=None, policy="float32"):
    """The model and optimizer as `tt train` builds them (`training/build.py`), at the tiny scale."""
    keras.mixed_precision.set_global_policy(policy)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        tower = PretrainedTower.from_preset(preset) if mode != "clip" else None
        model = ThreeTowers.from_scale(
            get_scale("tiny"), mode=mode, vocab_size=VOCAB, max_len=8, pretrained_tower=tower, loss=loss
        )
        warmup = min(10_000, STEPS // 20)  # tt train's default
        schedule = warmup_cosine(DEFAULTS.lr, STEPS, warmup)
        optimizer = make_optimizer(schedule, DEFAULTS.weight_decay, DEFAULTS.beta2, DEFAULTS.grad_clip_norm, policy)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        if initial_weights is not None:
            model.set_weights(initial_weights)
    keras.mixed_precision.set_global_policy("float32")
    return model


def train(strategy, model, batches, accum_steps, jit=None):
    """`len(batches)` steps of `tt train`'s loop: per-replica batches from an input function,
    the distributed step with the XLA setting the trainer resolves. Returns (losses, jit)."""
    rows = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}

    def per_replica_batches(context):
        size = context.get_per_replica_batch_size(GLOBAL_BATCH)
        return tf.data.Dataset.from_tensor_slices(rows).batch(size, drop_remainder=True)

    iterator = iter(strategy.distribute_datasets_from_function(per_replica_batches))
    jit = resolve_jit(jit, strategy)
    step = make_distributed_step(model, strategy, jit, accum_steps)
    return [float(step(iterator)["loss"]) for _ in batches], jit


def relative_differences(weights, other, names):
    """Per weight: max |a - b| over the weight's scale (its largest |a|)."""
    out = {}
    for name, a, b in zip(names, weights, other):
        scale = float(np.max(np.abs(a)))
        diff = float(np.max(np.abs(a - b)))
        out[name] = diff / scale if scale else diff
    return out


def worst(differences):
    name = max(differences, key=differences.get)
    return {"max": differences[name], "weight": name}


# -- Independent references ----------------------------------------------------


def numpy_sigmoid_loss(a, b, log_t, bias):
    """-(1/B) Σ_i Σ_j log σ(z_ij (t a_i·b_j + β)) in float64, written independently."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    logits = np.exp(min(log_t, np.log(100.0))) * a @ b.T + bias
    signs = 2 * np.eye(len(a)) - 1
    return float(np.mean(np.sum(np.logaddexp(0.0, -signs * logits), axis=1)))


def normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_sigmoid_objective(model, batch):
    """The mode's objective with the sigmoid loss on every pair, from the towers' and heads'
    linear outputs at the initial temperature and bias, in float64 (3T: (L1 + L2 + L3) / 3;
    LiT without a head compares h itself with g)."""
    log_t, bias = np.log(10.0), -10.0
    g = np.asarray(model.text_tower(batch["tokens"]))
    if model.mode == "lit":
        return numpy_sigmoid_loss(normalize(model.pretrained_tower(batch["h_image"])), normalize(g), log_t, bias)
    f = np.asarray(model.image_tower(batch["image"]))
    main = numpy_sigmoid_loss(normalize(f), normalize(g), log_t, bias)
    if model.mode == "clip":
        return main
    h = np.asarray(model.pretrained_tower(batch["h_image"]))
    lin = lambda head, x: normalize(np.asarray(head.dense(x)))  # noqa: E731
    return (
        main
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


def plain_accumulation_difference(model, batch):
    """How far the gradient of plain accumulation (each micro-batch's own loss, its rows
    against its rows only, averaged) is from the whole batch's: relative L2 distance."""

    def gradient(pieces):
        total = None
        for piece in pieces:
            with tf.GradientTape() as tape:
                loss = model.compute_losses(piece, training=True)["loss"] / len(pieces)
            grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
            total = grads if total is None else [a + b for a, b in zip(total, grads)]
        return np.concatenate([np.ravel(g) for g in total])

    whole = gradient([batch])
    plain = gradient([{k: np.split(v, ACCUM)[i] for k, v in batch.items()} for i in range(ACCUM)])
    return float(np.linalg.norm(plain - whole) / np.linalg.norm(whole))


def main(preset):
    tf.config.experimental.enable_op_determinism()  # as `tt train --deterministic`
    started = time.perf_counter()
    batches = make_batches(np.random.default_rng(0), STEPS)
    single = tf.distribute.get_strategy()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"replicas": mirrored.num_replicas_in_sync, "cases": {}, "seconds": {}}
    for mode, loss in CASES:
        name = f"{mode}-{loss}"
        case_started = time.perf_counter()
        reference = build(single, mode, loss, preset)
        initial = reference.get_weights()
        names = [w.path for w in reference.weights]
        case = {"losses": {}, "jit": {}, "steps": {}, "moved": {}}
        if loss == "sigmoid":
            case["numpy_loss"] = numpy_sigmoid_objective(reference, batches[0])
        final = {}
        for where, strategy in (("single", single), ("mirrored", mirrored)):
            for accum_steps in (1, ACCUM):
                run = f"{where}_accum{accum_steps}"
                model = reference if run == "single_accum1" else build(strategy, mode, loss, preset, initial)
                case["losses"][run], case["jit"][run] = train(strategy, model, batches, accum_steps)
                case["steps"][run] = int(model.optimizer.iterations.numpy())
                final[run] = model.get_weights()
        case["moved"] = worst(relative_differences(final["single_accum1"], initial, names))
        case["accum_vs_full"] = {
            where: worst(relative_differences(final[f"{where}_accum1"], final[f"{where}_accum{ACCUM}"], names))
            for where in ("single", "mirrored")
        }
        case["mirrored_vs_single"] = {
            f"accum{n}": worst(relative_differences(final[f"single_accum{n}"], final[f"mirrored_accum{n}"], names))
            for n in (1, ACCUM)
        }
        report["cases"][name] = case
        report["seconds"][name] = round(time.perf_counter() - case_started, 1)
        print(name, report["seconds"][name], json.dumps(case), file=sys.stderr, flush=True)
    report["sigmoid_two_replicas"], report["sigmoid_numpy"] = sigmoid_loss_on_two_replicas(mirrored)
    report["seconds"]["total"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
