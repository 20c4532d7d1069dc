"""The built-in demo: `tt train` with no --data, shrunk by a small --steps."""

import json
import os

import numpy as np
import pytest
from conftest import run_tt
from support.ranking_reference import distinct_inputs, recall_bounds, similarity_error

from tt_cli.demo.settings import DEMO, demo_settings
from tt_cli.training.config import TrainConfig

STEPS = 6


def test_demo_values_fill_defaults_and_user_flags_win():
    settings = demo_settings(TrainConfig(out=None))
    config = settings.config
    assert (config.out, config.scale, config.steps, config.batch_size) == (
        "runs/demo",
        "tiny",
        DEMO.steps,
        DEMO.batch_size,
    )
    assert (config.vocab_size, config.max_text_len, config.lr) == (DEMO.vocab_size, DEMO.max_text_len, DEMO.lr)
    assert (settings.num_train, settings.num_val, settings.pretrain_steps) == (
        DEMO.num_train,
        DEMO.num_val,
        DEMO.pretrain_steps,
    )
    mine = demo_settings(
        TrainConfig(out="x", scale="small", batch_size=32, mode="lit", lr=3e-4),
        explicit={"out", "scale", "batch_size", "mode", "lr"},
    ).config
    assert (mine.out, mine.scale, mine.batch_size, mine.mode, mine.lr) == ("x", "small", 32, "lit", 3e-4)
    assert demo_settings(TrainConfig(out="x", scale="small"), explicit={"out", "scale"}).image_size == 64


def test_a_smaller_steps_shrinks_the_whole_demo():
    full = demo_settings(TrainConfig(out=None))
    half = demo_settings(TrainConfig(out=None, steps=DEMO.steps // 2))
    assert half.num_train == DEMO.num_train // 2 and half.pretrain_steps == DEMO.pretrain_steps // 2
    tiny = demo_settings(TrainConfig(out=None, steps=STEPS))
    assert (tiny.num_train, tiny.num_val, tiny.num_pretrain, tiny.pretrain_steps) == (256, 64, 256, 4)
    assert tiny.config.val_every > STEPS  # no mid-run validation in a tiny demo
    assert full.config.val_every == DEMO.steps // 2


def test_final_table_puts_each_number_beside_chance(capsys):
    from tt_cli.demo.report import print_demo_table

    results = {"top1": 0.5, "top5": 0.9, "image_to_text_R@1": 0.1, "text_to_image_R@5": 0.25, "loss": 1.0}
    print_demo_table(results, num_classes=18, num_images=200, title="demo")
    lines = {
        line.split("│")[1].strip(): line.split("│")[2:5] for line in capsys.readouterr().out.splitlines() if "│" in line
    }
    # chance: 1/classes and 5/classes for zero-shot, k/images for Recall@k; metrics not in the table are left out
    assert [c.strip() for c in lines["zero-shot top-1"]] == ["0.500", "0.056", "9.0x"]
    assert [c.strip() for c in lines["zero-shot top-5"]] == ["0.900", "0.278", "3.2x"]
    assert [c.strip() for c in lines["image->text R@1"]] == ["0.100", "0.005", "20.0x"]
    assert [c.strip() for c in lines["text->image R@5"]] == ["0.250", "0.025", "10.0x"]
    assert set(lines) == {"zero-shot top-1", "zero-shot top-5", "image->text R@1", "text->image R@5"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("demo") / "run")
    cache = str(tmp_path_factory.mktemp("tt_cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TT_CACHE_DIR", cache)
        result = run_tt(["train", "--steps", str(STEPS), "--out", out])
        assert result.exit_code == 0, result.output
    return out, cache, result.output


@pytest.mark.slow
def test_demo_runs_pretrain_then_3t_and_prints_numbers_beside_chance(demo):
    out, cache, output = demo
    for row in ("zero-shot top-1", "image->text R@1", "text->image R@5", "chance"):
        assert row in output
    record = json.load(open(os.path.join(out, "run.json")))
    config = record["config"]
    assert (config["mode"], config["scale"], record["resolved"]["steps"], config["max_text_len"]) == (
        "3t",
        "tiny",
        STEPS,
        DEMO.max_text_len,
    )
    preset = record["resolved"]["third_towers"][0]["preset"]
    assert os.path.dirname(preset) == cache
    summary = json.load(open(os.path.join(preset, "tt_pretrain.json")))
    assert summary["steps"] == 4 and summary["num_classes"] == 18
    splits = sorted(os.listdir(os.path.join(out, "demo_data")))
    assert splits == ["pretrain-256-s3-32px", "train-256-s1-32px", "val-64-s2-32px"]
    results = json.load(open(os.path.join(out, "demo_results.json")))
    assert results["num_images"] == 64 and results["num_classes"] == 18
    assert all(0 <= results["results"][k] <= 1 for k in ("top1", "image_to_text_R@1", "text_to_image_R@5"))
    # The run's report, written at the end, and where it is said.
    report = os.path.join(out, "report.html")
    assert f"report: {report}" in " ".join(output.split())
    page = open(report, encoding="utf-8").read()
    for section in ("settings", "curves", "image-to-text", "text-to-image", "zero-shot"):
        assert f'<section id="{section}">' in page
    manifest = json.load(open(os.path.join(out, ".tt-manifest.json")))
    assert manifest["entries"]["report.html"]["command"] == "tt report"


@pytest.mark.slow
def test_a_flag_given_at_the_train_default_is_kept_by_the_demo(demo, tmp_path, monkeypatch):
    """`--batch-size 256` is also `tt train`'s default; given, it still wins over the demo's 64."""
    out, cache, _ = demo
    assert json.load(open(os.path.join(out, "run.json")))["config"]["batch_size"] == DEMO.batch_size  # the plain demo
    assert TrainConfig().batch_size == 256 != DEMO.batch_size
    mine = str(tmp_path / "run")
    monkeypatch.setenv("TT_CACHE_DIR", cache)  # the fixture's third tower: no pretraining here
    result = run_tt(["train", "--steps", "2", "--batch-size", "256", "--no-jit", "--out", mine])
    assert result.exit_code == 0, result.output
    config = json.load(open(os.path.join(mine, "run.json")))["config"]
    assert config["batch_size"] == 256
    assert config["scale"] == DEMO.scale  # flags not given still take the demo's values


@pytest.mark.slow
def test_second_use_of_the_tower_comes_from_the_cache(demo, monkeypatch):
    from tt_cli.demo.prepare import demo_tower

    out, cache, output = demo
    assert "making the demo's pretrained third tower" in output
    monkeypatch.setenv("TT_CACHE_DIR", cache)
    notes = []
    settings = demo_settings(TrainConfig(out=out, steps=STEPS))
    preset = demo_tower(settings, os.path.join(out, "demo_data"), notes.append)  # no pretraining: instant
    assert preset == json.load(open(os.path.join(out, "run.json")))["resolved"]["third_towers"][0]["preset"]
    assert notes == [f"third tower: {preset} (cached)"]


@pytest.mark.slow
def test_reported_numbers_match_numpy(demo):
    """Zero-shot top-1 and text->image R@1, recomputed here from the run's own embeddings.

    The run computed its embeddings in other batch shapes and kernels, so the
    reference bounds each number (`ranking_reference`) rather than matching last bits.
    """
    import tensorflow as tf

    from tt_cli.data import schema
    from tt_cli.demo.settings import DEMO_TEMPLATES
    from tt_cli.eval.encode import encode_images, encode_texts, eval_dataset
    from tt_cli.eval.zero_shot import class_embeddings
    from tt_cli.run_dir import load_run

    out = demo[0]
    run = load_run(out)
    reported = json.load(open(os.path.join(out, "demo_results.json")))["results"]
    files, info = schema.resolve_shards(os.path.join(out, "demo_data", "val-64-s2-32px"))
    batches = list(eval_dataset(files, run.model.image_size, batch_size=64))
    pixels = [image.tobytes() for b in batches for image in b["image"].numpy()]
    images = np.concatenate([run.model.encode_image(tf.cast(b["image"], tf.float32)).numpy() for b in batches])
    labels = np.concatenate([b["label"].numpy() for b in batches])
    captions = [[t.decode() for t in row if t] for b in batches for row in b["texts"].numpy()]
    # Identical images and identical captions share one embedding, as in the pipeline.
    pictures, image_id = distinct_inputs(pixels)
    images = images[[pixels.index(p) for p in pictures]][image_id]

    def embed(texts):
        distinct, text_id = distinct_inputs(texts)
        return run.model.encode_text(run.tokenizer.tokenize(tf.constant(distinct))).numpy()[text_id]

    prompts = embed([t.replace("{}", name) for name in info.class_names for t in DEMO_TEMPLATES])
    classes = prompts.reshape(len(info.class_names), len(DEMO_TEMPLATES), -1).mean(axis=1)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    pipeline_images = encode_images(run.model, files, show_progress=False).embeddings
    pipeline_classes = class_embeddings(run.model, run.tokenizer, info.class_names, DEMO_TEMPLATES, show_progress=False)
    error = similarity_error(pipeline_images, images, pipeline_classes, classes)
    correct = labels[:, None] == np.arange(len(info.class_names))[None, :]
    similarity = images.astype(np.float64) @ classes.astype(np.float64).T
    low, high = recall_bounds(similarity, correct, np.arange(len(info.class_names)), 1, error)
    assert low <= reported["top1"] <= high

    flat = [t for c in captions for t in c]
    owner = np.array([i for i, c in enumerate(captions) for _ in c])
    text = embed(flat)
    error = similarity_error(
        encode_texts(run.model, run.tokenizer, flat, show_progress=False), text, pipeline_images, images
    )
    similarity = text.astype(np.float64) @ images.astype(np.float64).T  # [captions, images]
    low, high = recall_bounds(similarity, owner[:, None] == np.arange(len(images))[None, :], image_id, 1, error)
    assert low <= reported["text_to_image_R@1"] <= high
