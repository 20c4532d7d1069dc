"""`tt train` through the CLI on tiny shards and a tiny preset."""

import json
import os
import shutil

import numpy as np
import pytest
from conftest import TINY_TRAIN_FLAGS, first_layout, run_tt

from tt_cli.checkpoints import RunCheckpoints


@pytest.mark.parametrize("mode", ["3t", "lit", "clip"])
def test_each_mode_writes_a_complete_run_directory(tiny_run, mode):
    run = tiny_run(mode)
    record = json.load(open(os.path.join(run, "run.json")))
    config, resolved = record["config"], record["resolved"]
    assert config["mode"] == mode and config["scale"] == "tiny" and resolved["steps"] == 4
    towers = [] if mode == "clip" else [{"index": 0, "preset": config["pretrained"][0], "embedding_dim": 16}]
    assert [{k: t[k] for k in ("index", "preset", "embedding_dim")} for t in resolved["third_towers"]] == towers
    assert all(t["source"] == "online" and t["image_size"] == [32, 32] for t in resolved["third_towers"])
    assert resolved["scale"]["image_size"] == 32 and record["dataset"]["num_examples"] == 96
    assert not {"mode", "scale", "steps", "max_text_len", "pretrained_towers"} & set(record)  # each setting once
    assert os.path.getsize(os.path.join(run, "tokenizer.model")) > 0
    assert os.path.exists(os.path.join(run, "checkpoints", "ckpt-4.index"))
    lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    assert [l["step"] for l in lines] == [2, 4]
    assert all(np.isfinite(l["loss"]) and l["lr"] >= 0 for l in lines)
    aux_terms = {"loss_image_pretrained", "loss_text_pretrained"} if mode == "3t" else set()
    expected_terms = {"loss_image_text"} | aux_terms
    assert expected_terms <= set(lines[-1])
    assert os.listdir(os.path.join(run, "logs"))  # TensorBoard events


def test_loaded_run_has_the_trained_weights(tiny_run):
    from tt_cli.run_dir import load_run

    run = load_run(tiny_run("clip"))
    assert run.step == 4
    tokens = run.tokenizer.tokenize(np.array(["a red circle"]))
    assert tokens.shape == (1, 12)
    embedding = np.asarray(run.model.encode_text(tokens))
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("mode", ["3t", "lit"])
def test_checkpoints_hold_every_weight_including_the_frozen_tower(tiny_run, tiny_vit_preset, mode):
    from models import PretrainedTower
    from tt_cli.run_dir import load_run

    first, second = load_run(tiny_run(mode)), load_run(tiny_run(mode))
    for a, b in zip(first.model.weights, second.model.weights):  # nothing left at random init
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    preset = PretrainedTower.from_preset(tiny_vit_preset)
    for a, b in zip(first.model.pretrained_tower.weights, preset.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_rerun_of_a_finished_run_resumes_and_does_nothing(tiny_run, tiny_shards, tiny_vit_preset):
    run = tiny_run("clip")
    before = open(os.path.join(run, "metrics.jsonl")).read()
    result = run_tt(["train", "--data", tiny_shards, "--out", run, "--mode", "clip", *TINY_TRAIN_FLAGS])
    assert result.exit_code == 0, result.output
    assert open(os.path.join(run, "metrics.jsonl")).read() == before


def test_resume_with_other_model_settings_is_refused(tiny_run, tiny_shards):
    run = tiny_run("clip")
    result = run_tt(
        ["train", "--data", tiny_shards, "--out", run, "--mode", "clip", *TINY_TRAIN_FLAGS, "--max-text-len", "20"]
    )
    assert result.exit_code != 0 and "--restart" in result.output


@pytest.mark.slow
def test_run_of_an_earlier_version_loads_and_resumes(tiny_run, tiny_shards, tmp_path):
    """A run.json of the first layout (which also recorded an `embed_dim`, never applied)
    still loads for evaluation, resumes, and trains on from its last checkpoint."""
    from tt_cli.run_dir import load_run

    run = str(tmp_path / "run")
    shutil.copytree(tiny_run("clip"), run)
    run_json = os.path.join(run, "run.json")
    recorded = json.load(open(run_json))
    old = first_layout(recorded)
    old["config"]["embed_dim"] = None
    json.dump(old, open(run_json, "w"))
    loaded = load_run(run)
    assert (loaded.config["mode"], loaded.record.image_size, loaded.record.resolved["steps"]) == ("clip", 32, 4)
    os.remove(os.path.join(run, ".tt-manifest.json"))  # those versions kept none (an edited run.json is not tt's)
    flags = [
        *TINY_TRAIN_FLAGS[: TINY_TRAIN_FLAGS.index("--steps")],
        "--steps",
        "6",
        *TINY_TRAIN_FLAGS[TINY_TRAIN_FLAGS.index("--steps") + 2 :],
    ]
    result = run_tt(["train", "--data", tiny_shards, "--out", run, "--mode", "clip", *flags])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output
    assert [json.loads(line)["step"] for line in open(os.path.join(run, "metrics.jsonl"))] == [2, 4, 6]
    rewritten = json.load(open(run_json))
    assert rewritten["format"] == 2 and "embed_dim" not in rewritten["config"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/shards"], "no such file"),
        (["--scale", "huge99"], "Invalid value for '--scale'"),
        (["--mode", "siglip"], "Invalid value for '--mode'"),
        (["--loss", "hinge"], "Invalid value for '--loss'"),
        (["--batch-size", "10", "--accum-steps", "4"], "pass --batch-size 8"),  # 10 rows do not split into 4
        (["--out", "/proc/tt-cannot-write"], "cannot write"),
    ],
)
def test_bad_input_gives_one_clear_line(tiny_shards, tmp_path, args, message):
    base = {"--data": tiny_shards, "--out": str(tmp_path / "run"), "--scale": "tiny", "--steps": "1"}
    overrides = dict(zip(args[::2], args[1::2]))
    flags = [x for k, v in {**base, **overrides}.items() for x in (k, v)]
    result = run_tt(
        ["train", *flags, "--mode", overrides.get("--mode", "clip")] if "--mode" not in overrides else ["train", *flags]
    )
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_empty_and_featureless_shards_are_refused(tmp_path):
    import tensorflow as tf

    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_tt(["train", "--data", str(empty), "--out", str(tmp_path / "r1"), "--mode", "clip", "--scale", "tiny"])
    assert result.exit_code != 0 and "dataset.json" in result.output

    no_texts = tmp_path / "no_texts.tfrecord"
    with tf.io.TFRecordWriter(str(no_texts)) as w:
        example = tf.train.Example(
            features=tf.train.Features(feature={"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))})
        )
        w.write(example.SerializeToString())
    result = run_tt(
        [
            "train",
            "--data",
            str(no_texts),
            "--out",
            str(tmp_path / "r2"),
            "--mode",
            "clip",
            "--scale",
            "tiny",
            "--steps",
            "1",
            "--tokenizer",
            "/no/such.model",
        ]
    )
    assert result.exit_code != 0
    assert "texts" in result.output or "tokenizer" in result.output


@pytest.mark.slow
def test_validation_numbers_are_logged(tiny_shards, tiny_val_shards, tmp_path):
    out = str(tmp_path / "run")
    flags = [f for f in TINY_TRAIN_FLAGS if f != "--no-jit"]  # this run trains with XLA, the default
    flags[flags.index("--steps") + 1] = "2"
    result = run_tt(
        [
            "train",
            "--data",
            tiny_shards,
            "--val-data",
            tiny_val_shards,
            "--out",
            out,
            "--mode",
            "clip",
            "--val-every",
            "2",
            *flags,
        ]
    )
    assert result.exit_code == 0, result.output
    assert json.load(open(os.path.join(out, "run.json")))["resolved"]["jit"] is True
    logged = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    validation = [l for l in logged if any(k.startswith("val/") for k in l)]
    assert validation and validation[0]["step"] == 2
    assert 0.0 <= validation[0]["val/top1"] <= 1.0
    assert any(k.startswith("val/") and "r@1" in k.lower() for k in validation[0])


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_shards, tmp_path):
    import tensorflow as tf

    out = str(tmp_path / "run")
    flags = list(TINY_TRAIN_FLAGS)
    flags[flags.index("--checkpoint-every") + 1] = "1"
    result = run_tt(
        [
            "train",
            "--data",
            tiny_shards,
            "--out",
            out,
            "--mode",
            "clip",
            *flags,
            "--lr",
            "1e38",
            "--warmup-steps",
            "0",
            "--grad-clip-norm",
            "0",
        ]
    )
    assert result.exit_code != 0
    assert "NaN" in result.output and "Traceback" not in result.output
    latest = RunCheckpoints(None, out).latest_checkpoint  # the run's own record, in its manifest
    assert latest is not None
    reader = tf.train.load_checkpoint(latest)
    for name, _ in tf.train.list_variables(latest):
        if name.startswith(("model/", "optimizer/_trainable")):
            assert np.all(np.isfinite(reader.get_tensor(name))), name
