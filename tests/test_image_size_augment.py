"""`--image-size` (tt train, bench, pretrain; read back by eval and export) and `--augment`
(random resized crops of the main image tower's input in the training pipeline)."""

import json
import os
import shutil

import numpy as np
import pytest
from conftest import TINY_TRAIN_FLAGS, run_tt


@pytest.mark.slow
def test_a_run_at_another_image_size_trains_evaluates_and_exports(
    tiny_shards, tiny_val_shards, tiny_vit_preset, tmp_path
):
    """3T at 48x48 (the tiny scale's own is 32; the frozen tower keeps its 32), augmented."""
    import tensorflow as tf

    from tt_cli.data.pipeline import resize
    from tt_cli.run_dir import load_run

    run_dir = str(tmp_path / "run48")
    result = run_tt(
        [
            "train",
            "--data",
            tiny_shards,
            "--out",
            run_dir,
            "--mode",
            "3t",
            "--pretrained",
            tiny_vit_preset,
            "--image-size",
            "48",
            "--augment",
            *TINY_TRAIN_FLAGS,
        ]
    )
    assert result.exit_code == 0, result.output
    recorded = json.load(open(os.path.join(run_dir, "run.json")))
    assert recorded["config"]["image_size"] == 48 and recorded["config"]["augment"] is True
    scale = recorded["resolved"]["scale"]
    assert scale["image_size"] == 48 and scale["patch_size"] == 8
    run = load_run(run_dir)
    assert run.model.image_size == (48, 48) and run.model.pretrained_tower.image_size == (32, 32)
    # 36 patches + the class token: the position embeddings follow the size.
    assert run.model.image_tower.backbone.get_layer("vit_patching_and_embedding").num_positions == 37

    evaluated = tmp_path / "retrieval.json"
    result = run_tt(["eval", "retrieval", run_dir, "--data", tiny_val_shards, "--json", str(evaluated)])
    assert result.exit_code == 0, result.output
    (model,) = json.loads(evaluated.read_text())["models"]
    assert model["step"] == 4 and 0 <= model["image_to_text_R@1"] <= 1

    exported = str(tmp_path / "savedmodel")
    result = run_tt(["export", "savedmodel", run_dir, exported])
    assert result.exit_code == 0, result.output
    assert "resized to 48x48" in " ".join(result.output.split())
    saved = tf.saved_model.load(exported)
    rng = np.random.default_rng(0)
    at_size = rng.integers(0, 256, (3, 48, 48, 3)).astype("uint8")
    other_size = rng.integers(0, 256, (3, 32, 40, 3)).astype("uint8")
    np.testing.assert_allclose(
        saved.encode_image(tf.constant(at_size)).numpy(), run.model.encode_image(at_size).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        saved.encode_image(tf.constant(other_size)).numpy(),
        run.model.encode_image(resize(other_size, (48, 48))).numpy(),
        atol=1e-5,
    )


@pytest.fixture(scope="module")
def pipeline_inputs(tiny_shards, tmp_path_factory):
    from tt_cli.data import schema
    from tt_cli.data.pipeline import read_captions
    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.data.tokenizer import train_sentencepiece

    files, _ = schema.resolve_shards(tiny_shards)
    path = str(tmp_path_factory.mktemp("tokenizer") / "tokenizer.model")
    train_sentencepiece(read_captions(files), path, 64)
    return files, TextTokenizer(path, max_len=12)


def batches(files, tokenizer, count, **kwargs):
    from tt_cli.data.pipeline import train_dataset
    from tt_cli.data.third_towers import ThirdTower

    tower = ThirdTower(index=0, preset="a tower at 32x32", embedding_dim=16, image_size=(32, 32))
    dataset = train_dataset(files, 8, (32, 32), tokenizer, third_towers=[tower], seed=3, shuffle_buffer=40, **kwargs)
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(count)]


def test_streams_resume_exactly_with_and_without_augment_and_crops_touch_only_the_main_tower(pipeline_inputs):
    files, tokenizer = pipeline_inputs
    augmented = batches(files, tokenizer, 5, augment=True)
    resumed = batches(files, tokenizer, 3, augment=True, start_step=2)
    for straight, again in zip(augmented[2:], resumed):
        for key in ("image", "h_image", "tokens"):
            np.testing.assert_array_equal(straight[key], again[key], err_msg=key)

    plain = batches(files, tokenizer, 5)
    for straight, again in zip(plain[2:], batches(files, tokenizer, 3, start_step=2)):
        for key in ("image", "h_image", "tokens"):
            np.testing.assert_array_equal(straight[key], again[key], err_msg=key)
    for crops, whole in zip(augmented, plain):
        # Same records, same captions: augmentation changes the main tower's pixels only.
        np.testing.assert_array_equal(crops["tokens"], whole["tokens"])
        np.testing.assert_array_equal(crops["h_image"], whole["image"])
        np.testing.assert_array_equal(whole["h_image"], whole["image"])
    # At 32x32 a crop of over ~97% of the area can round to the whole image; most do not.
    changed = [
        bool(np.any(a != b)) for crops, whole in zip(augmented, plain) for a, b in zip(crops["image"], whole["image"])
    ]
    assert sum(changed) > len(changed) / 2, changed


def test_crops_keep_openclips_area_and_aspect_ranges_and_depend_on_seed_and_position_only():
    import tensorflow as tf

    from tt_cli.data.pipeline import CROP_AREA, CROP_ASPECT, random_crop

    image = tf.zeros([240, 240, 3], tf.uint8)
    shapes = [tuple(random_crop(image, 0, tf.constant(p, tf.int64)).shape[:2]) for p in range(200)]
    areas = np.array([h * w / (240 * 240) for h, w in shapes])
    aspects = np.array([w / h for h, w in shapes])
    assert CROP_AREA == (0.9, 1.0) and CROP_ASPECT == (3 / 4, 4 / 3)
    assert areas.min() >= 0.9 - 0.01 and areas.max() <= 1.0
    assert aspects.min() >= 3 / 4 - 0.01 and aspects.max() <= 4 / 3 + 0.01
    assert len(set(shapes)) > 50  # the crop varies with the stream position
    again = [tuple(random_crop(image, 0, tf.constant(p, tf.int64)).shape[:2]) for p in range(200)]
    assert again == shapes
    other_seed = [tuple(random_crop(image, 1, tf.constant(p, tf.int64)).shape[:2]) for p in range(200)]
    assert other_seed != shapes
    # 300x200 has no crop of 90% of its area at an aspect in 3:4..4:3: it stays whole.
    tall = tf.zeros([300, 200, 3], tf.uint8)
    assert {tuple(random_crop(tall, 0, tf.constant(p, tf.int64)).shape[:2]) for p in range(20)} == {(300, 200)}


def test_augment_is_off_by_default_and_a_resume_keeps_it_and_the_image_size(tiny_run, tiny_shards, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(tiny_run("clip"), run)
    recorded = json.load(open(os.path.join(run, "run.json")))["config"]
    assert recorded["augment"] is False and recorded["image_size"] is None
    resume = ["train", "--data", tiny_shards, "--out", run, "--mode", "clip", *TINY_TRAIN_FLAGS]
    for extra, words in (
        (["--augment"], "--augment False, not True"),
        (["--image-size", "48"], "--image-size 32, not 48"),
    ):
        result = run_tt([*resume, *extra])
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and words in said and "--restart" in said, result.output
    # The scale's own size, given explicitly, is the size the run was trained at.
    result = run_tt([*resume, "--image-size", "32"])
    assert result.exit_code == 0 and "already finished" in " ".join(result.output.split()), result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["--mode", "lit", "--image-size", "48"], "LiT trains no image tower"),
        (["--mode", "lit", "--augment"], "LiT trains no image tower"),
        (["--mode", "clip", "--image-size", "50"], "multiple of the tiny scale's patch size 8 (e.g. 48 or 56)"),
    ],
)
def test_image_settings_a_run_cannot_use_are_one_line(tiny_shards, tmp_path, args, words):
    result = run_tt(["train", "--data", tiny_shards, "--out", str(tmp_path / "run"), *args, *TINY_TRAIN_FLAGS])
    assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output
    assert result.output.startswith("Error:") and result.output.count("Error:") == 1
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
