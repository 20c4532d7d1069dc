"""`tt train`'s step is the step the math says: with gradient caching (`--accum-steps 4`)
or without, on one device or on two replicas, 20 AdamW steps with tt's default optimizer
end at the same weights; the sigmoid loss is SigLIP's; mixed precision accumulates too.

The runs happen in tests/accum_step.py, two processes side by side (one device; two
logical CPUs): tracing the steps is what costs, and it is single-threaded.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "accum_step.py")
CASES = [f"{mode}-{loss}" for mode in ("clip", "lit", "3t") for loss in ("softmax", "sigmoid")]
STEPS = 20
# float32 sums the gradient in other orders in each run (micro-batches, replicas, XLA or
# not): about 1e-7 of a weight's scale after 20 steps (measured: at most 3e-7), so 1e-5 is
# 30x that and far below what one differing step makes (the raw-gradient run: > 1e-4).
TOLERANCE = 1e-5
# Attention key biases get no gradient in exact arithmetic (softmax over the keys ignores a
# constant added to every key's logit): theirs is rounding noise, which AdamW divides by its
# ε and turns into values of ~1e-7 that say nothing about the step. They are checked to stay
# that small instead (a trained weight moves by ~4e-3 in these 20 steps).
UNTRAINED_BOUND = 1e-4
# Mixed precision: the relative L2 distance of the accumulated gradient from the whole
# batch's. A tiny model's gradient passes through ~10 roundings of its compute dtype:
# bfloat16 (8-bit significand, unit roundoff 3.9e-3) and float16 (11-bit, 4.9e-4).
# A lost loss scale (gradients 2^15 off) or a tower whose float16 gradient underflows
# gives a distance near 1.
MIXED_TOLERANCE = {"mixed_float16": 2e-2, "mixed_bfloat16": 1e-1}


def untrained(name):
    return name.endswith("key/bias")


def load(out_dir, name):
    with np.load(os.path.join(out_dir, f"{name}.npz")) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def relative_differences(names, weights, other):
    """Per trained weight: max |a - b| over the weight's scale (its largest |a|)."""
    return {
        f"{i}:{name}": float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
        for i, (name, a, b) in enumerate(zip(names, weights, other))
        if not untrained(name) and np.max(np.abs(a)) > 0
    }


def worst(differences):
    name = max(differences, key=differences.get)
    return differences[name], name


@pytest.fixture(scope="module")
def runs(tiny_vit_preset, tmp_path_factory):
    """(the two processes' reports, the folder of their weights)."""
    out_dir = str(tmp_path_factory.mktemp("accum_weights"))
    processes = {}
    for part in ("one-device", "two-replicas"):
        log = open(os.path.join(out_dir, f"{part}.log"), "w+")
        command = [sys.executable, SCRIPT, tiny_vit_preset, part, out_dir]
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
    """For every mode and loss, 20 AdamW steps from the same weights on the same batches:
    --accum-steps 4 on one device, and on two replicas (3T also --accum-steps 1 there), end
    with every trained weight equal to 1e-5 of its scale to the full-batch steps on one device."""
    reports, out_dir = runs
    one, two = reports["one-device"], reports["two-replicas"]
    assert two["replicas"] == 2
    for case in CASES:
        names = json.load(open(os.path.join(out_dir, f"{case}_names.json")))
        initial = load(out_dir, f"{case}_initial")
        for a, b in zip(initial, load(out_dir, f"{case}_initial_mirrored")):
            np.testing.assert_allclose(a, b, rtol=1e-7, err_msg=case)
        steps = {**one["cases"][case]["steps"], **two["cases"][case]["steps"]}
        final = {run: load(out_dir, f"{case}_{run}") for run in steps}
        assert {"single_accum1", "single_accum4", "mirrored_accum4"} <= set(final), case
        assert set(steps.values()) == {STEPS}, (case, steps)
        # XLA (tt train's default on one CPU device) for one run; never with several CPU replicas.
        jit = {**one["cases"][case]["jit"], **two["cases"][case]["jit"]}
        assert jit == {run: case == "clip-softmax" and run == "single_accum4" for run in final}, (case, jit)
        moved, _ = worst(relative_differences(names, final["single_accum1"], initial))
        assert moved > 1e-3, case  # the steps really moved the weights
        # Every run against the full-batch step on one device: accumulated, on two replicas, both.
        for run, weights in final.items():
            difference, weight = worst(relative_differences(names, final["single_accum1"], weights))
            assert difference < TOLERANCE, (case, run, weight, difference)
        for run, weights in final.items():
            for name, w in zip(names, weights):
                if untrained(name):
                    assert np.max(np.abs(w)) < UNTRAINED_BOUND, (case, run, name)
        losses = {**one["cases"][case]["losses"], **two["cases"][case]["losses"]}
        for run, logged in losses.items():
            assert logged[0] == pytest.approx(losses["single_accum1"][0], rel=1e-5), (case, run)


@pytest.mark.slow
def test_the_comparison_sees_what_was_wrong(runs):
    """Keras given the token embedding's raw gradient (tt before models.gradients) ends far
    outside the tolerance; plain accumulation (each micro-batch its own loss) computes
    another gradient altogether."""
    reports, out_dir = runs
    names = json.load(open(os.path.join(out_dir, "clip-softmax_names.json")))
    raw = load(out_dir, "clip-softmax_single_raw")
    assert reports["one-device"]["raw_gradients"]["steps"]["single_raw"] == STEPS
    difference, _ = worst(relative_differences(names, raw, load(out_dir, "clip-softmax_single_accum4")))
    assert difference > 10 * TOLERANCE
    assert reports["one-device"]["plain_accumulation_distance"] > 0.05


@pytest.mark.slow
def test_sigmoid_loss_equals_numpy(runs):
    """The logged first-step loss of every sigmoid run, and `sigmoid_loss` split over two
    replicas, equal an independent float64 NumPy computation."""
    reports, _ = runs
    one, two = reports["one-device"]["cases"], reports["two-replicas"]["cases"]
    for case in CASES:
        if case.endswith("sigmoid"):
            expected = one[case]["numpy_loss"]
            for run, logged in {**one[case]["losses"], **two[case]["losses"]}.items():
                assert logged[0] == pytest.approx(expected, rel=1e-5), (case, run)
    split = reports["two-replicas"]
    assert split["sigmoid_two_replicas"] == pytest.approx(split["sigmoid_numpy"], rel=1e-5)


@pytest.mark.slow
def test_mixed_precision_accumulates(runs):
    """3T (sigmoid) under float16 with loss scaling and under bfloat16: the gradient gradient
    caching gives the optimizer is the whole batch's, to the precision's rounding, and so is
    float32's; tt train's accumulated steps all apply (no overflow skipped one) and stay finite."""
    reports, _ = runs
    for policy, result in reports["one-device"]["mixed_precision"].items():
        tolerance = MIXED_TOLERANCE[policy]
        assert result["accumulated_vs_whole"] < tolerance, (policy, result)
        assert result["accumulated_vs_float32"] < tolerance, (policy, result)
        assert result["steps"] == len(result["losses"]) and result["finite"], (policy, result)
        assert all(np.isfinite(result["losses"])), (policy, result)
        if policy == "mixed_float16":
            assert result["loss_scale"][0] == result["loss_scale"][1] > 1, result  # scaled, never halved
