"""`tt pretrain`: a ViT classifier on labelled shards -> a KerasHub preset for --pretrained,
trained on `tt train`'s loop (checkpoints, resume, metrics.jsonl)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import run_tt

NUM_CLASSES = 18  # the demo shapes' (colour, shape) classes
STEPS = 60
TT = shutil.which("tt") or os.path.join(os.path.dirname(sys.executable), "tt")
ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1"}


def pretrain_args(train, val, out):
    """The command of the `preset` fixture: bit-reproducible, a checkpoint every 20 steps."""
    return [
        "pretrain",
        "--data",
        train,
        "--val-data",
        val,
        "--out",
        out,
        "--scale",
        "tiny",
        "--steps",
        str(STEPS),
        "--batch-size",
        "32",
        "--lr",
        "2e-3",
        "--log-every",
        "20",
        "--checkpoint-every",
        "20",
        "--deterministic",
        "--no-jit",
    ]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    from tt_cli.demo.shapes import write_demo_split

    train = write_demo_split(str(tmp_path_factory.mktemp("labelled")), 480, seed=11, image_size=32, num_shards=2)
    val = write_demo_split(str(tmp_path_factory.mktemp("labelled_val")), 160, seed=12, image_size=32, num_shards=1)
    return train, val


@pytest.fixture(scope="module")
def preset(labelled, tmp_path_factory):
    train, val = labelled
    out = str(tmp_path_factory.mktemp("pretrained") / "preset")
    result = run_tt(pretrain_args(train, val, out))
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output
    return out


def test_preset_is_a_third_tower_with_the_training_preprocessing(preset):
    from models import PretrainedTower, get_scale

    tower = PretrainedTower.from_preset(preset)
    assert tower.output_dim == get_scale("tiny").width == 64
    assert tower.image_size == (32, 32)
    assert tower.preprocessing["scale"] == pytest.approx([1 / 127.5])
    assert tower.preprocessing["offset"] == pytest.approx([-1.0])
    features = np.asarray(tower(np.zeros((2, 32, 32, 3), "uint8")))
    assert features.shape == (2, 64) and np.isfinite(features).all()


def test_summary_records_command_classes_and_accuracies(preset):
    from tt_cli.demo.shapes import CLASS_NAMES

    summary = json.load(open(os.path.join(preset, "tt_pretrain.json")))
    assert summary["class_names"] == CLASS_NAMES and summary["num_classes"] == NUM_CLASSES
    assert summary["steps"] == STEPS and summary["chance"] == pytest.approx(1 / NUM_CLASSES)
    assert 0 <= summary["train_accuracy"] <= 1
    assert (summary["strategy"], summary["replicas"]) == ("DefaultDistributionStrategy", 1)


def test_training_curve_is_kept_and_checkpoints_are_not(preset):
    """metrics.jsonl as tt train writes it (images/s for pairs/s); the checkpoints, which a
    finished preset no longer needs, are gone; everything left is listed as tt's."""
    logged = [json.loads(line) for line in open(os.path.join(preset, "metrics.jsonl"))]
    assert [line["step"] for line in logged] == [20, 40, 60]
    assert {"loss", "accuracy", "lr", "images_per_second"} <= set(logged[-1])
    assert not os.path.exists(os.path.join(preset, "checkpoints"))
    manifest = json.load(open(os.path.join(preset, ".tt-manifest.json")))
    assert {name for name in manifest["entries"] if "/" not in name} == set(os.listdir(preset)) - {".tt-manifest.json"}
    assert all(os.path.exists(os.path.join(preset, name)) for name in manifest["entries"])
    # Each file stamped, so that --overwrite may prove it tt's and replace it.
    files = [name for name in manifest["entries"] if os.path.isfile(os.path.join(preset, name))]
    assert files and all("sha256" in manifest["entries"][name] for name in files)


def checkpoint_listed(out, step):
    """True once the checkpoint of `step` is complete: recorded in the run's manifest (after
    its files are written; the manifest is replaced whole), as tt train's are."""
    from tt_cli.pretrain.output import run_checkpoints

    return step in run_checkpoints(out).steps()


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(labelled, preset, tmp_path):
    """The fixture's command run again in a process killed with SIGKILL after its checkpoint
    at step 20, then once more: it resumes there and ends with the same preset weights,
    bit for bit (`--deterministic`)."""
    import keras_hub

    out = str(tmp_path / "killed")
    command = [TT, *pretrain_args(*labelled, out)]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not checkpoint_listed(out, 20):
        assert process.poll() is None and time.monotonic() < deadline, "run ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(out, "tt_pretrain.json")), "killed too late to test a resume"

    resumed = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr
    straight = keras_hub.models.ImageClassifier.from_preset(preset).get_weights()
    again = keras_hub.models.ImageClassifier.from_preset(out).get_weights()
    assert len(straight) == len(again) > 10
    for a, b in zip(straight, again):
        np.testing.assert_array_equal(a, b)
    logged = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert logged[-1]["step"] == STEPS


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_stops(labelled, tmp_path):
    """tt train's stop handling: SIGTERM ends the run between steps with a checkpoint, listed
    in the manifest, and one line saying how to resume."""
    out = str(tmp_path / "stopped")
    args = pretrain_args(*labelled, out)
    args[args.index("--steps") + 1] = args[args.index("--checkpoint-every") + 1] = "100000"
    args[args.index("--log-every") + 1] = "1"
    process = subprocess.Popen([TT, *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = os.path.join(out, "metrics.jsonl")
    deadline = time.monotonic() + 240
    while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
        assert process.poll() is None and time.monotonic() < deadline, "pretraining did not start"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "stopped by signal" in err and "Run the same command again" in err and "Traceback" not in err
    from tt_cli.pretrain.output import run_checkpoints

    steps = run_checkpoints(out).steps()
    assert steps and steps[0] >= 1 and not os.path.exists(os.path.join(out, "tt_pretrain.json"))


def test_a_run_with_other_settings_does_not_resume(labelled, tmp_path):
    """An unfinished run's checkpoints are resumed only by the settings that made them."""
    from tt_cli.errors import ConflictError
    from tt_cli.pretrain import output
    from tt_cli.pretrain.config import PretrainConfig

    config = PretrainConfig(data=labelled[0], out=str(tmp_path / "out"), scale="tiny", batch_size=32)
    data, classes = {"sha256": "abc"}, ["a", "b"]
    folder = output.check_out(config)
    output.claim_out(folder, config)
    output.write_settings(folder, config, data, classes, 0.1)
    assert output.SETTINGS in folder.listed()  # tt's, so that finishing may remove it
    output.check_resume_matches(config, data, classes, 0.1)
    with pytest.raises(ConflictError, match="batch_size 32, not 16"):
        output.check_resume_matches(PretrainConfig(**{**config.to_json(), "batch_size": 16}), data, classes, 0.1)
    with pytest.raises(ConflictError, match="other shards"):
        output.check_resume_matches(config, {"sha256": "def"}, classes, 0.1)


def test_classifier_learned_and_reported_accuracy_matches_numpy(preset, labelled):
    """The saved classifier, scored here with NumPy on the --val-data split, matches the
    reported held-out accuracy and is well above chance after 60 steps."""
    import keras_hub
    import tensorflow as tf

    from tt_cli.data import shard_files
    from tt_cli.pretrain import labelled_dataset

    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    files, _ = shard_files.resolve_shards(labelled[1])
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in labelled_dataset(files, (32, 32), 64, training=False)])
    images, labels = np.concatenate(images), np.concatenate(labels)
    assert len(labels) == 160
    logits = np.asarray(classifier.predict(tf.constant(images), verbose=0))
    accuracy = float(np.mean(logits.argmax(axis=1) == labels))
    summary = json.load(open(os.path.join(preset, "tt_pretrain.json")))
    # The run scored these images in other batch shapes, whose logits may differ in the last
    # bits: a row whose two best logits are that close may be classified either way there.
    best_two = np.sort(logits, axis=1)[:, -2:]
    near_tie = best_two[:, 1] - best_two[:, 0] <= 1e-4 * np.maximum(np.abs(best_two).max(axis=1), 1.0)
    assert abs(accuracy - summary["heldout_accuracy"]) <= np.sum(near_tie) / len(labels) + 1e-12
    assert accuracy > 2.5 / NUM_CLASSES


def test_holdout_split_is_disjoint_and_covers_the_set(labelled):
    from tt_cli.data import shard_files
    from tt_cli.pretrain import labelled_dataset

    files, _ = shard_files.resolve_shards(labelled[0])

    def count(**kwargs):
        return sum(len(y) for _, y in labelled_dataset(files, (8, 8), 64, training=False, **kwargs))

    held, kept = count(holdout=0.1, heldout=True), count(holdout=0.1, heldout=False)
    assert held + kept == count() == 480
    assert 20 <= held <= 80  # about 10%


def test_unlabelled_shards_are_refused(tmp_path):
    from tt_cli.data.tf_shards import write_shards
    from tt_cli.demo.shapes import shape_rows

    rows = [{k: v for k, v in row.items() if k != "label"} for row in shape_rows(4, seed=0, image_size=16)]
    data = write_shards(str(tmp_path / "unlabelled"), rows, num_shards=1, source="test")
    result = run_tt(["pretrain", "--data", data, "--out", str(tmp_path / "out"), "--scale", "tiny", "--steps", "1"])
    assert result.exit_code == 2 and "labelled" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/shards"], "no such file"),
        (["--scale", "huge99"], "Invalid value for '--scale'"),
        (["--holdout", "1.5"], "--holdout"),
        (["--strategy", "nonsense"], "unknown strategy 'nonsense'"),
    ],
)
def test_bad_input_gives_one_clear_line(labelled, tmp_path, args, message):
    base = {"--data": labelled[0], "--out": str(tmp_path / "out"), "--steps": "1"}
    base.update(dict(zip(args[::2], args[1::2])))
    result = run_tt(["pretrain", *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_non_empty_out_needs_overwrite(labelled, preset):
    result = run_tt(["pretrain", "--data", labelled[0], "--out", preset, "--scale", "tiny", "--steps", "1"])
    assert result.exit_code == 2 and "--overwrite" in result.output
