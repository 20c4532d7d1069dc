"""Every path of the TensorFlow commands on a non-local filesystem: TensorFlow's in-process
`ram://`, read and written through tf.io.gfile as gs:// is. Embed beside the data, train on
those embeddings, resume, eval, export, and tt's ownership rule on a remote folder.

ram:// is this process's memory: the CLI refuses it as an output (gone when `tt` exits), so
the outputs here are written through the library calls the commands make (Python keeps
ram://), and the inputs are read back through the CLI.

The same commands on local disk are the rest of the suite (test_train.py, including resuming
a killed run in test_train_processes.py; test_eval_cli.py; test_export.py), so this file runs
them on ram:// only: a local twin would repeat two training sessions (~35 s CPU) for no new path."""

import dataclasses
import json
import os
import uuid

import numpy as np
import pytest
from conftest import run_tt

from tt_cli import storage
from tt_cli.errors import ConflictError, InvalidValueError
from tt_cli.training.config import TrainConfig

TINY = dict(scale="tiny", batch_size=16, vocab_size=64, max_text_len=12, log_every=2, checkpoint_every=2, jit=False)


@pytest.fixture
def root():
    import tensorflow as tf

    url = f"ram://tt-test-{uuid.uuid4().hex[:8]}"
    yield url
    if tf.io.gfile.exists(url):
        tf.io.gfile.rmtree(url)


def _metrics_steps(run):
    with storage.open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(line)["step"] for line in f]


@pytest.mark.slow
def test_embed_train_resume_eval_export_with_every_path_on_ram(tiny_shards, tiny_vit_preset, root, tmp_path):
    import keras
    import tensorflow as tf

    import models  # noqa: F401  (registers tt's classes for load_model)
    from tt_cli.data.embed import embed_shards
    from tt_cli.export import from_run
    from tt_cli.run_dir import load_run
    from tt_cli.training.run import run_training

    data, run = os.path.join(root, "data"), os.path.join(root, "run")
    embeddings, tower = os.path.join(root, "embeddings"), os.path.join(root, "tower")
    storage.upload_tree(tiny_shards, data)
    storage.upload_tree(tiny_vit_preset, tower)
    embed_shards(data, tower, embeddings)
    assert sorted(storage.listdir(embeddings)) == sorted(
        [n for n in storage.listdir(data) if n.endswith(".tfrecord")]
        + [".embed-plan.json", ".tt-manifest.json", "dataset.json"]
    )

    # 3T reading its tower's embeddings beside the data: two steps, then the same settings
    # with 4 steps resume from the step-2 checkpoint.
    config = TrainConfig(data=data, embeddings=(embeddings,), out=run, mode="3t", pretrained=(tower,), **TINY)
    run_training(dataclasses.replace(config, steps=2))
    assert load_run(run).step == 2
    first_checkpoint = storage.read_bytes(os.path.join(run, "checkpoints", "ckpt-2.index"))
    run_training(dataclasses.replace(config, steps=4))
    loaded = load_run(run)
    assert loaded.step == 4 and _metrics_steps(run) == [2, 4]  # the second session logged only step 4
    assert storage.read_bytes(os.path.join(run, "checkpoints", "ckpt-2.index")) == first_checkpoint
    assert sorted(storage.listdir(run)) == sorted(
        [".tt-manifest.json", "checkpoints", "logs", "metrics.jsonl", "model.json", "run.json", "tokenizer.model"]
    )
    assert tf.io.gfile.glob(os.path.join(run, "logs", "*", "events.out.tfevents.*")) or tf.io.gfile.glob(
        os.path.join(run, "logs", "events.out.tfevents.*")
    )

    # The CLI reads the run and the data from ram:// (this process's memory), but writes no output there.
    eval_json = str(tmp_path / "zero-shot.json")
    result = run_tt(["eval", "zero-shot", run, "--data", data, "--templates", "simple", "--json", eval_json])
    assert result.exit_code == 0, result.output
    report = json.load(open(eval_json))
    assert report["task"] == "zero-shot" and report["num_examples"] == 96 and 0 <= report["models"][0]["top1"] <= 1
    for args in (["export", "keras", run, f"{root}/m.keras"], ["train", "--data", data, "--out", f"{root}/other"]):
        result = run_tt(args)
        assert result.exit_code == 2 and "gone when it exits" in result.output, result.output
        assert not storage.exists(args[-1])

    keras_out = os.path.join(root, "exports", "model.keras")
    from_run.keras(run, keras_out)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    np.testing.assert_allclose(
        keras.saving.load_model(keras_out).encode_image(images), loaded.model.encode_image(images), atol=1e-6
    )
    preset_out = os.path.join(root, "exports", "preset")
    from_run.preset(run, preset_out)
    assert {"config.json", "model.weights.h5", "tt", ".tt-manifest.json"} <= set(storage.listdir(preset_out))
    assert "tt.json" in storage.listdir(os.path.join(preset_out, "tt"))
    # Overwriting replaces tt's own preset and keeps what it did not write.
    with storage.open(os.path.join(preset_out, "notes.txt"), "w") as f:
        f.write("the user's own")
    with pytest.raises(ConflictError, match="notes.txt, which tt did not write"):
        from_run.preset(run, preset_out, overwrite=True)
    assert storage.read_bytes(os.path.join(preset_out, "notes.txt")) == b"the user's own"
    assert storage.isfile(os.path.join(preset_out, "config.json"))
    # An output inside an input is refused before anything is read, URLs compared as paths.
    with pytest.raises(ConflictError, match="lies inside the input"):
        from_run.savedmodel(run, f"{root}/./run/export")


def test_a_run_directory_holding_a_users_file_is_refused_on_a_remote_folder(tiny_shards, root):
    from tt_cli.demo.run import run_demo
    from tt_cli.training.run import run_training

    out = f"{root}/run"
    with storage.open(os.path.join(out, "metrics.jsonl"), "w") as f:
        f.write("mine\n")
    with pytest.raises(ConflictError, match="metrics.jsonl, which tt did not write"):
        run_training(TrainConfig(data=tiny_shards, out=out, mode="clip", restart=True, steps=2, **TINY))
    assert storage.read_bytes(os.path.join(out, "metrics.jsonl")) == b"mine\n"
    # The demo (no data) writes local folders: a URL out is refused, nothing written there.
    with pytest.raises(InvalidValueError, match="the demo writes its synthetic data on local disk"):
        run_demo(TrainConfig(out=f"{root}/demo"))
    assert not storage.exists(f"{root}/demo")
