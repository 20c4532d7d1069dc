"""The shard format has one owner: both sides build the same bytes, and read the same captions.

`tt data convert` (TF-free, `tfrecord` package) runs in a subprocess; the
TensorFlow side (`tf_shards`, `pipeline`) runs here.
"""

import json
import os
import struct
import subprocess
import sys

import pytest
from support.data_corpus import ENV, good_rows, run_tt, write_jsonl


def _source(tmp_path, n=5):
    rows = good_rows(str(tmp_path / "src"), n=n)
    rows[1]["captions"].append("ünïcödé, 漢字 and an emoji 🐈")
    write_jsonl(tmp_path / "src" / "c.jsonl", rows)
    return tmp_path / "src" / "c.jsonl", rows


def _shard_bytes(directory):
    names = sorted(n for n in os.listdir(directory) if n.endswith(".tfrecord"))
    return {n: (directory / n).read_bytes() for n in names}


def test_convert_and_the_tensorflow_writer_write_the_same_shard(tmp_path):
    """One shard of the same rows, written by `tt data convert` (TF-free codec), by
    `tf_shards.write_shards` (TensorFlow builder) and by TensorFlow's own writer, is the same
    file byte for byte."""
    from tt_cli.data.tf_shards import write_shards

    source, rows = _source(tmp_path)
    run_tt("data", "convert", source, tmp_path / "converted", "--num-shards", 1, "--workers", 1)
    classes = sorted({r["label"] for r in rows})
    tf_rows = [
        {
            "image": (tmp_path / "src" / r["image"]).read_bytes(),
            "texts": r["captions"],
            "key": r["key"],
            "label": classes.index(r["label"]),
        }
        for r in rows
    ]
    write_shards(str(tmp_path / "tf"), tf_rows, num_shards=1, source="test")

    converted, written = _shard_bytes(tmp_path / "converted"), _shard_bytes(tmp_path / "tf")
    assert list(converted) == list(written) == ["shard-00000-of-00001.tfrecord"]
    assert len(converted["shard-00000-of-00001.tfrecord"]) > sum(len(r["image"]) for r in tf_rows)
    assert converted == written
    # tt's one framing (records.frame, which every shard writer of tt uses) is TensorFlow's own.
    import tensorflow as tf

    records = [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "tf" / "shard-00000-of-00001.tfrecord"))]
    with tf.io.TFRecordWriter(str(tmp_path / "by_tensorflow.tfrecord")) as writer:
        for record in records:
            writer.write(record)
    assert (tmp_path / "by_tensorflow.tfrecord").read_bytes() == written["shard-00000-of-00001.tfrecord"]


def test_convert_writes_the_same_bytes_every_run(tmp_path):
    """Protobuf orders map entries differently in each process unless asked not to; the
    schema serializes deterministically, so converting one source twice gives equal shards."""
    source, _ = _source(tmp_path, n=6)
    for out in ("a", "b"):
        run_tt("data", "convert", source, tmp_path / out, "--num-shards", 2, "--workers", 2)
    first, second = _shard_bytes(tmp_path / "a"), _shard_bytes(tmp_path / "b")
    assert len(first) == 2 and first == second


def _tf_free_captions(files, limit, data):
    """`shard_reader.read_captions` in a subprocess (the `tfrecord` package cannot load next to TensorFlow)."""
    script = (
        "import json, sys\nfrom tt_cli.errors import TtError\n"
        "from tt_cli.commands.cli_group import message_for_command_line\n"
        "from tt_cli.data.shard_reader import read_captions\n"
        "files, limit, data = json.loads(sys.argv[1])\n"
        "try:\n    print(json.dumps(list(read_captions(files, limit=limit, data=data))))\n"
        "except TtError as e:\n    print(json.dumps([str(e), message_for_command_line(e)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps([files, limit, data])],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    )
    assert "tensorflow" not in result.stderr.lower()
    return json.loads(result.stdout)


def _tf_captions(files, limit, data):
    from tt_cli.commands.cli_group import message_for_command_line
    from tt_cli.data.pipeline import read_captions
    from tt_cli.errors import TtError

    try:
        return list(read_captions(files, limit=limit, data=data))
    except TtError as e:
        return [str(e), message_for_command_line(e)]


def test_both_read_captions_return_the_same_captions(tmp_path):
    from tt_cli.data import schema

    source, rows = _source(tmp_path, n=6)
    run_tt("data", "convert", source, tmp_path / "shards", "--num-shards", 2, "--workers", 1)
    files, _ = schema.resolve_shards(str(tmp_path / "shards"))
    every = sorted(c for r in rows for c in r["captions"])
    assert len(every) == 10
    for read in (_tf_free_captions, _tf_captions):
        assert sorted(read(files, None, "shards")) == every
        limited = read(files, 4, "shards")  # the tensorflow side reads files in parallel: any 4 of them
        assert len(limited) == 4 and set(limited) <= set(every)


@pytest.mark.parametrize("damage", ["garbage_length", "truncated"])
def test_both_read_captions_name_a_corrupt_shard_in_the_same_words(tmp_path, damage):
    from tt_cli.data import schema

    source, _ = _source(tmp_path, n=2)
    run_tt("data", "convert", source, tmp_path / "shards", "--num-shards", 1, "--workers", 1)
    files, _ = schema.resolve_shards(str(tmp_path / "shards"))
    with open(files[0], "r+b") as f:
        if damage == "garbage_length":  # a first record of 16 TB, its length CRC no longer matching
            f.write(struct.pack("<Q", 1 << 44))
        else:  # the file ends inside the first record's data
            f.truncate(200)
    tf_free, tf_side = _tf_free_captions(files, None, "DATA"), _tf_captions(files, None, "DATA")
    python, command_line = tf_free
    assert python.startswith(f"{files[0]}: corrupt record at byte offset 0: ")
    assert python.endswith("; tt_cli.data.inspect.inspect_shards('DATA', verify=True) checks every shard.")
    assert "--" not in python and command_line.startswith(f"{files[0]}: corrupt record at byte offset 0: ")
    assert command_line.endswith("; run `tt data inspect --verify DATA` to check every shard.")
    assert tf_side == tf_free
