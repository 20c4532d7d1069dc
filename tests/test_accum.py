"""Gradient caching (`--accum-steps`) is the same optimizer step as without it, and the
sigmoid loss is SigLIP's, on one device and on two replicas."""

import json
import os
import subprocess
import sys

import pytest


def test_accumulated_step_equals_the_full_batch_step(tiny_vit_preset):
    """clip, lit and 3t (with the sigmoid loss on all three pairs): one SGD step in 4
    micro-batches equals one step on the whole batch, to float32 tolerance (1e-5 absolute,
    after updates > 1e-3; the two sum the gradient in different orders), on 2 replicas
    through the step `tt train` runs, and on one device (clip through that step with XLA,
    lit and 3t its train_step eagerly); for 3t also `tt train`'s step without accumulation
    on 2 replicas. Plain accumulation (each micro-batch its own loss) is far off. The logged
    sigmoid loss, and `sigmoid_loss` on 2 replicas, equal an independent float64 NumPy
    computation."""
    script = os.path.join(os.path.dirname(__file__), "support", "accum_step.py")
    result = subprocess.run([sys.executable, script, tiny_vit_preset], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert set(report["cases"]) == {"clip-softmax", "lit-softmax", "3t-sigmoid"}
    assert set(report["cases"]["3t-sigmoid"]["max_weight_diff"]) == {"single", "mirrored", "mirrored_plain"}
    assert report["cases"]["3t-sigmoid"]["steps_mirrored_plain"] == 1
    for name, case in report["cases"].items():
        assert case["max_weight_update"] > 1e-3, name  # the step really moved the weights
        assert case["steps_single"] == case["steps_mirrored"] == 1, name  # one optimizer step
        assert case["jit_single"] is (name == "clip-softmax") and case["jit_mirrored"] is False, name
        for where, diff in case["max_weight_diff"].items():
            assert diff < 1e-5, (name, where)
        for where, loss in case["losses"].items():
            assert loss == pytest.approx(case["losses"]["reference"], abs=1e-5), (name, where)
    # Micro-batches compared only against themselves: another objective, another step.
    assert report["naive_weight_diff"] > 1e-2
    sigmoid = report["cases"]["3t-sigmoid"]
    for where, loss in sigmoid["losses"].items():
        assert loss == pytest.approx(sigmoid["numpy_loss"], rel=1e-5), where
    assert report["sigmoid_two_replicas"] == pytest.approx(report["sigmoid_numpy"], rel=1e-5)
