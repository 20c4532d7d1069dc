"""Weak cases of issue #22 made one clear line: sizes no step can hold, URLs TensorFlow cannot
reach, outputs into tt's own memory, --lit-head outside LiT, a damaged cached demo tower.

Everything here is refused before a model is built (TensorFlow commands in this process,
TF-free ones in a `tt` subprocess), and leaves the user's files as they were.
"""

import importlib.util
import os
import shutil

import pytest
from conftest import run_tt
from support.data_corpus import run_tt as run_tt_process
from test_cli_errors import assert_one_clear_line
from test_file_safety import tree_state

from tt_cli.errors import ConflictError, InvalidValueError, TtError

TINY = ["--scale", "tiny", "--mode", "clip", "--no-jit", "--steps", "1", "--vocab-size", "64"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--vocab-size", "99999999999"], ["Invalid value for '--vocab-size'"]),
        (["--batch-size", "99999999999"], ["Invalid value for '--batch-size'"]),
        (["--max-text-len", "99999999999"], ["Invalid value for '--max-text-len'"]),
        # In range, but one tensor of a step alone is more than any machine here holds.
        (["--batch-size", "2000000000"], ["batch size 2000000000", "GiB, more than this machine's"]),
        (["--max-text-len", "1000000"], ["text length 1000000", "GiB, more than this machine's"]),
        (["--lit-head"], ["lit_head", "mode 3t"]),
    ],
)
def test_sizes_no_step_can_hold_are_refused_before_anything_is_built(tiny_shards, tmp_path, args, expected):
    out = tmp_path / "run"
    flags = [*TINY, *args]
    if "--lit-head" in args:
        flags[flags.index("clip")] = "3t"
    result = run_tt(["train", "--data", tiny_shards, "--out", str(out), *flags])
    assert_one_clear_line(result, *expected)
    assert not (out / "checkpoints").exists()


def test_bench_refuses_a_vocabulary_no_machine_holds():
    result = run_tt(["bench", "--scale", "tiny", "--modes", "clip", "--vocab-size", "2000000000", "--steps", "1"])
    assert_one_clear_line(result, "vocabulary size 2000000000")


def test_out_of_memory_is_one_line_naming_the_sizes():
    import tensorflow as tf

    from tt_cli.step_memory import out_of_memory_named

    with pytest.raises(InvalidValueError, match="out of memory with batch size 512, max text len 64") as e:
        with out_of_memory_named(batch_size=512, max_text_len=64):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[512,512]")
    assert "\n" not in str(e.value) and "OOM when allocating" in str(e.value)


@pytest.mark.parametrize(
    "data, expected",
    [
        ("s3://tt-test-bucket/shards", "TensorFlow has no filesystem for s3://"),
        ("memory://tt-test/shards", "TensorFlow has no filesystem for memory://"),
    ],
)
def test_urls_tensorflow_cannot_reach_are_one_line(tmp_path, data, expected):
    result = run_tt(["train", "--data", data, "--out", str(tmp_path / "run"), *TINY])
    assert_one_clear_line(result, data, expected)
    result = run_tt(["eval", "zero-shot", data, "--data", data])
    assert_one_clear_line(result, expected)


def test_a_store_tensorflow_cannot_reach_is_one_line():
    """gs:// without network or credentials fails in TensorFlow with an OpError (here made
    directly: the suite reaches no network)."""
    import tensorflow as tf

    from tt_cli import storage

    def unreachable():
        raise tf.errors.FailedPreconditionError(None, None, "Could not resolve host: www.googleapis.com\nmore")

    with pytest.raises(TtError, match=r"gs://b/shards: cannot reach it \(Could not resolve host") as e:
        storage._Gfile()._call("gs://b/shards", unreachable, query=True)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--data", "shards", "--out", "ram://run"],
        ["export", "savedmodel", "run", "ram://sm"],
        ["export", "keras", "run", "memory://m.keras"],
        ["export", "preset", "run", "ram://preset"],
        ["data", "embed", "shards", "--pretrained", "p", "--out", "ram://h"],
        ["pretrain", "--data", "shards", "--out", "ram://preset"],
        ["report", "run", "--out", "ram://report.html"],
        ["eval", "zero-shot", "run", "--data", "shards", "--json", "ram://zs.json"],
        ["eval", "retrieval", "run", "--data", "shards", "--report", "ram://r.html"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_an_output_in_tts_own_memory_is_refused(args):
    assert_one_clear_line(run_tt(args), "gone when it exits")


def test_tf_free_commands_refuse_an_output_in_their_own_memory(tmp_path):
    for args in (["convert", tmp_path / "x.csv", "memory://out"], ["tokenizer", tmp_path, "memory://tok.model"]):
        assert_one_clear_line(run_tt_process("data", *args, check=False), "gone when it exits")
    if importlib.util.find_spec("s3fs") is None:  # the extra that reaches s3:// is named, not gcs's
        assert_one_clear_line(run_tt_process("data", "inspect", "s3://tt-test/x", check=False), "pip install 'tt[s3]'")


def test_a_damaged_cached_demo_tower_is_refused_not_used_or_removed(tiny_vit_preset, tmp_path, monkeypatch):
    from tt_cli.demo import prepare
    from tt_cli.demo.settings import demo_settings
    from tt_cli.ownership import OutputFolder
    from tt_cli.pretrain import COMMAND
    from tt_cli.training.config import TrainConfig

    monkeypatch.setenv("TT_CACHE_DIR", str(tmp_path / "cache"))
    settings = demo_settings(TrainConfig(out=str(tmp_path / "demo"), steps=6))
    cached = tmp_path / "cache" / prepare._tower_name(settings)
    shutil.copytree(tiny_vit_preset, cached)
    OutputFolder(str(cached), COMMAND).record(sorted(os.listdir(cached)), created=True)  # as tt pretrain does
    notes = []
    assert prepare.demo_tower(settings, str(tmp_path / "demo" / "demo_data"), notes.append) == str(cached)
    assert notes == [f"third tower: {cached} (cached)"]

    weights = cached / "model.weights.h5"
    os.truncate(weights, os.path.getsize(weights) // 2)
    before = tree_state(str(tmp_path))
    with pytest.raises(ConflictError, match="model.weights.h5 changed since tt wrote it") as e:
        prepare.demo_tower(settings, str(tmp_path / "demo" / "demo_data"), notes.append)
    assert "delete that folder" in str(e.value) and "\n" not in str(e.value)
    assert tree_state(str(tmp_path)) == before  # nothing removed, nothing made
    result = run_tt(["train", "--steps", "6", "--out", str(tmp_path / "demo")])  # every later demo says the same
    assert_one_clear_line(result, "the demo's cached third tower is damaged")
