"""run.json as a `RunRecord`: the current layout and the first one (runs of earlier versions)."""

import pytest

from tt_cli.errors import UnreadableDataError
from tt_cli.run_record import RunRecord


def test_a_first_layout_run_json_reads_as_the_record_of_today():
    """3T with two third towers: the first read from an embeddings folder, the second online."""
    config = {"mode": "3t", "scale": "tiny", "embeddings": ["/data/h0"], "pretrained": ["/p/a", "/p/b"]}
    old = {
        "config": config,
        "mode": "3t",
        "scale": "tiny",
        "scale_config": {"name": "tiny", "image_size": 48, "patch_size": 8},
        "pretrained": "/p/a",
        "pretrained_towers": ["/p/a", "/p/b"],
        "precomputed_h_embedding": True,
        "precomputed_h_embeddings": [True, False],
        "max_text_len": 12,
        "vocab_size": 60,
        "steps": 4,
        "jit": False,
        "dataset": {"sha256": "abc"},
    }
    record = RunRecord.from_json(old)
    assert record.config == config and record.mode == "3t" and record.image_size == 48
    assert record.pretrained_presets == ["/p/a", "/p/b"]
    assert [(t["source"], t["folder"]) for t in record.resolved["third_towers"]] == [
        ("folder", "/data/h0"),
        ("online", None),
    ]
    assert (record.resolved["vocab_size"], record.resolved["steps"], record.dataset) == (60, 4, {"sha256": "abc"})
    # Written again, each setting once; read back, the same record.
    written = record.to_json()
    assert written["format"] == 2 and not {"mode", "scale", "max_text_len", "pretrained"} & set(written)
    assert RunRecord.from_json(written) == record


def test_runs_before_several_third_towers_and_runs_precomputed_in_the_shards():
    old = {"config": {"mode": "lit"}, "scale_config": {"image_size": 32}, "pretrained": "/p/a"}
    assert RunRecord.from_json(old).resolved["third_towers"][0]["source"] == "online"
    old["precomputed_h_embedding"] = True
    assert RunRecord.from_json(old).resolved["third_towers"][0]["source"] == "shards"
    assert RunRecord.from_json({"config": {"mode": "clip"}, "pretrained": None}).pretrained_presets == []


@pytest.mark.parametrize("raw", [[], {"mode": "3t"}, {"format": 3, "config": {}}])
def test_what_is_no_run_json_of_this_version_is_one_line(raw):
    with pytest.raises(UnreadableDataError, match="run.json"):
        RunRecord.from_json(raw, "RUN/run.json")
