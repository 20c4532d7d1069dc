"""The towers, heads, loss and ThreeTowers model, at tiny scale."""

import time

import keras
import numpy as np
import pytest

from models import PretrainedTower, ThreeTowers, contrastive_loss, get_scale
from models.pretrained_presets import resolve_pretrained
from models.sigmoid_loss import sigmoid_loss
from tt_cli.errors import TtError
from tt_cli.presets import load_pretrained_tower

TINY = get_scale("tiny")
VOCAB, MAX_LEN, BATCH = 50, 8, 6


def numpy_contrastive_loss(a, b, log_t):
    """Symmetric InfoNCE written independently: log-softmax by hand, float64."""
    logits = np.exp(min(log_t, np.log(100.0))) * (a.astype(np.float64) @ b.astype(np.float64).T)

    def cross_entropy(z):
        z = z - z.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -np.mean(np.diag(log_probs))

    return 0.5 * (cross_entropy(logits) + cross_entropy(logits.T))


def normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_batch(rng, h_size=32, with_h_image=True):
    lengths = rng.integers(1, MAX_LEN, size=BATCH)
    tokens = np.zeros((BATCH, MAX_LEN), "int32")
    for i, n in enumerate(lengths):
        tokens[i, : n - 1] = rng.integers(3, VOCAB, size=n - 1)
        tokens[i, n - 1] = 2  # EOS
    batch = {"image": rng.integers(0, 256, (BATCH, 32, 32, 3)).astype("uint8"), "tokens": tokens}
    if with_h_image:
        batch["h_image"] = rng.integers(0, 256, (BATCH, h_size, h_size, 3)).astype("uint8")
    return batch


def build(mode, preset=None, **kwargs):
    keras.utils.set_random_seed(0)
    tower = PretrainedTower.from_preset(preset) if preset else None
    model = ThreeTowers.from_scale(TINY, mode=mode, vocab_size=VOCAB, max_len=MAX_LEN, pretrained_tower=tower, **kwargs)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    return model


@pytest.mark.parametrize("log_t", [np.log(10.0), np.log(250.0)])  # the second is clipped to 100
def test_contrastive_loss_matches_numpy(log_t):
    rng = np.random.default_rng(1)
    a, b = normalize(rng.normal(size=(16, 12))), normalize(rng.normal(size=(16, 12)))
    loss, accuracy = contrastive_loss(a.astype("float32"), b.astype("float32"), log_t)
    np.testing.assert_allclose(float(loss), numpy_contrastive_loss(a, b, log_t), atol=1e-5)
    expected_accuracy = np.mean(np.argmax(a @ b.T, axis=1) == np.arange(16))
    assert float(accuracy) == pytest.approx(expected_accuracy)


def numpy_sigmoid_loss(a, b, log_t, bias):
    """SigLIP's loss written independently in float64: -(1/B) Σ_i Σ_j log σ(z_ij (t a_i·b_j + β))."""
    logits = np.exp(min(log_t, np.log(100.0))) * (a.astype(np.float64) @ b.astype(np.float64).T) + bias
    labels = 2 * np.eye(len(a)) - 1
    return np.mean(np.sum(np.log1p(np.exp(-labels * logits)), axis=1))


@pytest.mark.parametrize("log_t, bias", [(np.log(10.0), -10.0), (np.log(250.0), 2.0)])  # t clipped at 100
def test_sigmoid_loss_matches_numpy(log_t, bias):
    rng = np.random.default_rng(11)
    a, b = normalize(rng.normal(size=(16, 12))), normalize(rng.normal(size=(16, 12)))
    loss, accuracy = sigmoid_loss(a.astype("float32"), b.astype("float32"), log_t, bias)
    np.testing.assert_allclose(float(loss), numpy_sigmoid_loss(a, b, log_t, bias), rtol=1e-5)
    assert float(accuracy) == pytest.approx(np.mean(np.argmax(a @ b.T, axis=1) == np.arange(16)))


def test_sigmoid_model_has_a_bias_per_pair_in_its_config_and_metrics(tiny_vit_preset):
    model = build("3t", tiny_vit_preset, loss="sigmoid")
    assert {k: float(v.numpy()) for k, v in model.biases.items()} == {
        "image_text": -10.0,
        "image_pretrained": -10.0,
        "text_pretrained": -10.0,
    }
    assert {"bias_image_text", "bias_image_pretrained", "bias_text_pretrained"} <= {m.name for m in model.metrics}
    rebuilt = ThreeTowers.from_config(model.get_config())  # as load_run rebuilds it from model.json
    assert rebuilt.loss_name == "sigmoid" and len(rebuilt.weights) == len(model.weights)
    assert not build("clip").biases  # the softmax loss has none (earlier checkpoints still load)


def test_each_3t_loss_term_matches_numpy(tiny_vit_preset):
    model = build("3t", tiny_vit_preset, aux_weight=0.5)
    batch = make_batch(np.random.default_rng(2))
    losses = {k: float(v) for k, v in model.compute_losses(batch).items()}

    f = np.asarray(model.image_tower(batch["image"]))
    g = np.asarray(model.text_tower(batch["tokens"]))
    h = np.asarray(model.pretrained_tower(batch["h_image"]))
    heads = lambda head, x: np.asarray(head.dense(x))  # the head's linear map; normalised below
    log_t = np.log(10.0)
    expected = {
        "loss_image_text": numpy_contrastive_loss(normalize(f), normalize(g), log_t),
        "loss_image_pretrained": numpy_contrastive_loss(
            normalize(heads(model.image_head, f)), normalize(heads(model.pretrained_image_head, h)), log_t
        ),
        "loss_text_pretrained": numpy_contrastive_loss(
            normalize(heads(model.text_head, g)), normalize(heads(model.pretrained_text_head, h)), log_t
        ),
    }
    for name, value in expected.items():
        assert losses[name] == pytest.approx(value, abs=1e-5), name
    aux = expected["loss_image_pretrained"] + expected["loss_text_pretrained"]
    total = (expected["loss_image_text"] + 0.5 * aux) / 2
    assert losses["loss"] == pytest.approx(total, abs=1e-5)


def test_lit_loss_matches_numpy(tiny_vit_preset):
    model = build("lit", tiny_vit_preset)
    batch = make_batch(np.random.default_rng(3))
    h = np.asarray(model.pretrained_tower(batch["h_image"]))
    g = np.asarray(model.text_tower(batch["tokens"]))
    assert g.shape[1] == h.shape[1] == 16  # without --lit-head, g projects to h's width
    expected = numpy_contrastive_loss(normalize(h), normalize(g), np.log(10.0))
    assert float(model.compute_losses(batch)["loss"]) == pytest.approx(expected, abs=1e-5)


def snapshot(layer):
    return [w.numpy() for w in layer.weights]


def moved(before, layer):
    return any(not np.array_equal(b, w.numpy()) for b, w in zip(before, layer.weights))


@pytest.mark.slow
def test_3t_training_moves_f_g_heads_temperatures_but_never_h(tiny_vit_preset):
    model = build("3t", tiny_vit_preset)
    parts = {
        "f": model.image_tower,
        "g": model.text_tower,
        "f_h": model.image_head,
        "h_f": model.pretrained_image_head,
        "g_h": model.text_head,
        "h_g": model.pretrained_text_head,
    }
    before = {name: snapshot(layer) for name, layer in parts.items()}
    h_before = snapshot(model.pretrained_tower)
    t_before = {k: float(v.numpy()) for k, v in model.log_temperatures.items()}
    batch = make_batch(np.random.default_rng(4))
    for _ in range(3):
        logs = model.train_on_batch(batch, return_dict=True)
    assert {
        "loss",
        "accuracy",
        "loss_image_text",
        "loss_image_pretrained",
        "loss_text_pretrained",
        "t_image_text",
        "t_image_pretrained",
        "t_text_pretrained",
    } <= set(logs)
    for name, layer in parts.items():
        assert moved(before[name], layer), f"{name} did not train"
    for name, value in t_before.items():
        assert float(model.log_temperatures[name].numpy()) != value
    assert not model.pretrained_tower.trainable_weights
    for b, w in zip(h_before, model.pretrained_tower.weights):
        np.testing.assert_array_equal(b, w.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("lit_head", [False, True])
def test_lit_keeps_the_image_side_locked(tiny_resnet_preset, lit_head):
    model = build("lit", tiny_resnet_preset, lit_head=lit_head)
    h_before, g_before = snapshot(model.pretrained_tower), snapshot(model.text_tower)
    batch = make_batch(np.random.default_rng(5), h_size=40)
    image_before = np.asarray(model.encode_image(batch["h_image"]))
    for _ in range(3):
        model.train_on_batch(batch)
    for b, w in zip(h_before, model.pretrained_tower.weights):
        np.testing.assert_array_equal(b, w.numpy())
    assert moved(g_before, model.text_tower)
    image_after = np.asarray(model.encode_image(batch["h_image"]))
    if lit_head:  # only the linear head on h trains
        assert not np.array_equal(image_before, image_after)
    else:
        np.testing.assert_array_equal(image_before, image_after)


def test_precomputed_h_embedding_replaces_running_h(tiny_vit_preset):
    model = build("3t", tiny_vit_preset)
    batch = make_batch(np.random.default_rng(6))
    online = model.compute_losses(batch)
    precomputed = dict(batch, h_embedding=np.asarray(model.pretrained_tower(batch.pop("h_image"))))
    offline = model.compute_losses(precomputed)
    assert float(offline["loss"]) == pytest.approx(float(online["loss"]), abs=1e-6)


def test_pretrained_presets_give_pooled_width(tiny_vit_preset, tiny_resnet_preset):
    vit = PretrainedTower.from_preset(tiny_vit_preset)
    assert vit.output_dim == 16 and vit.image_size == (32, 32)
    assert vit.preprocessing["scale"] == [pytest.approx(1 / 127.5)]
    images = np.random.default_rng(7).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    # Class-token pooling of the backbone's output on the converter's [-1, 1] pixels.
    expected = np.asarray(vit.backbone(images / 127.5 - 1.0))[:, 0]
    np.testing.assert_allclose(np.asarray(vit(images)), expected, atol=1e-5)

    resnet = PretrainedTower.from_preset(tiny_resnet_preset)
    assert resnet.output_dim == 32 and resnet.image_size == (224, 224)
    features = np.asarray(resnet.backbone(np.zeros((1, 224, 224, 3))))
    np.testing.assert_allclose(
        np.asarray(resnet(np.zeros((1, 224, 224, 3), "uint8"))), features.mean(axis=(1, 2)), atol=1e-5
    )


@pytest.mark.parametrize(
    "preset", ["hf://no-such-user/no-such-model", "vit_base_patch16_224_imagenet21k", "/no/such/preset/dir"]
)
def test_unreachable_preset_fails_fast_with_advice(preset):
    start = time.monotonic()
    with pytest.raises(TtError, match="local preset directory"):
        load_pretrained_tower(preset, "b16")
    assert time.monotonic() - start < 10


def test_aliases_resolve_by_scale():
    assert resolve_pretrained("imagenet21k", "b16") == ("vit_base_patch16_224_imagenet21k", None)
    assert resolve_pretrained("imagenet21k", "l32") == ("vit_large_patch32_224_imagenet21k", None)
    preset, note = resolve_pretrained("imagenet21k", "s16")
    assert preset == "vit_base_patch16_224_imagenet21k" and "s16" in note
    preset, note = resolve_pretrained("imagenet", "h14")
    assert preset.startswith("vit_large_patch16") and note


@pytest.mark.slow
def test_keras_file_round_trip(tiny_vit_preset, tmp_path):
    model = build("3t", tiny_vit_preset)
    batch = make_batch(np.random.default_rng(8))
    model.train_on_batch(batch)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.mode == "3t"
    # Still frozen after loading: h contributes no trainable weights.
    assert not loaded.pretrained_tower.trainable_weights
    assert len(loaded.trainable_weights) == len(model.trainable_weights)
    for key in ("image", "text"):
        np.testing.assert_array_equal(np.asarray(model(batch)[key]), np.asarray(loaded(batch)[key]))
    assert float(loaded.compute_losses(batch)["loss"]) == pytest.approx(float(model.compute_losses(batch)["loss"]))


@pytest.mark.slow
def test_mixed_precision_keeps_loss_in_float32(tiny_vit_preset):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build("3t", tiny_vit_preset)
        assert model.image_tower.compute_dtype == "bfloat16"
        batch = make_batch(np.random.default_rng(9))
        losses = model.compute_losses(batch)
        assert losses["loss"].dtype == "float32"
        logs = model.train_on_batch(batch, return_dict=True)
        assert np.isfinite(logs["loss"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
