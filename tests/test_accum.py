"""`tt train`'s optimizer step is the step the math says: with gradient caching
(`--accum-steps 4`) or without, on one device or on two replicas, 20 steps with tt's
default optimizer (AdamW, global-norm clip) end at the same weights, for every mode and
loss; mixed precision accumulates too; `tt pretrain --strategy mirrored` trains as on one device.

The runs are the library call `tt train` makes (`trainer.train`), in tests/support/accum_step.py:
two processes side by side (one device; two logical CPUs), since tracing the steps is what
costs and it is single-threaded.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "support", "accum_step.py")
CASES = [f"{mode}-{loss}" for mode in ("clip", "lit", "3t") for loss in ("softmax", "sigmoid")]
STEPS = 20
# Each trained weight is compared by its relative difference ‖a − b‖ / ‖a‖ (its scale: its
# L2 norm). float32 sums the gradient in other orders in each run (micro-batches, replicas,
# XLA's fusions), and AdamW's update of an element whose gradient passes near zero carries
# that rounding a long way: measured after 20 steps, at most 2.7e-6 (a query bias of CLIP's
# text tower, two replicas with accumulation against one device; 4.8e-6 in a measurement
# that also ran one device under XLA and every case on two replicas without accumulation).
# Keras given the raw embedding gradient (tt's step before models.gradients) differs by
# 7.8e-3 (the token embedding itself by 3.5e-4): far beyond.
TOLERANCE = 1e-5
# Attention key biases get no gradient in exact arithmetic (softmax over the keys ignores a
# constant added to every key's logit): theirs is rounding noise, which AdamW divides by its
# ε and turns into values that say nothing about the step. They are checked to stay small
# instead (a trained weight moves by ~1e-2 in these 20 steps).
UNTRAINED_BOUND = 1e-4
# Mixed precision: the relative L2 distance of the accumulated gradient from the whole
# batch's and from float32's. Each is rounding of the compute dtype through the towers'
# layers: measured 1.1e-3 and 2.6e-3 for float16 (11-bit significand, u = 4.9e-4) and
# 9.2e-3 and 2.8e-2 for bfloat16 (8-bit, u = 3.9e-3); the tolerances are 20u and 25u. A
# lost or doubled loss scale (gradients 2^15 off) or a tower whose float16 gradient
# underflows gives a distance near 1.
MIXED_TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 1e-1}
# tt pretrain on two replicas against one device after 3 steps: measured 5.4e-6. Its AdamW
# divides by ε = 1e-7 (tt train's: 1e-6) and its first step has the full learning rate, so an
# element whose gradient is near zero carries the rounding further.
PRETRAIN_TOLERANCE = 5e-5


def untrained(name):
    return name.endswith("key/bias")


def weight_names(out_dir, case):
    """The case's weight names, None for the frozen third tower's."""
    with open(os.path.join(out_dir, f"{case}_names.json")) as f:
        return [name if trainable else None for name, trainable in json.load(f)]


def load(out_dir, name):
    with np.load(os.path.join(out_dir, f"{name}.npz")) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def relative_differences(names, weights, other):
    """Per trained weight (`names` None for the frozen ones): ‖a − b‖ / ‖a‖."""
    return {
        f"{i}:{name}": float(np.linalg.norm(a - b) / np.linalg.norm(a))
        for i, (name, a, b) in enumerate(zip(names, weights, other))
        if name is not None and not untrained(name)
    }


def worst(differences):
    name = max(differences, key=differences.get)
    return differences[name], name


@pytest.fixture(scope="module")
def runs(tiny_vit_preset, tiny_shards, tmp_path_factory):
    """(the two processes' reports, the folder of their weights)."""
    out_dir = str(tmp_path_factory.mktemp("accum_weights"))
    processes = {}
    for part in ("one-device", "two-replicas"):
        log = open(os.path.join(out_dir, f"{part}.log"), "w+")
        command = [sys.executable, SCRIPT, tiny_vit_preset, tiny_shards, out_dir, part]
        processes[part] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True), log)
    reports = {}
    for part, (process, log) in processes.items():
        process.wait(timeout=1800)
        log.seek(0)
        output = log.read()
        assert process.returncode == 0, output[-3000:]
        reports[part] = json.loads(output.strip().splitlines()[-1])
    return reports, out_dir


@pytest.mark.slow
def test_accumulated_and_distributed_steps_end_at_the_same_weights(runs):
    """For every mode and loss, 20 steps of `tt train` with its default optimizer: --accum-steps
    4 on one device ends with every trained weight within 1e-5 of its norm of --accum-steps 1's;
    so do the runs on two replicas (with accumulation; 3T sigmoid without too). The frozen
    third tower never changes."""
    reports, out_dir = runs
    one, two = reports["one-device"]["cases"], reports["two-replicas"]["cases"]
    for case in CASES:
        names = weight_names(out_dir, case)
        runs_of = {key: {**one[case][key], **two.get(case, {}).get(key, {})} for key in ("steps", "resolved", "losses")}
        final = {run: load(out_dir, f"{case}_{run}") for run in runs_of["steps"]}
        assert {"single_accum1", "single_accum4", "mirrored_accum4"} <= set(final), case
        assert set(runs_of["steps"].values()) == {STEPS}, (case, runs_of["steps"])
        for run, resolved in runs_of["resolved"].items():
            assert resolved["replicas"] == (2 if run.startswith("mirrored") else 1), (case, run)
        reference = final["single_accum1"]
        for run, weights in final.items():
            difference, weight = worst(relative_differences(names, reference, weights))
            assert difference < TOLERANCE, (case, run, weight, difference)
            for name, w, w0 in zip(names, weights, reference):
                if name is None:  # the frozen third tower: the same in every run
                    np.testing.assert_array_equal(w, w0, err_msg=f"{case} {run}")
                elif untrained(name):
                    assert np.max(np.abs(w)) < UNTRAINED_BOUND, (case, run, name)
        for run, logged in runs_of["losses"].items():
            assert len(logged) == STEPS, (case, run)
            assert logged[0] == pytest.approx(runs_of["losses"]["single_accum1"][0], rel=1e-5), (case, run)


@pytest.mark.slow
def test_the_comparison_sees_the_old_step(runs):
    """Keras given the token embedding's raw gradient (tt's step before models.gradients:
    a wrong Adam second moment and clip norm for repeated tokens) ends far outside the
    tolerance, in the text tower's weights."""
    reports, out_dir = runs
    names = weight_names(out_dir, "clip-sigmoid")
    assert reports["one-device"]["raw"]["steps"]["single_raw"] == STEPS
    differences = relative_differences(
        names, load(out_dir, "clip-sigmoid_single_accum4"), load(out_dir, "clip-sigmoid_single_raw")
    )
    difference, _ = worst(differences)
    assert difference > 100 * TOLERANCE
    embedding = [d for name, d in differences.items() if "token_embedding" in name]
    assert embedding and max(embedding) > 10 * TOLERANCE


@pytest.mark.slow
def test_plain_accumulation_is_another_gradient(runs):
    """Each micro-batch compared only with itself (plain accumulation, 4 micro-batches): its
    gradient is far from the whole batch's (measured relative distance 1.02, 3T softmax),
    where gradient caching's differs by rounding alone (test_mixed_precision_accumulates)."""
    assert runs[0]["one-device"]["plain_accumulation_distance"] > 0.5


@pytest.mark.slow
def test_sigmoid_loss_on_two_replicas_equals_numpy(runs):
    split = runs[0]["two-replicas"]
    assert split["sigmoid_two_replicas"] == pytest.approx(split["sigmoid_numpy"], rel=1e-5)


@pytest.mark.slow
def test_mixed_precision_accumulates(runs):
    """3T (sigmoid) under float16 with loss scaling and under bfloat16: the gradient gradient
    caching gives the optimizer is the whole batch's, to the precision's rounding, and so is
    float32's; tt train's accumulated steps all apply (no overflow skipped one) and stay finite."""
    for policy, result in runs[0]["one-device"]["mixed_precision"].items():
        tolerance = MIXED_TOLERANCE[policy]
        assert result["accumulated_vs_whole"] < tolerance, (policy, result)
        assert result["accumulated_vs_float32"] < tolerance, (policy, result)
        assert result["steps"] == len(result["losses"]) and result["finite"], (policy, result)
        assert all(np.isfinite(result["losses"])), (policy, result)
        if policy == "mixed_float16":
            # Scaled (2^15) and never halved: gradient caching's steps did not overflow.
            assert result["loss_scale"][0] == result["loss_scale"][1] == result["loss_scales"]["accumulated"] > 1


@pytest.mark.slow
def test_pretrain_on_two_replicas_equals_one_device(runs):
    """`tt pretrain --strategy mirrored` on two replicas: 3 steps end at the preset weights of
    the same steps on one device, with its metrics.jsonl, on the strategy it names."""
    result = runs[0]["two-replicas"]["pretrain"]
    mirrored, single = result["summaries"]["mirrored"], result["summaries"]["auto"]
    assert (mirrored["strategy"], mirrored["replicas"]) == ("MirroredStrategy", 2)
    assert (single["strategy"], single["replicas"]) == ("DefaultDistributionStrategy", 1)
    assert mirrored["logged_steps"] == single["logged_steps"] == [1, 2, 3]
    assert result["weights"] > 10 and result["max_difference"] < PRETRAIN_TOLERANCE, result
