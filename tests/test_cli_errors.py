"""Bad input gets one clear line on stderr and exit code 2, never a traceback or exit 0.

Numbers out of their domain on every command, corrupt shards (named, with the advice
to verify the others with `tt data inspect`), damaged run directories, resuming a run with other
data, tokenizer or batch size, and `tt bench` with missing inputs. The TF-free `tt data`
commands run as `tt` subprocesses (the `tfrecord` package cannot share a process with
TensorFlow); the others run in this process.
"""

import os
import shutil
import struct

import click
import crc32c
import pytest
from conftest import TINY_TRAIN_FLAGS, run_tt
from support.data_corpus import run_tt as run_tt_process

CORRUPT_SHARD = "shard-00001-of-00002.tfrecord"  # the second shard of `tiny_shards`


def assert_one_clear_line(result, *expected, exit_code=2):
    """`result` is a Click result or a finished subprocess."""
    code = getattr(result, "exit_code", getattr(result, "returncode", None))
    everything = result.output if hasattr(result, "output") else result.stdout + result.stderr
    assert code == exit_code, everything[-2000:]
    assert "Traceback" not in everything
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    for text in expected:
        assert text in error_lines[0], error_lines[0]


# --- numbers out of range: Click refuses them while parsing, naming the flag --------------------

# (command words, the other arguments it needs, flag, value out of its domain)
OUT_OF_RANGE = [
    *[
        (["train"], ["--data", "x"], flag, value)
        for flag, value in [
            ("--steps", "-5"),
            ("--steps", "0"),
            ("--batch-size", "0"),
            ("--epochs", "0"),
            ("--lr", "0"),
            ("--lr", "nan"),
            ("--warmup-steps", "-1"),
            ("--weight-decay", "-0.1"),
            ("--grad-clip-norm", "-1"),
            ("--aux-weight", "-1"),
            ("--max-text-len", "1"),
            ("--vocab-size", "3"),
            ("--seed", "-1"),
            ("--log-every", "0"),
            ("--checkpoint-every", "0"),
            ("--val-every", "0"),
        ]
    ],
    *[
        (["pretrain"], ["--data", "x", "--out", "y"], flag, value)
        for flag, value in [
            ("--steps", "0"),
            ("--epochs", "inf"),
            ("--batch-size", "0"),
            ("--lr", "-1"),
            ("--warmup-steps", "-1"),
            ("--weight-decay", "-1"),
            ("--holdout", "1"),
            ("--seed", "-1"),
            ("--log-every", "0"),
        ]
    ],
    *[
        (["bench"], [], flag, value)
        for flag, value in [
            ("--batch-size", "0"),
            ("--steps", "0"),
            ("--warmup", "0"),
            ("--max-text-len", "1"),
            ("--vocab-size", "0"),
            ("--pipeline-batches", "0"),
        ]
    ],
    (["eval", "zero-shot"], ["run", "--data", "x"], "--batch-size", "0"),
    (["eval", "retrieval"], ["run", "--data", "x"], "--batch-size", "0"),
    (["eval", "fewshot"], ["run", "--train-data", "x", "--data", "x"], "--batch-size", "0"),
    (["eval", "fewshot"], ["run", "--train-data", "x", "--data", "x"], "--seeds", "0"),
    (["data", "embed"], ["x", "--pretrained", "p", "--out", "o"], "--batch-size", "0"),
]
# The TF-free commands, run as subprocesses.
OUT_OF_RANGE_TF_FREE = [
    (["data", "convert"], ["x.csv", "out"], "--num-shards", "0"),
    (["data", "convert"], ["x.csv", "out"], "--workers", "0"),
    (["data", "convert"], ["x.csv", "out"], "--max-size", "0"),
    (["data", "tokenizer"], ["x", "tok.model"], "--vocab-size", "0"),
    (["data", "inspect"], ["x"], "--samples", "-1"),
]


def case_id(value):
    return " ".join(value) if isinstance(value, list) else value


@pytest.mark.parametrize("command, args, flag, value", OUT_OF_RANGE, ids=case_id)
def test_numbers_out_of_range_are_refused(command, args, flag, value):
    result = run_tt([*command, *args, flag, value])
    assert_one_clear_line(result, f"Invalid value for '{flag}'", value)


@pytest.mark.parametrize("command, args, flag, value", OUT_OF_RANGE_TF_FREE, ids=case_id)
def test_numbers_out_of_range_are_refused_by_tf_free_commands(tmp_path, command, args, flag, value):
    result = run_tt_process(*command, *[tmp_path / a for a in args], flag, value, check=False)
    assert_one_clear_line(result, f"Invalid value for '{flag}'", value)


# --- corrupt shards -----------------------------------------------------------------------------


def record_offsets(path):
    """(offset, data length) of every record, read independently of tt's reader."""
    data, offsets, offset = open(path, "rb").read(), [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        offsets.append((offset, length))
        offset += 16 + length
    return offsets


def masked_crc(data):
    crc = crc32c.crc32c(data)
    return struct.pack("<I", ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF)


def corrupt_copy(shards, directory, kind):
    """A copy of the shards whose second shard is damaged in its middle record;
    returns (dataset directory, damaged file, offset of the damaged record)."""
    shutil.copytree(shards, directory)
    path = os.path.join(directory, CORRUPT_SHARD)
    data = bytearray(open(path, "rb").read())
    records = record_offsets(path)
    offset, _ = records[len(records) // 2]
    if kind == "flipped":  # the start of the Example proto: both the CRC and the proto are broken
        data[offset + 12 : offset + 20] = bytes(b ^ 0xFF for b in data[offset + 12 : offset + 20])
    elif kind == "garbage_length":  # a length of 16 TB that its CRC does not match
        data[offset : offset + 8] = struct.pack("<Q", 1 << 44)
    elif kind == "huge_length":  # a length of 16 TB with a matching CRC: only its size gives it away
        length = struct.pack("<Q", 1 << 44)
        data[offset : offset + 12] = length + masked_crc(length)
    open(path, "wb").write(bytes(data))
    return directory, path, offset


@pytest.mark.parametrize("kind", ["flipped", "garbage_length", "huge_length"])
@pytest.mark.parametrize("command", ["inspect", "tokenizer"])
def test_corrupt_shard_is_named_by_tf_free_commands(tiny_shards, tmp_path, command, kind):
    data, path, offset = corrupt_copy(tiny_shards, str(tmp_path / "shards"), kind)
    args = ["data", command, data]
    if command == "tokenizer":
        args += [str(tmp_path / "tok.model"), "--vocab-size", "64"]
    result = run_tt_process(*args, check=False)
    advice = "tt data inspect --verify" if command == "inspect" else "to check every shard"
    assert_one_clear_line(result, path, f"offset {offset}", advice)
    assert not os.path.exists(tmp_path / "tok.model")


def test_corrupt_shard_is_named_when_training_the_tokenizer(tiny_shards, tmp_path):
    data, path, offset = corrupt_copy(tiny_shards, str(tmp_path / "shards"), "flipped")
    result = run_tt(["train", "--data", data, "--out", str(tmp_path / "run"), "--mode", "clip", *TINY_TRAIN_FLAGS])
    assert_one_clear_line(result, path, f"offset {offset}", "to check every shard")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "pretrain"])
def test_corrupt_shard_is_named_by_eval_and_pretrain(tiny_run, tiny_shards, tmp_path, command):
    data, path, offset = corrupt_copy(tiny_shards, str(tmp_path / "shards"), "garbage_length")
    args = (
        ["eval", "retrieval", tiny_run("clip"), "--data", data]
        if command == "eval"
        else [
            "pretrain",
            "--data",
            data,
            "--out",
            str(tmp_path / "preset"),
            "--scale",
            "tiny",
            "--steps",
            "2",
            "--batch-size",
            "16",
        ]
    )
    assert_one_clear_line(run_tt(args), path, f"offset {offset}", "to check every shard")


def copy_run(run, directory):
    shutil.copytree(run, directory)
    return str(directory)


@pytest.mark.slow
def test_corrupt_shard_met_during_training_is_named_and_the_checkpoint_kept(tiny_run, tiny_shards, tmp_path):
    # The run resumes at step 4 (the damaged copy keeps every shard's name and size) and
    # meets the bad record in the input pipeline, inside the training loop.
    run = copy_run(tiny_run("clip"), tmp_path / "run")
    data, path, offset = corrupt_copy(tiny_shards, str(tmp_path / "shards"), "flipped")
    flags = list(TINY_TRAIN_FLAGS)
    flags[flags.index("--steps") + 1] = "8"
    result = run_tt(["train", "--data", data, "--out", run, "--mode", "clip", *flags])
    assert_one_clear_line(
        result,
        path,
        f"offset {offset}",
        "to check every shard",
        "training stopped after step 4",
        "ckpt-4",
    )
    assert sorted(f for f in os.listdir(os.path.join(run, "checkpoints")) if f.endswith(".index")) == [
        "ckpt-2.index",
        "ckpt-4.index",
    ]


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such file"), (b"", "not a SentencePiece model"), (b"not a model", "not a SentencePiece model")],
)
def test_train_refuses_a_missing_or_unreadable_tokenizer(tiny_shards, tmp_path, content, message):
    tokenizer = tmp_path / "tok.model"
    if content is not None:
        tokenizer.write_bytes(content)
    result = run_tt(
        [
            "train",
            "--data",
            tiny_shards,
            "--out",
            str(tmp_path / "run"),
            "--mode",
            "clip",
            *TINY_TRAIN_FLAGS,
            "--tokenizer",
            str(tokenizer),
        ]
    )
    assert_one_clear_line(result, f"--tokenizer {tokenizer}", message)


# --- damaged run directories --------------------------------------------------------------------


@pytest.mark.parametrize(
    "damaged, named",
    [
        ("checkpoints/ckpt-4.data-00000-of-00001", "ckpt-4"),
        ("model.json", "model.json"),
    ],
)
@pytest.mark.parametrize("command", ["eval", "export"])
def test_damaged_run_gives_one_line_naming_the_file(tiny_run, tiny_shards, tmp_path, command, damaged, named):
    run = copy_run(tiny_run("clip"), tmp_path / "run")
    path = os.path.join(run, damaged)
    os.truncate(path, os.path.getsize(path) // 2)
    args = (
        ["eval", "retrieval", run, "--data", tiny_shards]
        if command == "eval"
        else ["export", "keras", run, str(tmp_path / "model.keras")]
    )
    assert_one_clear_line(run_tt(args), named)
    assert not os.path.exists(tmp_path / "model.keras")


# --- resuming with other settings ---------------------------------------------------------------


def resume_args(run, data, *extra):
    return ["train", "--data", data, "--out", run, "--mode", "clip", *TINY_TRAIN_FLAGS, *extra]


@pytest.mark.parametrize("change", ["--batch-size", "--tokenizer", "--data"])
def test_resume_with_other_data_tokenizer_or_batch_size_is_refused(
    tiny_run, tiny_shards, tiny_val_shards, tmp_path, change
):
    from tt_cli.data.tokenizer import train_sentencepiece

    run = tiny_run("clip")
    before = open(os.path.join(run, "run.json")).read()
    data, extra = tiny_shards, []
    if change == "--batch-size":
        extra = ["--batch-size", "8"]
    elif change == "--tokenizer":
        other = str(tmp_path / "other.model")
        train_sentencepiece([f"a photo of shape {i}" for i in range(50)], other, 24)
        extra = ["--tokenizer", other]
    else:
        data = tiny_val_shards
    result = run_tt(resume_args(run, data, *extra))
    assert_one_clear_line(result, run, change, "--restart")
    assert open(os.path.join(run, "run.json")).read() == before


@pytest.mark.slow
def test_resume_with_the_same_settings_and_moved_data_continues(tiny_run, tiny_shards, tmp_path):
    run = copy_run(tiny_run("clip"), tmp_path / "run")
    moved = shutil.copytree(tiny_shards, tmp_path / "moved")  # same shards, another folder
    flags = list(TINY_TRAIN_FLAGS)
    flags[flags.index("--steps") + 1] = "6"
    result = run_tt(["train", "--data", str(moved), "--out", run, "--mode", "clip", *flags])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output
    assert os.path.exists(os.path.join(run, "checkpoints", "ckpt-6.index"))


# --- tt bench checks its inputs before building any model --------------------------------------


@pytest.mark.parametrize(
    "args, named",
    [
        (["--data", "/no/such/shards"], "/no/such/shards: no such file"),
        (["--tokenizer", "/no/such.model"], "--tokenizer"),
    ],
)
def test_bench_refuses_missing_inputs_before_building_models(tiny_shards, args, named):
    if args[0] == "--tokenizer":
        args = ["--data", tiny_shards, *args]
    result = run_tt(["bench", "--scale", "tiny", "--modes", "clip", "--steps", "1", "--warmup", "1", *args])
    assert_one_clear_line(result, named)
    # The runner logs "<mode>: building and warming up" and a progress bar before any step.
    assert "building" not in result.output and "benchmarking" not in result.output and "pairs/s" not in result.output


# --- the library speaks Python, the command layer speaks flags ----------------------------------


def test_the_python_api_raises_plain_exceptions_that_name_values(tmp_path):
    from tt_cli.errors import InvalidValueError, TtError, UnreadableDataError
    from tt_cli.eval.fewshot import check_shots
    from tt_cli.run_dir import read_run_record

    with pytest.raises(InvalidValueError, match="shots 5,0: every number of shots must be at least 1") as bad:
        check_shots([5, 0])
    missing = str(tmp_path / "no-run")
    with pytest.raises(UnreadableDataError, match="no such run directory") as unreadable:
        read_run_record(missing)
    for error in (bad.value, unreadable.value):
        assert isinstance(error, TtError) and not isinstance(error, click.ClickException)
        assert "--" not in str(error)  # a value, never a flag
    assert isinstance(bad.value, ValueError)  # what a bad value is to any Python caller


def test_a_remedy_is_an_argument_to_python_and_a_flag_on_the_command_line(tiny_run, tmp_path):
    """The same refusal, said to a Python caller (the argument) and to a user (the flag)."""
    from tt_cli import ownership
    from tt_cli.errors import ConflictError

    out = tmp_path / "export"
    out.mkdir()
    folder = ownership.prepare_whole_folder(str(out), "tt export savedmodel", overwrite=False, what="an export")
    ownership.begin_whole_folder(folder)
    (out / "saved_model.pb").write_bytes(b"tt's own")
    ownership.record_all(folder)
    with pytest.raises(ConflictError) as raised:
        ownership.prepare_whole_folder(str(out), "tt export savedmodel", overwrite=False, what="an export")
    assert "call again with overwrite=True to replace it" in str(raised.value) and "--" not in str(raised.value)
    result = run_tt(["export", "savedmodel", tiny_run("clip"), str(out)])
    assert result.exit_code == 2 and "pass --overwrite to replace it" in result.output
    assert "overwrite=True" not in result.output


def test_a_library_error_reaches_the_user_as_one_error_line_and_exit_2(tmp_path):
    from tt_cli.errors import UnreadableDataError
    from tt_cli.run_dir import read_run_record

    missing = str(tmp_path / "no-run")
    with pytest.raises(UnreadableDataError) as raised:
        read_run_record(missing)
    result = run_tt(["eval", "retrieval", missing, "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: {raised.value}"]


def test_the_scale_flag_offers_exactly_the_models_scales():
    from models import SCALES
    from tt_cli.commands.option_types import SCALE_NAMES

    assert SCALE_NAMES == tuple(SCALES)
    result = run_tt(["train", "--data", "x", "--scale", "huge99"])
    assert_one_clear_line(result, "Invalid value for '--scale'", "huge99", "tiny")
