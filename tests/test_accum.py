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
# Each trained weight is compared by its relative difference ‖a − b‖ / ‖a‖ (its scale: its
# L2 norm). float32 sums the gradient in other orders in each run (micro-batches, replicas),
# and AdamW's update of an element whose gradient passes near zero carries that rounding a
# long way: measured after 20 steps, at most 5e-6 (one ViT bias; all other weights < 2e-6).
# One differing step is far beyond it: Keras given the raw embedding gradient, 1e-2.
TOLERANCE = 1e-5
# XLA fuses and reorders the same float ops (exp, matrix products) differently again:
# measured 1.7e-5 for CLIP's XLA-compiled accumulated step against the others.
XLA_TOLERANCE = 1e-4
# tt pretrain's AdamW divides by ε = 1e-7, not 1e-6, and its first step has the full
# learning rate: the rounding of an element whose gradient is near zero goes 10x further.
# Measured after 3 steps: 1.3e-5 (a layer-norm bias).
PRETRAIN_TOLERANCE = 1e-4
# Attention key biases get no gradient in exact arithmetic (softmax over the keys ignores a
# constant added to every key's logit): theirs is rounding noise, which AdamW divides by its
# ε and turns into values of ~2e-7 that say nothing about the step. They are checked to stay
# that small instead (a trained weight moves by ~4e-3 in these 20 steps).
UNTRAINED_BOUND = 1e-4
# Mixed precision: the relative L2 distance of the accumulated gradient from the whole
# batch's and from float32's. Each is rounding of the compute dtype through the towers'
# layers: measured ~5 units of roundoff for float16 (11-bit significand, u = 4.9e-4:
# 2.4e-3) and ~8 for bfloat16 (8-bit, u = 3.9e-3: 3.1e-2); the tolerances are 20u and
# 25u. A lost or doubled loss scale (gradients 2^15 off) or a tower whose float16
# gradient underflows gives a distance near 1.
MIXED_TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 1e-1}


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
    --accum-steps 4 on one device ends with every trained weight within 1e-5 of its norm of
    the full-batch steps' weights; so do the runs on two replicas (every mode and loss with
    accumulation, 3T without too). The frozen third tower never changes."""
    reports, out_dir = runs
    one, two = reports["one-device"]["cases"], reports["two-replicas"]["cases"]
    assert reports["two-replicas"]["replicas"] == 2
    assert {case.split("-")[0] for case in two} == {"clip", "lit", "3t"}
    assert {case.split("-")[1] for case in two} == {"softmax", "sigmoid"}
    assert {"mirrored_accum1", "mirrored_accum4"} <= set().union(*(two[case]["steps"] for case in two))
    for case in CASES:
        names = weight_names(out_dir, case)
        initial = load(out_dir, f"{case}_initial")
        runs_of = {key: {**one[case][key], **two.get(case, {}).get(key, {})} for key in ("steps", "jit", "losses")}
        final = {run: load(out_dir, f"{case}_{run}") for run in runs_of["steps"]}
        assert {"single_accum1", "single_accum4"} <= set(final), case
        assert set(runs_of["steps"].values()) == {STEPS}, (case, runs_of["steps"])
        # XLA (tt train's default on one CPU device) for one run; never with several CPU replicas.
        jit = runs_of["jit"]
        assert jit == {run: case == "clip-softmax" and run == "single_accum4" for run in final}, (case, jit)
        if case in two:
            for a, b in zip(initial, load(out_dir, f"{case}_initial_mirrored")):
                np.testing.assert_allclose(a, b, rtol=1e-7, err_msg=case)
        moved = relative_differences(names, final["single_accum1"], initial)
        assert min(moved.values()) > 10 * TOLERANCE, case  # every trained weight moved well past the tolerance
        # Every run against the full-batch steps on one device: accumulated, on two replicas, both.
        for run, weights in final.items():
            difference, weight = worst(relative_differences(names, final["single_accum1"], weights))
            assert difference < (XLA_TOLERANCE if jit[run] else TOLERANCE), (case, run, weight, difference)
            for name, w, w0 in zip(names, weights, initial):
                if name is None:  # the frozen third tower: never trained
                    np.testing.assert_array_equal(w, w0, err_msg=f"{case} {run}")
                elif untrained(name):
                    assert np.max(np.abs(w)) < UNTRAINED_BOUND, (case, run, name)
        for run, logged in runs_of["losses"].items():
            assert logged[0] == pytest.approx(runs_of["losses"]["single_accum1"][0], rel=1e-5), (case, run)


@pytest.mark.slow
def test_the_comparison_sees_what_was_wrong(runs):
    """Keras given the token embedding's raw gradient (tt before models.gradients) ends far
    outside the tolerance; plain accumulation (each micro-batch its own loss) computes
    another gradient altogether."""
    reports, out_dir = runs
    names = weight_names(out_dir, "clip-softmax")
    raw = load(out_dir, "clip-softmax_single_raw")
    assert reports["one-device"]["raw_gradients"]["steps"]["single_raw"] == STEPS
    difference, _ = worst(relative_differences(names, load(out_dir, "clip-softmax_single_accum1"), raw))
    assert difference > 100 * TOLERANCE
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
            for run, logged in {**one[case]["losses"], **two.get(case, {}).get("losses", {})}.items():
                assert logged[0] == pytest.approx(expected, rel=1e-5), (case, run)
    split = reports["two-replicas"]
    assert split["sigmoid_two_replicas"] == pytest.approx(split["sigmoid_numpy"], rel=1e-5)


@pytest.mark.slow
def test_mixed_precision_accumulates(runs):
    """3T (sigmoid) under float16 with loss scaling and under bfloat16: the gradient gradient
    caching gives the optimizer is the whole batch's, to the precision's rounding, and so is
    float32's; tt train's accumulated steps all apply (no overflow skipped one) and stay finite."""
    reports, _ = runs
    for policy, result in reports["two-replicas"]["mixed_precision"].items():
        tolerance = MIXED_TOLERANCE[policy]
        assert result["accumulated_vs_whole"] < tolerance, (policy, result)
        assert result["accumulated_vs_float32"] < tolerance, (policy, result)
        assert result["steps"] == len(result["losses"]) and result["finite"], (policy, result)
        assert all(np.isfinite(result["losses"])), (policy, result)
        if policy == "mixed_float16":
            # Scaled (2^15) and never halved: gradient caching's steps did not overflow.
            assert result["loss_scale"][0] == result["loss_scale"][1] == result["loss_scales"]["accumulated"] > 1


@pytest.mark.slow
def test_pretrain_step_on_two_replicas_equals_one_device(runs):
    """`tt pretrain`'s classifier step through `tt train`'s distributed step: 3 AdamW steps on
    two replicas end at the weights of the same steps on one device."""
    result = runs[0]["two-replicas"]["pretrain_classifier"]
    assert result["steps"] == 3 and result["max_difference"] < PRETRAIN_TOLERANCE, result
