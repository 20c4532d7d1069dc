"""Run as a script by test_accum.py, two processes side by side, one per PART:

    python accum_step.py PRESET SHARDS OUT_DIR one-device|two-replicas

Each run is the library call `tt train` makes (`tt_cli.training.trainer.train`) with tt's
default optimizer settings (AdamW, its learning rate, schedule, weight decay, β₂ and
global-norm clip) and `--deterministic`, for 20 steps of a global batch of 8 on the tiny
demo shards (`--vocab-size 64`: captions repeat tokens, as real ones repeat words):

- `one-device`: every mode and loss with `--accum-steps 1` and `4` on one CPU device
  (`--no-jit`: XLA compilation costs ~15 s of CPU a run); then one run with Keras given the
  raw gradients (tt's step before `models.gradients`); then gradient caching under mixed
  precision (float16 with loss scaling, bfloat16) and plain accumulation's gradient; then the two-replica runs of
  `BALANCING_RUNS`.
- `two-replicas`: every other mode and loss with `--accum-steps 4` (3T with the sigmoid loss
  with `1` too) under `--strategy mirrored` over two logical CPUs; then `sigmoid_loss` split over the replicas,
  and `tt pretrain` (`tt_cli.pretrain.pretrain`) with `--strategy mirrored` and on one device.

Every run's final weights go to OUT_DIR/<mode>-<loss>_<where>_accum<N>.npz (the weights'
names and whether they train to `<mode>-<loss>_names.json`); the last line of stdout is a
JSON report of everything else. Logical CPU devices must be configured before any
TensorFlow op runs, hence a fresh process.
"""

import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models import PretrainedTower, ThreeTowers, get_scale  # noqa: E402
from models import three_towers as three_towers_module  # noqa: E402
from models.gradient_cache import cached_gradients  # noqa: E402
from models.sigmoid_loss import sigmoid_loss  # noqa: E402
from tt_cli.strategy import make_strategy  # noqa: E402
from tt_cli.training.config import TrainConfig  # noqa: E402
from tt_cli.training.optimizer import make_optimizer, warmup_cosine  # noqa: E402
from tt_cli.training.trainer import train  # noqa: E402

GLOBAL_BATCH = 8
ACCUM = 4
STEPS = 20
CASES = [(mode, loss) for mode in ("clip", "lit", "3t") for loss in ("softmax", "sigmoid")]
RAW_CASE = ("clip", "sigmoid")  # the run with Keras given the raw gradients (--no-jit)
# On two replicas every case runs with --accum-steps 4 (compared with one device's full
# batch: both the replicas and the micro-batches at once), 3T with the sigmoid loss without
# accumulation too. A run there costs ~20 s of CPU (the step is traced once per replica);
# the full product would add ~100 s.
TWO_REPLICA_ACCUM = {("3t", "sigmoid"): (1, ACCUM)}
# Two-replica runs the one-device process makes too, so that the two processes take about as
# long (measured CPU seconds a run: one device 6-18, two replicas 19-43).
BALANCING_RUNS = [("3t", "softmax")]
POLICIES = ("mixed_float16", "mixed_bfloat16")
MIXED_STEPS = 3
DEFAULTS = TrainConfig()


def config(shards, preset, out, mode, loss, accum_steps, strategy):
    """`tt train --data SHARDS --out OUT --mode MODE --loss LOSS --pretrained PRESET --scale tiny
    --steps 20 --batch-size 8 --accum-steps N --vocab-size 64 --max-text-len 12 --deterministic
    --strategy STRATEGY --no-jit`: every optimizer setting at its default. (XLA, tt train's
    default on one CPU device, compiles for ~15 s of CPU a run; it compiles the same step.)"""
    return TrainConfig(
        data=shards,
        out=out,
        mode=mode,
        loss=loss,
        pretrained=(preset,),
        scale="tiny",
        steps=STEPS,
        batch_size=GLOBAL_BATCH,
        accum_steps=accum_steps,
        vocab_size=64,
        max_text_len=12,
        deterministic=True,
        strategy=strategy,
        jit=False,
        log_every=1,
        checkpoint_every=STEPS,
    )


def run(shards, preset, out_dir, case, where, mode, loss, accum_steps, name=None):
    """One `train` call; its final weights saved as `<mode>-<loss>_<name>`, its facts in `case`."""
    name = name or f"{where}_accum{accum_steps}"
    strategy = "mirrored" if where == "mirrored" else "auto"
    started = time.process_time()
    out = os.path.join(out_dir, "runs", f"{mode}-{loss}_{name}")
    result = train(
        config(shards, preset, out, mode, loss, accum_steps, strategy),
        log=lambda *args, **kwargs: None,
        show_progress=False,
    )
    model = result.model
    with open(os.path.join(out, "run.json")) as f:
        resolved = json.load(f)["resolved"]
    with open(os.path.join(out, "metrics.jsonl")) as f:
        case["losses"][name] = [json.loads(line)["loss"] for line in f]
    case["resolved"][name] = {k: resolved[k] for k in ("jit", "replicas", "strategy")}
    case["steps"][name] = int(model.optimizer.iterations.numpy())
    case["cpu_seconds"][name] = round(time.process_time() - started, 1)
    np.savez(os.path.join(out_dir, f"{mode}-{loss}_{name}.npz"), *model.get_weights())
    names = os.path.join(out_dir, f"{mode}-{loss}_names.json")
    if not os.path.exists(names):
        with open(names, "w") as f:
            json.dump([[w.path, w.trainable] for w in model.weights], f)


def new_case():
    return {"losses": {}, "resolved": {}, "steps": {}, "cpu_seconds": {}}


# -- Mixed precision: the gradient gradient caching gives the optimizer ----------------

# The tiny scale with one layer per tower, built directly: these checks compare gradients,
# not runs, and tracing a deeper tower costs time without testing more.
MIXED_SCALE = dataclasses.replace(get_scale("tiny"), name="tiny-1", depth=1)


def make_batches(rng, steps, vocab=50):
    """`steps` global batches of the shapes training sees (tokens EOS-terminated, padded)."""

    def one():
        tokens = np.concatenate(
            [rng.integers(3, vocab, (GLOBAL_BATCH, 5)), np.full((GLOBAL_BATCH, 1), 2), np.zeros((GLOBAL_BATCH, 2))], 1
        )
        return {
            "image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
            "tokens": tokens.astype("int32"),
            "h_image": rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3)).astype("float32"),
        }

    return [one() for _ in range(steps)]


def build(preset, policy, loss="sigmoid"):
    """3T with `loss` and tt's optimizer, as `training/build.py` builds them, under `policy`."""
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = ThreeTowers.from_scale(
        MIXED_SCALE,
        mode="3t",
        vocab_size=50,
        max_len=8,
        pretrained_tower=PretrainedTower.from_preset(preset),
        loss=loss,
    )
    schedule = warmup_cosine(DEFAULTS.lr, MIXED_STEPS, 0)
    optimizer = make_optimizer(schedule, DEFAULTS.weight_decay, DEFAULTS.beta2, DEFAULTS.grad_clip_norm, policy)
    model.compile(optimizer=optimizer)
    optimizer.build(model.trainable_variables)
    keras.mixed_precision.set_global_policy("float32")
    return model


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


def relative_distance(a, b):
    flat = lambda gradients: np.concatenate([np.ravel(np.asarray(g, np.float64)) for g in gradients])  # noqa: E731
    return float(np.linalg.norm(flat(a) - flat(b)) / np.linalg.norm(flat(b)))


def mixed_precision(preset):
    """Under each mixed policy: the gradients gradient caching gives the optimizer against the
    whole batch's in the same policy and in float32, as relative L2 distances (float16 at the
    loss scale its dynamic scaling would settle on, from the optimizer's), and a few
    accumulated steps of the train_step `tt train` traces, run eagerly (finite losses; every
    step applied: no overflow made the loss scale skip one)."""
    batches = make_batches(np.random.default_rng(0), MIXED_STEPS)
    batch = {k: tf.constant(v) for k, v in batches[0].items()}
    float32 = whole_batch_gradients(build(preset, "float32"), batch)
    report = {}
    for policy in POLICIES:
        model = build(preset, policy)
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
            for step in batches
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


def plain_accumulation_distance(preset):
    """How far the gradient of plain accumulation (each micro-batch's own loss, its rows against
    its rows only, averaged) is from the whole batch's, 3T with the softmax loss in float32:
    relative L2 distance. Gradient caching's is the whole batch's (`mixed_precision`, and the runs)."""
    batch = {k: tf.constant(v) for k, v in make_batches(np.random.default_rng(0), 1)[0].items()}
    model = build(preset, "float32", loss="softmax")
    pieces = [{k: tf.split(v, ACCUM)[i] for k, v in batch.items()} for i in range(ACCUM)]
    plain = [sum(gradients) / ACCUM for gradients in zip(*(whole_batch_gradients(model, piece) for piece in pieces))]
    return relative_distance(plain, whole_batch_gradients(model, batch))


# -- Two replicas: the sigmoid loss split, and tt pretrain ---------------------------


def numpy_sigmoid_loss(a, b, log_t, bias):
    """-(1/B) Σ_i Σ_j log σ(z_ij (t a_i·b_j + β)) in float64, written independently."""
    logits = np.exp(min(log_t, np.log(100.0))) * a @ b.T + bias
    signs = 2 * np.eye(len(a)) - 1
    return float(np.mean(np.sum(np.logaddexp(0.0, -signs * logits), axis=1)))


def sigmoid_loss_on_two_replicas():
    """sigmoid_loss on 2 replicas (each with half the rows) against NumPy on all rows."""
    strategy = make_strategy("mirrored")  # the runs' own: one per process (`tt_cli.strategy`)
    rng = np.random.default_rng(3)
    normalize = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    a, b = normalize(rng.normal(size=(8, 6))), normalize(rng.normal(size=(8, 6)))
    a[2], b[2] = a[5], b[5]  # a repeated pair: still a negative of the other
    log_t, bias = np.log(20.0), -3.0

    def per_replica(context):
        rows = slice(4 * context.replica_id_in_sync_group, 4 * (context.replica_id_in_sync_group + 1))
        return tf.constant(a[rows], tf.float32), tf.constant(b[rows], tf.float32)

    inputs = strategy.experimental_distribute_values_from_function(per_replica)
    loss, _ = strategy.run(lambda x, y: sigmoid_loss(x, y, log_t, bias), args=inputs)
    return float(strategy.reduce("MEAN", loss, axis=None)), numpy_sigmoid_loss(a, b, log_t, bias)


def pretrain_on_two_replicas(shards, out_dir):
    """`tt pretrain --data SHARDS --holdout 0 --scale tiny --steps 3 --batch-size 8
    --deterministic` with `--strategy mirrored` and on one device (`--no-jit`, as the
    mirrored run resolves it): (each summary, the largest relative difference ‖a − b‖ / ‖a‖
    of a weight of the two presets)."""
    import keras_hub

    from tt_cli.pretrain import PretrainConfig, pretrain

    summaries, weights = {}, {}
    for strategy in ("mirrored", "auto"):
        out = os.path.join(out_dir, "runs", f"pretrain_{strategy}")
        pretrain_config = PretrainConfig(
            data=shards,
            out=out,
            holdout=0.0,
            scale="tiny",
            steps=3,
            batch_size=GLOBAL_BATCH,
            strategy=strategy,
            jit=False,
            deterministic=True,
            log_every=1,
        )
        summary = pretrain(pretrain_config, log=lambda *args, **kwargs: None, show_progress=False)
        summaries[strategy] = {k: summary[k] for k in ("strategy", "replicas", "steps")}
        with open(os.path.join(out, "metrics.jsonl")) as f:
            summaries[strategy]["logged_steps"] = [json.loads(line)["step"] for line in f]
        classifier = keras_hub.models.ImageClassifier.from_preset(out)
        weights[strategy] = [(w.path, w.numpy()) for w in classifier.weights]
    differences = [
        float(np.linalg.norm(a - b) / np.linalg.norm(a))
        for (name, a), (_, b) in zip(weights["auto"], weights["mirrored"])
        if not name.endswith("key/bias") and np.linalg.norm(a) > 0
    ]
    return {"summaries": summaries, "max_difference": max(differences), "weights": len(differences)}


def one_device(preset, shards, out_dir):
    report = {"cases": {}}
    for mode, loss in CASES:
        case = report["cases"][f"{mode}-{loss}"] = new_case()
        for accum_steps in (1, ACCUM):
            run(shards, preset, out_dir, case, "single", mode, loss, accum_steps)
    # tt's step before models.gradients: Keras given the token embedding's raw IndexedSlices.
    keep = three_towers_module.optimizer_gradients
    three_towers_module.optimizer_gradients = lambda optimizer, gradients: gradients
    report["raw"] = new_case()
    run(shards, preset, out_dir, report["raw"], "single", *RAW_CASE, 1, name="single_raw")
    three_towers_module.optimizer_gradients = keep
    report["mixed_precision"] = mixed_precision(preset)
    report["plain_accumulation_distance"] = plain_accumulation_distance(preset)
    mirrored_runs(preset, shards, out_dir, report, BALANCING_RUNS)
    return report


def mirrored_runs(preset, shards, out_dir, report, cases):
    for mode, loss in cases:
        case = report["cases"].setdefault(f"{mode}-{loss}", new_case())
        for accum_steps in TWO_REPLICA_ACCUM.get((mode, loss), (ACCUM,)):
            run(shards, preset, out_dir, case, "mirrored", mode, loss, accum_steps)


def two_replicas(preset, shards, out_dir):
    report = {"cases": {}}
    mirrored_runs(preset, shards, out_dir, report, [case for case in CASES if case not in BALANCING_RUNS])
    report["sigmoid_two_replicas"], report["sigmoid_numpy"] = sigmoid_loss_on_two_replicas()
    report["pretrain"] = pretrain_on_two_replicas(shards, out_dir)
    return report


def main(preset, shards, out_dir, part):
    report = (one_device if part == "one-device" else two_replicas)(preset, shards, out_dir)
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
