"""`--remat` (issue 26): rematerialised transformer blocks give the step they replace.

The fast test checks `models.remat` on one layer; the slow one runs tt's own training step
(AdamW) with and without `--remat` on one device (traced, with XLA, in micro-batches) and on
two replicas, in a subprocess that makes the two logical CPUs first (`remat_step.py`).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest


def test_rematerialized_layer_gives_the_same_values_and_gradients():
    import keras
    import tensorflow as tf

    from models.remat import rematerialize

    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(8, activation="gelu")
    x = tf.constant(np.random.default_rng(0).standard_normal((4, 5)).astype("float32"))
    layer.build(x.shape)

    def value_and_gradients():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(layer(x) ** 2)
        return [y, *tape.gradient(y, [x, *layer.trainable_variables])]

    plain = value_and_gradients()
    assert rematerialize([layer]) == 1
    assert rematerialize([layer]) == 0  # once is enough: a second call leaves it as it is
    for compute in (value_and_gradients, tf.function(value_and_gradients)):
        for a, b in zip(plain, compute()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_towers_list_their_transformer_blocks():
    from models import ThreeTowers, get_scale
    from models.remat import rematerialize_towers

    model = ThreeTowers.from_scale(get_scale("tiny"), mode="clip", vocab_size=50, max_len=8)
    blocks = model.image_tower.transformer_blocks + model.text_tower.transformer_blocks
    assert [b.name for b in blocks] == [
        "transformer_block_1",
        "transformer_block_2",
        "encoder_layer_0",
        "encoder_layer_1",
    ]
    assert rematerialize_towers(model) == 4


@pytest.mark.slow
def test_remat_step_equals_the_plain_step_on_one_device_and_two_replicas():
    script = os.path.join(os.path.dirname(__file__), "support", "remat_step.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for case in ("one_device", "two_replicas_accum2"):
        assert report[f"{case}/moved"] > 1e-3, report  # three AdamW steps moved the weights
        assert report[case] <= 1e-6, (case, report)
    # XLA fuses the recomputed forward with its backward differently: the same step, rounded otherwise.
    assert report["one_device_xla/moved"] > 1e-3 and report["one_device_xla"] <= 1e-5, report
