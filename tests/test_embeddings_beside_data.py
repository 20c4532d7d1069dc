"""Embedding folders (`tt data embed`) read beside the data by `tt train --embeddings`.

Training on a dataset plus its embedding folder gives the weights training on the
combined shards of earlier versions gives (same seed, `--deterministic`); a folder that
does not fit the data or the tower is one line. An embed killed mid-way and run again
writes the files an uninterrupted one writes; two replicas give the embeddings one
device gives.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY_TRAIN_FLAGS, run_tt
from support.combined_shards import write_combined
from test_file_safety import tree_state
from test_train_processes import ENV, TT, checkpoint_values

from tt_cli.data import schema


def assert_one_error(result, *words):
    lines = result.output.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def embed(shards, preset, out, *flags):
    result = run_tt(["data", "embed", str(shards), "--pretrained", preset, "--out", str(out), *flags])
    assert result.exit_code == 0, result.output
    return result


def train(data, out, preset, *flags):
    """Two steps of a tiny 3T run, checkpointed at the end (`ckpt-2`)."""
    tiny = list(TINY_TRAIN_FLAGS)
    tiny[tiny.index("--steps") + 1] = "2"
    return run_tt(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--mode",
            "3t",
            "--pretrained",
            preset,
            "--deterministic",
            *tiny,
            *flags,
        ]
    )


def read_records(path, dim):
    import tensorflow as tf

    spec = {"key": tf.io.FixedLenFeature([], tf.string), "h_embedding": tf.io.FixedLenFeature([dim], tf.float32)}
    parsed = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(path)]
    return [p["key"].numpy() for p in parsed], np.stack([p["h_embedding"].numpy() for p in parsed])


def data_keys(path):
    import tensorflow as tf

    from tt_cli.data.tf_schema import parse_example

    return [parse_example(r, (schema.KEY,))[schema.KEY].numpy() for r in tf.data.TFRecordDataset(path)]


def rewrite_reordered(path):
    """The same records, the first two swapped: an embedding shard of a reordered dataset."""
    import tensorflow as tf

    records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    records[0], records[1] = records[1], records[0]
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)


@pytest.mark.slow
def test_training_beside_embeddings_equals_combined_shards_and_misfits_are_one_line(
    tiny_shards, tiny_vit_preset, tmp_path
):
    h = tmp_path / "h"
    embed(tiny_shards, tiny_vit_preset, h)
    # Only what is new: keys and embeddings, in the data's record order.
    info = json.loads((h / "dataset.json").read_text())
    assert info["embeddings_of"] == {"dataset": os.path.abspath(tiny_shards), "num_examples": 96, "num_shards": 2}
    assert info["h_embedding"]["pretrained"] == tiny_vit_preset and info["h_embedding"]["dim"] == 16
    for name in info["shards"]:
        assert read_records(str(h / name), 16)[0] == data_keys(os.path.join(tiny_shards, name))

    combined = write_combined(tiny_shards, str(h), str(tmp_path / "combined"))
    assert train(combined, tmp_path / "run_combined", tiny_vit_preset).exit_code == 0
    # The same tower named differently (a relative path) is recognised as the embeddings' tower.
    result = train(tiny_shards, tmp_path / "run_beside", os.path.relpath(tiny_vit_preset), "--embeddings", str(h))
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "run_beside" / "run.json").read_text())
    (tower,) = run["resolved"]["third_towers"]
    assert (tower["source"], tower["folder"], tower["embedding_dim"]) == ("folder", str(h), 16)
    assert run["config"]["embeddings"] == [str(h)]
    a = checkpoint_values(str(tmp_path / "run_combined" / "checkpoints" / "ckpt-2"))
    b = checkpoint_values(str(tmp_path / "run_beside" / "checkpoints" / "ckpt-2"))
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)

    # An embedding folder of a reordered dataset: the first record's keys differ.
    reordered = tmp_path / "h_reordered"
    shutil.copytree(h, reordered)
    rewrite_reordered(str(reordered / "shard-00001-of-00002.tfrecord"))
    keys = read_records(str(h / "shard-00001-of-00002.tfrecord"), 16)[0]
    line = assert_one_error(
        train(tiny_shards, tmp_path / "run_bad", tiny_vit_preset, "--embeddings", str(reordered)),
        "shard-00001-of-00002.tfrecord record 0 has the key",
        keys[0].decode(),
        keys[1].decode(),
    )
    assert "made for other or reordered data" in line

    # An embedding shard that ends early is named with the record that has no partner.
    import tensorflow as tf

    from tt_cli.data.lockstep import mismatch_message, read_aligned

    first, short = os.path.join(tiny_shards, "shard-00000-of-00002.tfrecord"), str(tmp_path / "short.tfrecord")
    with tf.io.TFRecordWriter(short) as writer:
        for record in list(tf.data.TFRecordDataset(str(h / "shard-00000-of-00002.tfrecord")))[:47]:
            writer.write(record.numpy())
    try:
        list(read_aligned(tf.constant([first, short]), 1))
        raise AssertionError("a short embedding shard was read")
    except tf.errors.InvalidArgumentError as e:
        said = mismatch_message(e)
    assert said.startswith(f"{first} record 47 has the key ") and f"{short} has no record (the shard ends)" in said

    # Another dataset (one of the two shards), another tower, two folders for one tower, old
    # combined shards given as embeddings: each one line, before anything is trained.
    from models import PretrainedTower
    from tt_cli.data.third_towers import third_towers
    from tt_cli.errors import TtError

    tower = PretrainedTower.from_preset(tiny_vit_preset)
    files, data_info = schema.resolve_shards(tiny_shards)
    other_tower = tmp_path / "h_other_tower"
    shutil.copytree(h, other_tower)
    info["h_embedding"].update(pretrained="/elsewhere/vit", weights_sha256="0" * 32)  # other weights
    (other_tower / "dataset.json").write_text(json.dumps(info))
    for folders, towers, data, words in [
        ([h], [tower], (files[:1], None), ["other shards", "shard-00001-of-00002.tfrecord"]),
        ([h], [tower], (files, schema.DatasetInfo(num_examples=95, num_shards=2)), ["96 examples", "hold 95"]),
        ([other_tower], [tower], (files, data_info), ["/elsewhere/vit", tiny_vit_preset]),
        ([h, h], [tower], (files, data_info), ["2 embedding folders for 1 pretrained tower"]),
        ([h], [], (files, data_info), ["CLIP"]),
        ([combined], [tower], (files, data_info), ["train on them as the data"]),
        ([tmp_path / "nothing"], [tower], (files, data_info), ["no such folder"]),
    ]:
        try:
            third_towers(towers, [str(f) for f in folders], *data)
            raise AssertionError(f"accepted {folders}")
        except TtError as e:
            assert all(w in str(e) for w in words) and "\n" not in str(e), str(e)


@pytest.mark.slow
def test_embed_killed_and_rerun_writes_what_one_run_writes_and_two_replicas_match_one(tiny_vit_preset, tmp_path):
    from tt_cli.demo.shapes import write_demo_split

    shards = write_demo_split(str(tmp_path / "shards"), 24, seed=2, image_size=32, num_shards=12)
    two = tmp_path / "two_replicas"
    script = os.path.join(os.path.dirname(__file__), "support", "embed_two_replicas.py")
    replicas = subprocess.Popen(
        [sys.executable, script, shards, tiny_vit_preset, str(two), "2"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [TT, "data", "embed", shards, "--pretrained", tiny_vit_preset, "--out", str(killed), "--batch-size", "1"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    straight = tmp_path / "straight"
    embed(shards, tiny_vit_preset, straight, "--batch-size", "1")

    deadline = time.monotonic() + 240
    while not os.path.exists(killed / "shard-00000-of-00012.tfrecord"):
        assert process.poll() is None and time.monotonic() < deadline, "embed ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(killed / schema.DATASET_JSON)  # written last
    rerun = embed(shards, tiny_vit_preset, killed, "--batch-size", "1")
    finished = int(rerun.output.split(" already finished")[0].rsplit("(", 1)[1])
    assert 1 <= finished < 12, rerun.output
    assert tree_state(killed) == tree_state(straight)

    out, err = replicas.communicate(timeout=300)
    assert replicas.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["replicas"] == 2
    for name in schema.read_info(str(straight)).shards:
        keys_one, one = read_records(str(straight / name), 16)
        keys_two, two_devices = read_records(str(two / name), 16)
        assert keys_one == keys_two
        np.testing.assert_allclose(two_devices, one, rtol=1e-5, atol=1e-5)
