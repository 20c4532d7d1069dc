"""One step on two replicas equals one step on one device with the same global batch,
through Keras's `model.fit` (a library user's path). The step `tt train` runs is checked
the same way, with and without gradient caching, in test_accum.py."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_mirrored_step_equals_single_device_step(tiny_vit_preset):
    script = os.path.join(os.path.dirname(__file__), "support", "mirrored_step.py")
    result = subprocess.run([sys.executable, script, tiny_vit_preset], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    # XLA by default on one CPU device, not with several CPU replicas (where it fails).
    assert report["jit_default"] == {"single": True, "mirrored": False}
    assert report["max_weight_update"] > 1e-3  # the step really moved the weights
    assert report["max_weight_diff"] < 1e-5
    assert report["loss_mirrored"] == pytest.approx(report["loss_single"], abs=1e-5)
