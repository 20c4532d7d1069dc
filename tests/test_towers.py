"""3T with several third towers: the objective, one tower as before, and a two-tower run
trained, resumed, exported; LiT refuses several towers."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
from conftest import TINY_TRAIN_FLAGS, run_tt
from test_models import BATCH, MAX_LEN, TINY, VOCAB, make_batch, normalize, numpy_contrastive_loss
from test_train_processes import checkpoint_values

from models import PretrainedTower, ThreeTowers, contrastive_loss
from models.normalize import l2_normalize


def build_3t(towers, aux_weight=1.0, cls=ThreeTowers):
    keras.utils.set_random_seed(0)
    model = cls.from_scale(
        TINY, mode="3t", vocab_size=VOCAB, max_len=MAX_LEN, pretrained_tower=towers, aux_weight=aux_weight
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=False)  # XLA would triple the time
    return model


def two_tower_batch(seed):
    batch = make_batch(np.random.default_rng(seed))  # h_image at 32 px for the first tower
    batch["h_image_1"] = np.random.default_rng(seed + 1).integers(0, 256, (BATCH, 48, 48, 3)).astype("uint8")
    return batch


def test_two_towers_objective_matches_numpy(tiny_vit_preset, second_tiny_vit_preset):
    towers = [PretrainedTower.from_preset(tiny_vit_preset), PretrainedTower.from_preset(second_tiny_vit_preset)]
    model = build_3t(towers, aux_weight=0.5)
    batch = two_tower_batch(7)
    losses = {k: float(v) for k, v in model.compute_losses(batch).items()}

    f = np.asarray(model.image_tower(batch["image"]))
    g = np.asarray(model.text_tower(batch["tokens"]))
    hs = [np.asarray(towers[0](batch["h_image"])), np.asarray(towers[1](batch["h_image_1"]))]
    assert hs[0].shape[1] == 16 and hs[1].shape[1] == 24  # two different teachers
    linear = lambda head, x: np.asarray(head.dense(x))  # the head's linear map; normalised below
    log_t = np.log(10.0)
    expected = {"loss_image_text": numpy_contrastive_loss(normalize(f), normalize(g), log_t)}
    for k, (image_pair, text_pair, heads) in enumerate(
        [
            (
                "image_pretrained",
                "text_pretrained",
                (model.image_head, model.pretrained_image_head, model.text_head, model.pretrained_text_head),
            ),
            (
                "image_pretrained_1",
                "text_pretrained_1",
                (model.image_head_1, model.pretrained_image_head_1, model.text_head_1, model.pretrained_text_head_1),
            ),
        ]
    ):
        f_h, h_f, g_h, h_g = heads
        expected[f"loss_{image_pair}"] = numpy_contrastive_loss(
            normalize(linear(f_h, f)), normalize(linear(h_f, hs[k])), log_t
        )
        expected[f"loss_{text_pair}"] = numpy_contrastive_loss(
            normalize(linear(g_h, g)), normalize(linear(h_g, hs[k])), log_t
        )
    for name, value in expected.items():
        assert losses[name] == pytest.approx(value, abs=1e-5), name
    w, aux = 0.5, sum(v for k, v in expected.items() if k != "loss_image_text")
    assert losses["loss"] == pytest.approx((expected["loss_image_text"] + w * aux) / (1 + 2 * w * 2), abs=1e-5)
    # Each tower's heads and temperatures are its own, named after its pairs.
    assert [h.name for h in model.tower_heads(1)] == ["f_h1", "h1_f", "g_h1", "h1_g"]
    assert list(model.log_temperatures)[3:] == ["image_pretrained_1", "text_pretrained_1"]
    assert not towers[1].trainable_weights


class OneTower3T(ThreeTowers):
    """3T's loss as it was written before several towers, word for word (its one tower's
    features are the first entry of `pretrained` now)."""

    def losses_from_embeddings(self, embeddings):
        t = self.log_temperatures
        text = embeddings["text"]
        image = embeddings["image"]
        image_embedding = l2_normalize(image)
        losses = {}
        losses["loss_image_text"], accuracy = contrastive_loss(image_embedding, l2_normalize(text), t["image_text"])
        h = embeddings["pretrained"][0]
        losses["loss_image_pretrained"], _ = contrastive_loss(
            self.image_head(image), self.pretrained_image_head(h), t["image_pretrained"]
        )
        losses["loss_text_pretrained"], _ = contrastive_loss(
            self.text_head(text), self.pretrained_text_head(h), t["text_pretrained"]
        )
        w = self.aux_weight
        aux = losses["loss_image_pretrained"] + losses["loss_text_pretrained"]
        total = (losses["loss_image_text"] + w * aux) / (1 + 2 * w)
        losses["loss"], losses["accuracy"] = total, accuracy
        return losses


@pytest.mark.slow
def test_one_tower_trains_bit_for_bit_as_single_tower_3t(tiny_vit_preset):
    tower = PretrainedTower.from_preset(tiny_vit_preset)
    reference, single = build_3t(tower, 0.7, OneTower3T), build_3t([tower], 0.7)
    batch = make_batch(np.random.default_rng(8))
    for _ in range(2):  # the training step of `tt train`, run eagerly (tracing it would cost more)
        logs = [{k: float(v) for k, v in m.train_step(batch).items()} for m in (reference, single)]
    assert logs[0] == logs[1]
    assert [w.path for w in single.weights] == [w.path for w in reference.weights]
    for a, b in zip(reference.weights, single.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # The temperatures, heads and config keep their single-tower names: old runs'
    # model.json and checkpoints load.
    assert [w.path for w in single.weights if "log_t" in w.path] == [
        f"three_towers_3t/log_t_{pair}" for pair in ("image_text", "image_pretrained", "text_pretrained")
    ]
    assert [h.name for h in single.tower_heads(0)] == ["f_h", "h_f", "g_h", "h_g"]
    assert isinstance(single.get_config()["pretrained_tower"], dict)
    rebuilt = ThreeTowers.from_config(single.get_config())
    assert rebuilt.num_pretrained_towers == 1 and rebuilt.pretrained_tower.preset == tower.preset


@pytest.mark.slow
def test_two_tower_run_resumes_exactly_and_exports(tiny_shards, tiny_vit_preset, second_tiny_vit_preset, tmp_path):
    import tensorflow as tf

    from tt_cli.export.keras_file import export_keras
    from tt_cli.run_dir import load_run

    towers = ["--pretrained", tiny_vit_preset, "--pretrained", second_tiny_vit_preset]
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    args = ["train", "--data", tiny_shards, "--mode", "3t", *towers, *TINY_TRAIN_FLAGS, "--deterministic"]
    from tensorflow.python.framework import config as tf_config  # public TF has no way back

    was_deterministic = tf_config.is_op_determinism_enabled()
    try:
        assert run_tt([*args, "--out", straight]).exit_code == 0
        # The same run stopped after step 2: its checkpoint at 4 removed, 2 the latest.
        shutil.copytree(straight, resumed)
        checkpoints = os.path.join(resumed, "checkpoints")
        for name in os.listdir(checkpoints):
            if name.startswith("ckpt-4"):
                os.remove(os.path.join(checkpoints, name))
        tf.compat.v1.train.update_checkpoint_state(checkpoints, os.path.join(checkpoints, "ckpt-2"))
        result = run_tt([*args, "--out", resumed])
        assert result.exit_code == 0 and "resuming" in result.output
    finally:  # --deterministic holds for the whole process: later tests run as they would alone
        if not was_deterministic:
            tf_config.disable_op_determinism()
    a = checkpoint_values(os.path.join(straight, "checkpoints", "ckpt-4"))
    b = checkpoint_values(os.path.join(resumed, "checkpoints", "ckpt-4"))
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)

    record = json.load(open(os.path.join(straight, "run.json")))
    towers = record["resolved"]["third_towers"]
    assert record["config"]["pretrained"] == [t["preset"] for t in towers] == [tiny_vit_preset, second_tiny_vit_preset]
    assert [(t["index"], t["image_size"], t["embedding_dim"]) for t in towers] == [(0, [32, 32], 16), (1, [48, 48], 24)]
    logged = json.loads(open(os.path.join(straight, "metrics.jsonl")).readlines()[-1])
    assert {"loss_image_pretrained_1", "loss_text_pretrained_1", "t_image_pretrained_1"} <= set(logged)
    events = [os.path.join(straight, "logs", f) for f in os.listdir(os.path.join(straight, "logs"))]
    tags = {
        v.tag
        for e in tf.data.TFRecordDataset(events).as_numpy_iterator()
        for v in tf.compat.v1.Event.FromString(e).summary.value
    }
    assert {"loss_image_pretrained_1", "t_text_pretrained_1"} <= tags

    # Resuming with other towers is refused, naming the flag.
    other = run_tt(
        ["train", "--data", tiny_shards, "--out", straight, "--pretrained", tiny_vit_preset, *TINY_TRAIN_FLAGS]
    )
    assert other.exit_code == 2 and "--pretrained" in other.output and "--restart" in other.output

    # Eval and export rebuild both towers from model.json; the export computes what the run does.
    run = load_run(straight)
    assert run.model.num_pretrained_towers == 2
    export_keras(run, str(tmp_path / "model.keras"))
    import models  # noqa: F401  (registers tt's classes for load_model)

    loaded = keras.saving.load_model(str(tmp_path / "model.keras"))
    batch = two_tower_batch(9)
    batch["tokens"] = run.tokenizer.tokenize(tf.constant(["a red circle"] * BATCH)).numpy()
    np.testing.assert_allclose(loaded.encode_image(batch["image"]), run.model.encode_image(batch["image"]), atol=1e-6)
    np.testing.assert_allclose(loaded.encode_text(batch["tokens"]), run.model.encode_text(batch["tokens"]), atol=1e-6)
    expected = run.model.compute_losses(batch)
    for name, value in loaded.compute_losses(batch).items():
        assert float(value) == pytest.approx(float(expected[name]), abs=1e-5), name


def test_lit_with_several_towers_is_refused_in_one_line(tiny_shards, tmp_path):
    result = run_tt(
        [
            "train",
            "--data",
            tiny_shards,
            "--out",
            str(tmp_path / "lit"),
            "--mode",
            "lit",
            "--pretrained",
            "first",
            "--pretrained",
            "second",
        ]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: LiT locks one pretrained tower, not 2; pass --pretrained first alone (3T learns from several)."
    ]
    assert not os.path.exists(tmp_path / "lit")
    bench = run_tt(["bench", "--pretrained", "first", "--pretrained", "second", "--modes", "3t,lit"])
    assert bench.exit_code == 2 and bench.output.strip().splitlines() == [
        "Error: LiT locks one pretrained tower, not 2 (modes lit); pass --modes 3t to time the others."
    ]
