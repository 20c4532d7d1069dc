"""Run as a script by test_accum.py, two processes side by side, one per PART:

    python accum_step.py PRESET one-device|two-replicas OUT_DIR

`tt train`'s step (`make_distributed_step`) with tt's optimizer (AdamW with its default
settings and schedule, `tt_cli.training.optimizer`) for 20 steps on the same global
batches, under `--deterministic`'s op determinism, from the same initial weights.

- `one-device`: every mode and both losses, with and without gradient caching
  (`accum_steps` 4 and 1), on one CPU device; CLIP's accumulated step XLA-compiled, as
  `tt train` resolves it there. Then plain per-micro-batch accumulation, and the run
  with Keras given the raw gradients (what tt did before `models.gradients`).
- `two-replicas`: on a 2-replica MirroredStrategy over two logical CPUs, the runs of
  `TWO_REPLICA_RUNS`, the sigmoid loss split over the replicas, and `tt pretrain`'s
  classifier step; then, on one device (it balances the two processes' time), gradient
  caching under mixed precision (float16 with loss scaling, bfloat16).

Every run's final weights go to OUT_DIR/<mode>-<loss>_<where>_accum<N>.npz (the initial
weights to `<case>_initial.npz`, the weights' names and whether they train to
`<case>_names.json`); the last line of stdout is a JSON report of everything else.
Logical CPU devices must be configured before any TensorFlow op runs, hence a fresh
process.
"""

import dataclasses
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
from models import three_towers as three_towers_module  # noqa: E402
from models.gradient_cache import cached_gradients  # noqa: E402
from models.sigmoid_loss import sigmoid_loss  # noqa: E402
from tt_cli.strategy import resolve_jit  # noqa: E402
from tt_cli.training.config import TrainConfig  # noqa: E402
from tt_cli.training.optimizer import make_optimizer, warmup_cosine  # noqa: E402
from tt_cli.training.step import make_distributed_step  # noqa: E402

# The tiny scale with one layer per tower (as the frozen tower's preset has): tracing a step,
# which is what these runs spend their time on, grows with depth; the step's exactness does not.
SCALE = dataclasses.replace(get_scale("tiny"), name="tiny-1", depth=1)
GLOBAL_BATCH = 8
ACCUM = 4
STEPS = 20
VOCAB = 50  # small: every batch repeats tokens, as captions repeat words
CASES = [(mode, loss) for mode in ("clip", "lit", "3t") for loss in ("softmax", "sigmoid")]
# The runs on two replicas (accum_steps by case): every mode, both losses, with accumulation;
# 3T, the mode with the most pairs, also without. A run there traces the step once per
# replica, and tracing is what costs (~20-40 s of CPU a run; the full product would double it).
TWO_REPLICA_RUNS = {("clip", "softmax"): (ACCUM,), ("lit", "sigmoid"): (ACCUM,), ("3t", "sigmoid"): (ACCUM, 1)}
# XLA (tt train's default on one CPU device) for CLIP's accumulated step; XLA compilation
# costs ~10 s a run, and the other steps trace the same train_step.
XLA_RUN = ("clip", "softmax", ACCUM)
POLICIES = ("mixed_float16", "mixed_bfloat16")
MIXED_STEPS = 3
DEFAULTS = TrainConfig()


def make_batches(rng, steps):
    """`steps` global batches of the shapes training sees (tokens EOS-terminated, padded)."""

    def one():
        tokens = np.concatenate(
            [rng.integers(3, VOCAB, (GLOBAL_BATCH, 5)), np.full((GLOBAL_BATCH, 1), 2), np.zeros((GLOBAL_BATCH, 2))], 1
        )
        return {
            "image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
            "tokens": tokens.astype("int32"),
            "h_image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
        }

    return [one() for _ in range(steps)]


def build(strategy, mode, loss, preset, policy="float32", steps=STEPS):
    """The model and optimizer as `tt train` builds them (`training/build.py`), at the tiny
    scale, from the same seed: the same initial weights on every strategy."""
    keras.mixed_precision.set_global_policy(policy)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        tower = PretrainedTower.from_preset(preset) if mode != "clip" else None
        model = ThreeTowers.from_scale(SCALE, mode=mode, vocab_size=VOCAB, max_len=8, pretrained_tower=tower, loss=loss)
        schedule = warmup_cosine(DEFAULTS.lr, steps, min(10_000, steps // 20))  # tt train's default warm-up
        optimizer = make_optimizer(schedule, DEFAULTS.weight_decay, DEFAULTS.beta2, DEFAULTS.grad_clip_norm, policy)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
    keras.mixed_precision.set_global_policy("float32")
    return model


def train(strategy, model, batches, accum_steps, jit=None):
    """`len(batches)` steps of `tt train`'s loop: per-replica batches from an input function,
    the distributed step with XLA as the trainer resolves `jit`. Returns the logged losses."""
    rows = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}

    def per_replica_batches(context):
        size = context.get_per_replica_batch_size(GLOBAL_BATCH)
        return tf.data.Dataset.from_tensor_slices(rows).batch(size, drop_remainder=True)

    iterator = iter(strategy.distribute_datasets_from_function(per_replica_batches))
    step = make_distributed_step(model, strategy, resolve_jit(jit, strategy), accum_steps)
    return [float(step(iterator)["loss"]) for _ in batches]


def run_case(strategy, where, mode, loss, preset, batches, accum_steps, out_dir, case, run=None):
    """One run of `train` from the case's initial weights; its weights saved as `run` (default:
    `<where>_accum<N>`), its facts in `case`."""
    started = time.process_time()
    model = build(strategy, mode, loss, preset)
    run = run or f"{where}_accum{accum_steps}"
    jit = (mode, loss, accum_steps) == XLA_RUN if where == "single" else None
    case["losses"][run] = train(strategy, model, batches, accum_steps, jit)
    case["jit"][run] = resolve_jit(jit, strategy)
    case["steps"][run] = int(model.optimizer.iterations.numpy())
    case["cpu_seconds"][run] = round(time.process_time() - started, 1)
    save(out_dir, f"{mode}-{loss}_{run}", model)
    return model


def save(out_dir, name, model):
    np.savez(os.path.join(out_dir, f"{name}.npz"), *model.get_weights())


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


def whole_batch_gradients(model, batch, scale=1.0):
    """The gradients of the whole batch's loss, as `train_step` computes them without
    accumulation, of the loss times `scale` and divided by it."""
    with tf.GradientTape() as tape:
        scaled = model.compute_losses(batch, training=True)["loss"] * scale
    return [tf.convert_to_tensor(g) / scale for g in tape.gradient(scaled, model.trainable_variables)]


def accumulated_gradients(model, batch, scale=1.0):
    """The gradients gradient caching gives the optimizer, of the loss times `scale` and divided by it."""
    _, gradients = cached_gradients(model, batch, ACCUM, lambda loss: loss * scale)
    return [tf.convert_to_tensor(g) / scale for g in gradients]


def finite_under_loss_scaling(gradients_at, scale):
    """(gradients, scale) at the first of `scale`, scale / 2, ... whose gradients are finite:
    what float16's dynamic loss scaling settles on."""
    while True:
        gradients = gradients_at(scale)
        if all(np.isfinite(g).all() for g in gradients) or scale <= 1:
            return gradients, scale
        scale /= 2


def flat(gradients):
    return np.concatenate([np.ravel(np.asarray(g, np.float64)) for g in gradients])


def relative_distance(a, b):
    return float(np.linalg.norm(flat(a) - flat(b)) / np.linalg.norm(flat(b)))


def plain_accumulation_distance(model, batch):
    """How far the gradient of plain accumulation (each micro-batch's own loss, its rows
    against its rows only, averaged) is from the whole batch's: relative L2 distance."""
    pieces = [{k: np.split(v, ACCUM)[i] for k, v in batch.items()} for i in range(ACCUM)]
    plain = [sum(gs) / ACCUM for gs in zip(*(whole_batch_gradients(model, piece) for piece in pieces))]
    return relative_distance(plain, whole_batch_gradients(model, batch))


def mixed_precision(preset, batches):
    """3T with the sigmoid loss under each mixed policy: the gradients gradient caching gives
    the optimizer against the whole batch's in the same policy and in float32, as relative
    L2 distances (float16 at the loss scale its dynamic scaling would settle on, from the
    optimizer's), and a few accumulated steps of the train_step `tt train` traces, run
    eagerly (finite losses; every step applied: no overflow made the loss scale skip one)."""
    single = tf.distribute.get_strategy()
    batch = {k: tf.constant(v) for k, v in batches[0].items()}
    float32 = whole_batch_gradients(build(single, "3t", "sigmoid", preset), batch)
    report = {}
    for policy in POLICIES:
        model = build(single, "3t", "sigmoid", preset, policy, steps=MIXED_STEPS)
        optimizer = model.optimizer
        initial_scale = float(optimizer.scale_loss(1.0))  # 2^15 for float16, 1 for bfloat16
        accumulated, accumulated_scale = finite_under_loss_scaling(
            lambda scale, model=model: accumulated_gradients(model, batch, scale), initial_scale
        )
        whole, whole_scale = finite_under_loss_scaling(
            lambda scale, model=model: whole_batch_gradients(model, batch, scale), initial_scale
        )
        losses = [
            float(model.train_step({k: tf.constant(v) for k, v in step.items()}, accum_steps=ACCUM)["loss"])
            for step in batches[:MIXED_STEPS]
        ]
        report[policy] = {
            "accumulated_vs_whole": relative_distance(accumulated, whole),
            "accumulated_vs_float32": relative_distance(accumulated, float32),
            "whole_vs_float32": relative_distance(whole, float32),
            "loss_scales": {"accumulated": accumulated_scale, "whole": whole_scale},
            "losses": losses,
            "steps": int(optimizer.iterations.numpy()),
            "loss_scale": [initial_scale, float(optimizer.scale_loss(1.0))],
            "finite": bool(all(np.isfinite(w).all() for w in model.get_weights())),
        }
    return report


def classifier_on_two_replicas(mirrored):
    """`tt pretrain`'s step (its classifier's `train_step`, with its optimizer settings) for 3
    steps through `tt train`'s distributed step on two replicas, against the same steps on
    one device (eagerly): the largest relative difference ‖a − b‖ / ‖a‖ of a weight."""
    from tt_cli.pretrain.classifier import ClassifierTraining, build_classifier

    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (3 * GLOBAL_BATCH, 32, 32, 3)).astype("uint8")
    labels = rng.integers(0, 3, 3 * GLOBAL_BATCH)

    def make(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = ClassifierTraining(build_classifier(SCALE, num_classes=3))
            optimizer = make_optimizer(warmup_cosine(1e-3, 3, 0), 0.05, beta2=0.999, epsilon=1e-7)  # tt pretrain's
            model.compile(optimizer=optimizer)
            optimizer.build(model.trainable_variables)
        return model

    single = make(tf.distribute.get_strategy())
    for i in range(3):
        rows = slice(i * GLOBAL_BATCH, (i + 1) * GLOBAL_BATCH)
        single.train_step((tf.constant(images[rows]), tf.constant(labels[rows])))
    model = make(mirrored)

    def per_replica_batches(context):
        size = context.get_per_replica_batch_size(GLOBAL_BATCH)
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(size, drop_remainder=True)

    iterator = iter(mirrored.distribute_datasets_from_function(per_replica_batches))
    step = make_distributed_step(model, mirrored, resolve_jit(None, mirrored))
    for _ in range(3):
        step(iterator)
    return {
        "steps": int(model.optimizer.iterations.numpy()),
        "max_difference": max(
            float(np.linalg.norm(a - b) / np.linalg.norm(a))
            for w, a, b in zip(single.weights, single.get_weights(), model.get_weights())
            if not w.path.endswith("key/bias")
        ),
    }


def one_device(preset, out_dir, batches):
    single = tf.distribute.get_strategy()
    report = {"cases": {}}
    for mode, loss in CASES:
        name = f"{mode}-{loss}"
        case = report["cases"][name] = {"losses": {}, "jit": {}, "steps": {}, "cpu_seconds": {}}
        model = build(single, mode, loss, preset)
        np.savez(os.path.join(out_dir, f"{name}_initial.npz"), *model.get_weights())
        with open(os.path.join(out_dir, f"{name}_names.json"), "w") as f:
            json.dump([[w.path, w.trainable] for w in model.weights], f)
        if loss == "sigmoid":
            case["numpy_loss"] = numpy_sigmoid_objective(model, batches[0])
        for accum_steps in (1, ACCUM):
            run_case(single, "single", mode, loss, preset, batches, accum_steps, out_dir, case)
    report["plain_accumulation_distance"] = plain_accumulation_distance(
        build(single, "clip", "softmax", preset), {k: tf.constant(v) for k, v in batches[0].items()}
    )
    # What tt did before models.gradients: Keras given the token embedding's raw IndexedSlices.
    three_towers_module.optimizer_gradients = lambda optimizer, gradients: gradients
    report["raw_gradients"] = {"losses": {}, "jit": {}, "steps": {}, "cpu_seconds": {}}
    run_case(single, "single", "clip", "softmax", preset, batches, 1, out_dir, report["raw_gradients"], "single_raw")
    return report


def two_replicas(preset, out_dir, batches):
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"cases": {}, "replicas": mirrored.num_replicas_in_sync}
    for (mode, loss), runs in TWO_REPLICA_RUNS.items():
        name = f"{mode}-{loss}"
        case = report["cases"][name] = {"losses": {}, "jit": {}, "steps": {}, "cpu_seconds": {}}
        initial = build(mirrored, mode, loss, preset).get_weights()
        np.savez(os.path.join(out_dir, f"{name}_initial_mirrored.npz"), *initial)
        for accum_steps in runs:
            run_case(mirrored, "mirrored", mode, loss, preset, batches, accum_steps, out_dir, case)
    report["sigmoid_two_replicas"], report["sigmoid_numpy"] = sigmoid_loss_on_two_replicas(mirrored)
    report["pretrain_classifier"] = classifier_on_two_replicas(mirrored)
    # On one device, in this process: it balances the two processes' time.
    report["mixed_precision"] = mixed_precision(preset, batches)
    return report


def main(preset, part, out_dir):
    tf.config.experimental.enable_op_determinism()  # as `tt train --deterministic`
    batches = make_batches(np.random.default_rng(0), STEPS)
    report = (one_device if part == "one-device" else two_replicas)(preset, out_dir, batches)
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
