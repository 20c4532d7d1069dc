"""tt's towers from KerasHub CLIP, SigLIP and MetaCLIP 2 presets against KerasHub's own model.

At step 0 a model `three_towers_from_preset` builds must be the preset's model: on the
same raw images (at the preset's size, so that no resize is involved) and the same
strings, tt's image and text embeddings, logits and zero-shot probabilities equal
KerasHub's (1e-5: the same float32 ops, L2-normalised in another order).
"""

import json
import os

import keras
import numpy as np
import pytest

from models.preset_backbones import assemble_backbone, family_of
from models.preset_model import load_preset_parts, three_towers_from_preset
from tt_cli.eval import zero_shot

PRESETS = ["tiny_clip_preset", "tiny_siglip_preset", "tiny_metaclip_2_preset"]
STRINGS = ["a red circle", "A large BLUE square, top left!", "green triangle in the bottom right", "purple"]


def keras_hub_model(preset):
    """KerasHub's own backbone and preprocessor of a preset, loaded the way its users do."""
    import keras_hub

    with open(os.path.join(preset, "config.json")) as f:
        family = family_of(json.load(f)["class_name"])
    backbone = keras_hub.models.Backbone.from_preset(preset)
    return backbone, getattr(keras_hub.models, family.preprocessor).from_preset(preset)


def raw_images(count=3, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype("uint8")


def normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("preset_fixture", PRESETS)
def test_step_0_equals_keras_hub(preset_fixture, request):
    preset = request.getfixturevalue(preset_fixture)
    backbone, preprocessor = keras_hub_model(preset)
    images = raw_images()
    inputs = preprocessor({"prompts": STRINGS, "images": images})
    outputs = backbone({"images": inputs["images"], "token_ids": inputs["token_ids"]})
    hub_image = normalize(backbone.get_vision_embeddings(inputs["images"]))
    hub_text = normalize(backbone.get_text_embeddings(inputs["token_ids"]))

    model = three_towers_from_preset(preset, mode="clip")
    image = model.encode_image(images).numpy()
    text = model.encode_text(inputs["token_ids"]).numpy()
    np.testing.assert_allclose(image, hub_image, atol=1e-5)
    np.testing.assert_allclose(text, hub_text, atol=1e-5)
    logits = zero_shot.logits(model, image, text)
    np.testing.assert_allclose(logits, keras.ops.convert_to_numpy(outputs["vision_logits"]), rtol=1e-5, atol=1e-5)
    # Zero-shot with one prompt per class: the softmax over classes of KerasHub's logits
    # (SigLIP's bias cancels in it; its per-pair sigmoid(logits) is covered by the logits).
    probabilities = zero_shot.class_probabilities(image, text, zero_shot.temperature(model))
    np.testing.assert_allclose(
        probabilities, softmax(keras.ops.convert_to_numpy(outputs["vision_logits"]).astype(np.float64)), atol=1e-5
    )
    assert model.loss_name == family_of(type(backbone).__name__).loss


@pytest.mark.parametrize("preset_fixture", PRESETS)
def test_assembled_backbone_is_the_preset(preset_fixture, request):
    """Taken apart into towers and put back together, the backbone computes what it did."""
    preset = request.getfixturevalue(preset_fixture)
    backbone, preprocessor = keras_hub_model(preset)
    parts = load_preset_parts(preset)
    rebuilt = assemble_backbone(parts.family, parts.image_tower, parts.text_tower, parts.log_temperature, parts.bias)
    assert type(rebuilt) is type(backbone)
    inputs = preprocessor({"prompts": STRINGS, "images": raw_images(len(STRINGS))})
    inputs = {"images": inputs["images"], "token_ids": inputs["token_ids"]}
    expected, got = backbone(inputs), rebuilt(inputs)
    for key in ("vision_logits", "text_logits"):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got[key]), keras.ops.convert_to_numpy(expected[key]))
    # Copies, not the towers' own variables: exporting never aliases the model being trained.
    assert not {id(v) for v in rebuilt.weights} & {id(v) for v in parts.image_tower.weights}


def test_frozen_copy_is_the_third_tower(tiny_clip_preset):
    """3T with --init: h is a frozen copy of f at step 0; LiT locks that copy as its image side."""
    import tensorflow as tf

    images = raw_images()
    model = three_towers_from_preset(tiny_clip_preset, mode="3t")
    h = model.pretrained_tower
    assert h.frozen and not h.trainable_weights and h.weights
    np.testing.assert_array_equal(h(images).numpy(), model.image_tower(images).numpy())
    assert not {id(v) for v in h.weights} & {id(v) for v in model.image_tower.weights}
    trainable = {id(v) for v in model.trainable_variables}
    assert not trainable & {id(v) for v in h.weights}
    assert {id(v) for v in model.image_tower.trainable_weights} <= trainable
    with tf.GradientTape() as tape:
        features = h(images, training=True)
    assert tape.gradient(features, h.encoder.weights[0]) is None

    lit = three_towers_from_preset(tiny_clip_preset, mode="lit")
    assert lit.image_tower is None and lit.pretrained_tower.frozen
    np.testing.assert_allclose(lit.encode_image(images).numpy(), model.encode_image(images).numpy(), atol=1e-6)


def test_model_config_round_trip(tiny_siglip_preset):
    """model.json rebuilds an --init model without the preset (the weights come from the checkpoint)."""
    model = three_towers_from_preset(tiny_siglip_preset, mode="3t")
    config = keras.saving.serialize_keras_object(model)
    rebuilt = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert [v.shape for v in rebuilt.weights] == [v.shape for v in model.weights]
    assert len(rebuilt.trainable_variables) == len(model.trainable_variables)
    assert rebuilt.pretrained_tower.frozen and rebuilt.image_size == model.image_size
    assert rebuilt.image_tower.resizing == {
        "interpolation": "bicubic",
        "antialias": False,
        "crop_to_aspect_ratio": True,
        "pad_to_aspect_ratio": False,
    }


def test_preset_temperature_and_bias(tiny_siglip_preset, tiny_clip_preset):
    """The image-text pair starts at the preset's logit scale and bias; the other pairs at tt's."""
    siglip = three_towers_from_preset(tiny_siglip_preset, mode="3t")
    assert float(siglip.log_temperatures["image_text"]) == pytest.approx(2.3)
    assert float(siglip.biases["image_text"]) == pytest.approx(-4.0)
    assert float(siglip.biases["image_pretrained"]) == -10.0
    clip = three_towers_from_preset(tiny_clip_preset, mode="clip", loss="sigmoid")
    assert float(clip.log_temperatures["image_text"]) == pytest.approx(np.log(1 / 0.07), rel=1e-6)
    assert float(clip.biases["image_text"]) == -10.0  # CLIP has no bias: tt's initial one


def test_not_an_image_text_preset(tiny_vit_preset):
    with pytest.raises(ValueError, match="ViTBackbone is not an image-text backbone.*CLIPBackbone"):
        load_preset_parts(tiny_vit_preset)


@pytest.mark.parametrize("preset_fixture", PRESETS)
def test_tokens_equal_the_preset_tokenizer(preset_fixture, request):
    """tt's tokenizer inside tf.data (KerasHub's TensorFlow path) gives the ids KerasHub's own
    preprocessor gives called eagerly (its Python path): case, punctuation, empty, overlong."""
    import tensorflow as tf

    from tt_cli.data.preset_tokenizer import PresetTokenizer

    preset = request.getfixturevalue(preset_fixture)
    _, preprocessor = keras_hub_model(preset)
    preprocessor.image_converter = None  # text only (SigLIP's would convert images=None)
    strings = STRINGS + ["", "  spaced   out  ", "ünïcode & symbols: 3 + 4 = 7", "red " * 40]
    tokenizer = PresetTokenizer(preset)
    dataset = tf.data.Dataset.from_tensor_slices(strings).batch(3).map(tokenizer.tokenize, num_parallel_calls=2)
    ours = np.concatenate([batch.numpy() for batch in dataset])
    theirs = keras.ops.convert_to_numpy(preprocessor({"prompts": strings, "images": None})["token_ids"])
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == np.int32 and ours.shape == (len(strings), tokenizer.max_len)
    assert tokenizer.tokenize(tf.constant("a red circle")).shape == (tokenizer.max_len,)


def test_images_resized_as_the_preset_does(tiny_clip_preset):
    """Images of another size and aspect go through the pipeline as the preset's converter
    resizes them (bicubic, centre crop), up to the rounding to uint8 the pipeline stores."""
    import tensorflow as tf

    from tt_cli.data.pipeline import decode_image

    _, preprocessor = keras_hub_model(tiny_clip_preset)
    tower = load_preset_parts(tiny_clip_preset).image_tower
    converter = preprocessor.image_converter
    for shape in [(48, 80, 3), (20, 17, 3)]:
        image = np.random.default_rng(1).integers(0, 256, shape).astype("uint8")
        ours = decode_image(tf.io.encode_png(image), tower.image_size, resizing=tower.resizing).numpy()
        # The converter's resize alone: undo its normalisation.
        theirs = (
            keras.ops.convert_to_numpy(converter(image[None].astype("float32")))[0] - tower._offset
        ) / tower._scale
        assert ours.shape == theirs.shape == (32, 32, 3)
        np.testing.assert_allclose(ours, np.clip(np.round(theirs), 0, 255), atol=1.0)
        assert np.abs(ours - np.clip(theirs, 0, 255)).max() <= 0.5 + 1e-3


def test_interpolation_of_weights(tiny_clip_preset):
    from models.weight_interpolation import interpolate_towers

    trained, initial = (three_towers_from_preset(tiny_clip_preset, mode="clip") for _ in range(2))
    rng = np.random.default_rng(0)
    for variable in trained.image_tower.weights + trained.text_tower.weights:
        if variable.dtype.startswith("float"):
            variable.assign(variable.numpy() + rng.normal(size=variable.shape).astype("float32"))
    trained.log_temperatures["image_text"].assign(1.0)
    expected = [(v.numpy() + w.numpy()) / 2 for v, w in zip(trained.text_tower.weights, initial.text_tower.weights)]
    interpolate_towers(trained, initial, 0.5)
    for value, variable in zip(expected, trained.text_tower.weights):
        np.testing.assert_allclose(variable.numpy(), value, atol=1e-6)
    start = float(initial.log_temperatures["image_text"].numpy())
    assert float(trained.log_temperatures["image_text"].numpy()) == pytest.approx((1.0 + start) / 2)
    interpolate_towers(trained, initial, 0.0)
    for variable, start in zip(trained.image_tower.weights, initial.image_tower.weights):
        np.testing.assert_array_equal(variable.numpy(), start.numpy())
    with pytest.raises(ValueError, match="alpha"):
        interpolate_towers(trained, initial, 1.5)


def test_text_third_tower_is_the_sentence_encoder(tiny_sentence_encoder_preset):
    """A text third tower gives what KerasHub's TextEmbedder gives on the same strings, frozen."""
    import keras_hub
    import tensorflow as tf

    from models import PretrainedTextTower
    from models.pretrained_text_tower import text_preprocessor

    tower = PretrainedTextTower.from_preset(tiny_sentence_encoder_preset)
    preprocessor = text_preprocessor(tiny_sentence_encoder_preset)
    inputs = tf.data.Dataset.from_tensor_slices(STRINGS).batch(len(STRINGS)).map(preprocessor)
    ours = tower(next(iter(inputs))).numpy()
    theirs = keras_hub.models.TextEmbedder.from_preset(tiny_sentence_encoder_preset).predict(STRINGS, verbose=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert ours.shape == (len(STRINGS), tower.output_dim) and not tower.trainable_weights


@pytest.mark.slow  # 6 s for both presets; models/remat.py has fast tests of its own (test_remat.py)
@pytest.mark.parametrize("preset_fixture", ["tiny_clip_preset", "tiny_siglip_preset"])
def test_remat_of_preset_towers_keeps_the_loss_and_gradients(preset_fixture, request):
    """`--remat --init`: every encoder block of f and g recomputed, the same loss and gradients
    inside a `tf.function`, as `tt train` runs the step."""
    import tensorflow as tf

    from models.remat import rematerialize_towers

    preset = request.getfixturevalue(preset_fixture)
    model = three_towers_from_preset(preset, mode="clip")
    batch = {
        "image": tf.constant(raw_images(4)),
        "tokens": tf.constant(np.tile(np.arange(1, model.text_tower.max_len + 1, dtype="int32"), (4, 1)) % 7 + 1),
    }

    @tf.function
    def loss_and_gradients():
        with tf.GradientTape() as tape:
            loss = model.compute_losses(batch, training=True)["loss"]
        return [tf.convert_to_tensor(t) for t in (loss, *tape.gradient(loss, model.trainable_variables))]

    plain = [t.numpy() for t in loss_and_gradients()]
    blocks = len(model.image_tower.transformer_blocks) + len(model.text_tower.transformer_blocks)
    assert blocks > 0 and rematerialize_towers(model) == blocks
    remat = tf.function(loss_and_gradients.python_function)
    for a, b in zip(plain, remat()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
