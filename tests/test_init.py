"""`tt train --init PRESET` through the CLI: runs that start from tiny KerasHub CLIP and
SigLIP presets (`tiny_clip_presets.py`), their exports back to KerasHub, WiSE-FT.

Every comparison is against KerasHub's own model (`from_preset` of a preset directory)
on the same raw images and strings: at step 0 (the preset, or a run interpolated back
to it) and after training (the exported preset against tt's evaluation of the run).
"""

import json
import os
import time

import numpy as np
import pytest
from conftest import run_tt

INIT_FLAGS = ["--batch-size", "8", "--log-every", "2", "--checkpoint-every", "2", "--no-jit"]
STRINGS = ["a red circle", "A large BLUE square, top left!", "green triangle in the bottom right", "purple", ""]


def raw_images(count=4, size=32, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype("uint8")


def normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def keras_hub_embeddings(preset, backbone_class, preprocessor_class, images, strings):
    """What a KerasHub user gets from a preset directory: normalised embeddings, logits, tokens."""
    import keras
    import keras_hub

    backbone = getattr(keras_hub.models, backbone_class).from_preset(preset)
    preprocessor = getattr(keras_hub.models, preprocessor_class).from_preset(preset)
    inputs = preprocessor({"prompts": strings, "images": images})
    outputs = backbone({"images": inputs["images"], "token_ids": inputs["token_ids"]})
    return {
        "image": normalize(backbone.get_vision_embeddings(inputs["images"])),
        "text": normalize(backbone.get_text_embeddings(inputs["token_ids"])),
        "logits": keras.ops.convert_to_numpy(outputs["vision_logits"]),
        "tokens": keras.ops.convert_to_numpy(inputs["token_ids"]),
    }


def tt_embeddings(run, images, strings):
    """What tt's evaluation computes for a loaded run: its tokenizer inside tf.data, its model."""
    import tensorflow as tf

    from tt_cli.eval import encode, zero_shot

    tokens = np.concatenate(
        [t.numpy() for t in tf.data.Dataset.from_tensor_slices(strings).batch(2).map(run.tokenizer.tokenize)]
    )
    image = run.model.encode_image(images).numpy()
    text = encode.encode_texts(run.model, run.tokenizer, strings, show_progress=False)
    return {"image": image, "text": text, "logits": zero_shot.logits(run.model, image, text), "tokens": tokens}


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory, tiny_shards, tiny_clip_preset, tiny_sentence_encoder_preset):
    """3T from the tiny CLIP preset: its third towers a frozen copy of the preset's image tower
    and, on the text side, a sentence encoder."""
    out = str(tmp_path_factory.mktemp("init_clip_3t"))
    args = ["train", "--data", tiny_shards, "--out", out, "--init", tiny_clip_preset, "--steps", "4"]
    result = run_tt(args + ["--pretrained-text", tiny_sentence_encoder_preset] + INIT_FLAGS)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def siglip_run(tmp_path_factory, tiny_shards, tiny_siglip_preset):
    """LiT from the tiny SigLIP preset (the sigmoid loss by default, with the preset's bias)."""
    out = str(tmp_path_factory.mktemp("init_siglip_lit"))
    args = ["train", "--data", tiny_shards, "--out", out, "--init", tiny_siglip_preset, "--mode", "lit"]
    result = run_tt(args + ["--steps", "3", "--lr", "1e-2"] + INIT_FLAGS)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_clip_run_exports_back_to_keras_hub(
    clip_run, tiny_clip_preset, tiny_siglip_preset, tiny_sentence_encoder_preset, tiny_shards, tiny_val_shards, tmp_path
):
    """The run records the preset and its copy; resuming needs nothing more; `tt export preset`
    writes a CLIPBackbone whose embeddings (and tokens, and logits) are tt's; `tt eval` reads
    the export as it reads the run."""
    from tt_cli.run_dir import load_run

    with open(os.path.join(clip_run, "run.json")) as f:
        record = json.load(f)
    given, resolved = record["config"], record["resolved"]
    assert given["init"] == tiny_clip_preset and given["pretrained"] == ["init"] and given["loss"] is None
    init = resolved["init"]
    assert init["class"] == "CLIPBackbone" and init["copy"] == "init" and init["copy_bytes"] > 0
    assert resolved["loss"] == "softmax" and init["max_text_len"] == 16 and init["image_size"] == [32, 32]
    assert not os.path.exists(os.path.join(clip_run, "tokenizer.model"))  # the preset's own tokenizer instead
    # Two third towers: the frozen copy (image side) and the sentence encoder (text side), each with its pairs.
    towers = [(tower["preset"], tower["modality"]) for tower in resolved["third_towers"]]
    assert towers == [("init", "image"), (os.path.abspath(tiny_sentence_encoder_preset), "text")]
    with open(os.path.join(clip_run, "metrics.jsonl")) as f:
        logged = json.loads(f.readlines()[-1])
    pairs = ("image_pretrained", "text_pretrained", "image_pretrained_1", "text_pretrained_1")
    assert {f"loss_{pair}" for pair in pairs} <= set(logged)

    # Resumed with more steps: from the run's copy, without touching the preset again.
    moved = str(tmp_path / "preset_gone")
    os.rename(tiny_clip_preset, moved)
    try:
        resume = ["train", "--data", tiny_shards, "--out", clip_run, "--init", tiny_clip_preset, "--steps", "5"]
        result = run_tt(resume + ["--pretrained-text", tiny_sentence_encoder_preset] + INIT_FLAGS)
    finally:
        os.rename(moved, tiny_clip_preset)
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "copying" not in result.output
    other = run_tt(["train", "--data", tiny_shards, "--out", clip_run, "--init", tiny_siglip_preset, "--steps", "6"])
    assert other.exit_code == 2 and "--init" in other.output and "--restart" in other.output

    out = str(tmp_path / "exported")
    result = run_tt(["export", "preset", clip_run, out])
    assert result.exit_code == 0, result.output
    images = raw_images()
    run = load_run(clip_run)
    assert run.step == 5
    ours = tt_embeddings(run, images, STRINGS)
    theirs = keras_hub_embeddings(out, "CLIPBackbone", "CLIPPreprocessor", images, STRINGS)
    np.testing.assert_array_equal(ours["tokens"], theirs["tokens"])
    for key in ("image", "text"):
        np.testing.assert_allclose(ours[key], theirs[key], atol=1e-5)
    np.testing.assert_allclose(ours["logits"], theirs["logits"], rtol=1e-5, atol=1e-5)
    # Trained: the export is not the preset.
    initial = keras_hub_embeddings(tiny_clip_preset, "CLIPBackbone", "CLIPPreprocessor", images, STRINGS)
    assert np.abs(initial["image"] - theirs["image"]).max() > 1e-3

    # The run and its export side by side: one model, the same numbers.
    path = str(tmp_path / "zero_shot.json")
    result = run_tt(
        ["eval", "zero-shot", clip_run, out, "--data", tiny_val_shards, "--templates", "simple", "--json", path]
    )
    assert result.exit_code == 0, result.output
    with open(path) as f:
        trained, exported = json.load(f)["models"]
    assert (trained["step"], exported["mode"], exported["step"]) == (5, "clip", 0)
    for key in ("top1", "top5", "mean_per_class_recall"):
        assert trained[key] == pytest.approx(exported[key])


@pytest.mark.slow
def test_interpolation_ends_at_the_preset_and_the_trained_run(clip_run, tiny_clip_preset, tmp_path):
    """WiSE-FT: `--interpolate 0` is the preset's model (a SavedModel, tokenizer inside, against
    KerasHub's own), `1` the trained run, `0.5` the mean of their weights."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SavedModel's SentencePiece and byte-pair ops)

    from models.preset_model import load_preset_parts
    from tt_cli.run_dir import load_run

    images = raw_images()
    out = str(tmp_path / "sm_0")
    result = run_tt(["export", "savedmodel", clip_run, out, "--interpolate", "0"])
    assert result.exit_code == 0, result.output
    exported = tf.saved_model.load(out)
    initial = keras_hub_embeddings(tiny_clip_preset, "CLIPBackbone", "CLIPPreprocessor", images, STRINGS)
    np.testing.assert_allclose(exported.encode_image(tf.constant(images)).numpy(), initial["image"], atol=1e-5)
    np.testing.assert_allclose(exported.encode_text(tf.constant(STRINGS)).numpy(), initial["text"], atol=1e-5)

    runs = {alpha: load_run(clip_run, alpha) for alpha in (None, 0.5, 1.0)}
    assert runs[0.5].interpolate == 0.5 and runs[None].interpolate is None
    preset = load_preset_parts(tiny_clip_preset)
    for name in ("image_tower", "text_tower"):
        towers = {alpha: getattr(run.model, name).weights for alpha, run in runs.items()}
        moved = False
        for trained, start, half, end in zip(towers[None], getattr(preset, name).weights, towers[0.5], towers[1.0]):
            np.testing.assert_array_equal(end.numpy(), trained.numpy())
            if start.dtype.startswith("float"):
                np.testing.assert_allclose(half.numpy(), (start.numpy() + trained.numpy()) / 2, atol=1e-6)
                moved = moved or np.abs(start.numpy() - trained.numpy()).max() > 1e-4
        assert moved, name
    result = run_tt(["export", "savedmodel", clip_run, str(tmp_path / "bad"), "--interpolate", "1.5"])
    assert result.exit_code == 2 and "--interpolate" in result.output


@pytest.mark.slow
def test_siglip_lit_run(siglip_run, tiny_siglip_preset, tiny_val_shards, tmp_path):
    """LiT from SigLIP: the sigmoid loss and the preset's bias by default; the image side stays
    the preset's; the text side moves; the export is a SigLIPBackbone with tt's logits (bias in);
    `tt report` reads the run alone."""
    from tt_cli.run_dir import load_run

    with open(os.path.join(siglip_run, "run.json")) as f:
        record = json.load(f)
    assert record["resolved"]["loss"] == "sigmoid" and record["resolved"]["init"]["class"] == "SigLIPBackbone"
    images = raw_images()
    run = load_run(siglip_run)
    ours = tt_embeddings(run, images, STRINGS)
    initial = keras_hub_embeddings(tiny_siglip_preset, "SigLIPBackbone", "SigLIPPreprocessor", images, STRINGS)
    np.testing.assert_array_equal(ours["tokens"], initial["tokens"])
    np.testing.assert_allclose(ours["image"], initial["image"], atol=1e-5)  # locked
    assert np.abs(ours["text"] - initial["text"]).max() > 1e-3  # trained
    assert float(run.model.biases["image_text"].numpy()) != pytest.approx(-4.0, abs=1e-6)  # moved from the preset's

    out = str(tmp_path / "exported")
    result = run_tt(["export", "preset", siglip_run, out])
    assert result.exit_code == 0, result.output
    theirs = keras_hub_embeddings(out, "SigLIPBackbone", "SigLIPPreprocessor", images, STRINGS)
    for key in ("image", "text"):
        np.testing.assert_allclose(ours[key], theirs[key], atol=1e-5)
    np.testing.assert_allclose(ours["logits"], theirs["logits"], rtol=1e-5, atol=1e-5)

    report = str(tmp_path / "report.html")
    result = run_tt(["report", siglip_run, "--data", tiny_val_shards, "--templates", "simple", "--out", report])
    assert result.exit_code == 0, result.output
    assert "SigLIPBackbone" in open(report).read()


def test_preset_evaluated_as_it_is_equals_keras_hub(tiny_siglip_preset, tiny_shards):
    """Step 0 through tt's evaluation path (shards decoded and resized by the pipeline, prompts
    tokenized inside tf.data): zero-shot probabilities and logits are KerasHub's."""
    import tensorflow as tf

    from tt_cli.data import schema
    from tt_cli.eval import encode, zero_shot
    from tt_cli.run_dir import load_run

    run = load_run(tiny_siglip_preset)
    assert run.config["mode"] == "clip" and run.step == 0
    encoded = encode.encode_images(run.model, tiny_shards, batch_size=32, show_progress=False)
    class_names = schema.resolve_shards(tiny_shards)[1].class_names
    probabilities = zero_shot.zero_shot_probabilities(
        run.model, run.tokenizer, encoded, class_names, ["a {}."], show_progress=False
    )
    files, _ = schema.resolve_shards(tiny_shards)
    pixels = np.stack(
        [
            tf.io.decode_png(
                tf.train.Example.FromString(r.numpy()).features.feature["image"].bytes_list.value[0]
            ).numpy()
            for r in tf.data.TFRecordDataset(files)
        ]
    )
    theirs = keras_hub_embeddings(
        tiny_siglip_preset, "SigLIPBackbone", "SigLIPPreprocessor", pixels, [f"a {c}." for c in class_names]
    )
    z = theirs["logits"].astype(np.float64)
    softmax = np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    np.testing.assert_allclose(probabilities, softmax, atol=1e-5)
    np.testing.assert_allclose(encoded.embeddings, theirs["image"], atol=1e-5)


@pytest.mark.parametrize(
    "preset",
    ["clip_vit_base_patch16", "siglip2_base_patch16_224", "hf://google/siglip-base-patch16-224", "/no/such/preset"],
)
def test_init_presets_offline_fail_at_once(preset, tiny_shards, tmp_path):
    start = time.monotonic()
    result = run_tt(["train", "--data", tiny_shards, "--out", str(tmp_path / "run"), "--init", preset])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("Error: cannot load init preset") and "--init" in lines[-1], result.output
    assert time.monotonic() - start < 10


def test_init_refuses_what_the_preset_decides(tiny_shards, tiny_vit_preset, tiny_clip_preset, tmp_path):
    out = str(tmp_path / "run")
    result = run_tt(["train", "--data", tiny_shards, "--out", out, "--init", tiny_vit_preset])
    assert result.exit_code == 2 and "ViTBackbone is not an image-text backbone" in result.output
    for flag, value in (("--max-text-len", "8"), ("--vocab-size", "64"), ("--pooling", "gap")):
        result = run_tt(["train", "--data", tiny_shards, "--out", out, "--init", tiny_clip_preset, flag, value])
        assert result.exit_code == 2 and f"Error: {flag}" in result.output
    result = run_tt(["train", "--data", tiny_shards, "--out", out, "--pretrained", "init"])
    assert result.exit_code == 2 and "--init" in result.output
    result = run_tt(["train", "--init", tiny_clip_preset])
    assert result.exit_code == 2 and "--data" in result.output
    # tt eval reads CLIP, SigLIP and MetaCLIP 2 presets as they are; another preset is one line.
    result = run_tt(["eval", "zero-shot", tiny_vit_preset, "--data", tiny_shards])
    assert result.exit_code == 2 and "ViTBackbone is not an image-text backbone" in result.output
