"""`tt train --wandb` (issue 26), in W&B's offline mode (no network).

W&B (0.31) has no reader of offline runs in its Python API (its `wandb.Api` is online only,
and the old Python datastore went with the Go core), so `wandb_records` parses the
`run-<id>.wandb` file itself: W&B's record log (LevelDB's log format: 32 KiB blocks of
CRC-length-type chunks after a 7-byte `:W&B` header) of `wandb.proto.wandb_internal_pb2.Record`
protobufs, decoded with W&B's own protobuf classes.
"""

import glob
import json
import os
import struct
import sys

import pytest
from conftest import TINY_TRAIN_FLAGS, run_tt

BLOCK = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")  # CRC, length, type (1 full, 2 first, 3 middle, 4 last)
FULL, LAST = 1, 4


def wandb_records(path):
    """The `Record` protobufs of an offline W&B run file, in order."""
    from wandb.proto import wandb_internal_pb2

    with open(path, "rb") as f:
        data = f.read()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, "not a W&B run file"
    position, payload = 7, b""
    while position + CHUNK_HEADER.size <= len(data):
        left = BLOCK - position % BLOCK
        if left < CHUNK_HEADER.size:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(data, position)
        if kind == 0:
            break
        start = position + CHUNK_HEADER.size
        payload += data[start : start + length]
        position = start + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            payload = b""
            yield record


def _history(records):
    """{step: {key: value}} of the history records (W&B's own `_step`, `_runtime`... left out);
    a logged media object comes as its fields under nested keys: {key: {field: value}}."""
    steps = {}
    for record in records:
        if record.WhichOneof("record_type") != "history":
            continue
        logged = steps.setdefault(record.history.step.num, {})
        for item in record.history.item:
            keys = [item.key] if item.key else list(item.nested_key)
            if keys[0].startswith("_"):
                continue
            target = logged
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            target[keys[-1]] = json.loads(item.value_json)
    return steps


def test_wandb_needs_its_extra_and_a_project(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: importing it fails
    result = run_tt(["train", "--data", str(tmp_path), "--wandb", "proj"])
    assert result.exit_code == 2
    assert "pip install 'tt[wandb]'" in result.output and "Traceback" not in result.output
    result = run_tt(["train", "--data", str(tmp_path), "--wandb-run", "name"])
    assert result.exit_code == 2 and "--wandb" in result.output


@pytest.mark.slow
def test_wandb_offline_run_holds_the_metrics_and_a_resume_continues_it(tiny_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = str(tmp_path / "run")
    flags = ["train", "--data", tiny_shards, "--out", out, "--mode", "clip", *TINY_TRAIN_FLAGS]
    flags += ["--wandb", "tt-tests", "--wandb-run", "tiny"]
    first = run_tt([*flags, "--steps", "2"])
    assert first.exit_code == 0, first.output
    saved = json.load(open(os.path.join(out, "wandb.json")))
    assert saved["project"] == "tt-tests"
    # The resume changes a speed setting (--remat) and continues the same W&B run.
    second = run_tt([*flags, "--steps", "4", "--remat"])
    assert second.exit_code == 0, second.output
    assert json.load(open(os.path.join(out, "wandb.json"))) == saved
    assert json.load(open(os.path.join(out, "run.json")))["config"]["remat"] is True
    from tt_cli.ownership import MANIFEST

    assert {"wandb.json", "wandb"} <= set(json.load(open(os.path.join(out, MANIFEST)))["entries"])  # tt's to replace

    files = sorted(glob.glob(os.path.join(out, "wandb", "offline-run-*", "run-*.wandb")))
    assert len(files) == 2 and all(f.endswith(f"run-{saved['id']}.wandb") for f in files)
    sessions = [list(wandb_records(f)) for f in files]
    runs = [r.run for records in sessions for r in records if r.WhichOneof("record_type") == "run"]
    assert {(r.run_id, r.project, r.display_name) for r in runs} == {(saved["id"], "tt-tests", "tiny")}
    config = {item.key: json.loads(item.value_json) for item in runs[-1].config.update}
    settings = json.load(open(os.path.join(out, "run.json")))["config"]
    assert {k: config[k] for k in ("batch_size", "mode", "scale", "remat", "wandb")} == {
        k: settings[k] for k in ("batch_size", "mode", "scale", "remat", "wandb")
    }

    history = {}
    for records in sessions:
        history.update(_history(records))
    logged = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [m["step"] for m in logged] == [2, 4]
    for metrics in logged:
        got = history[metrics["step"]]
        for key, value in metrics.items():
            if key != "step":
                assert got[key] == pytest.approx(value, rel=1e-12), (metrics["step"], key)
    # The report's curves, logged as images at the end of each session.
    images = {k: v for k, v in history[4].items() if k.startswith("curves/")}
    assert {"curves/Losses", "curves/Learning rate"} <= set(images)
    assert all(v["_type"] == "image-file" for v in images.values())


def test_a_resume_finds_the_wandb_run_of_its_project(tmp_path):
    from tt_cli.training.wandb_log import _saved_id

    out = str(tmp_path)
    assert _saved_id(out, "proj") is None
    (tmp_path / "wandb.json").write_text(json.dumps({"project": "proj", "id": "abc123"}))
    assert _saved_id(out, "proj") == "abc123"
    assert _saved_id(out, "other") is None  # another project: a new run there
    (tmp_path / "wandb.json").write_text("{cut short")
    assert _saved_id(out, "proj") is None
