"""`tt data inspect` (counts, statistics, CRC verification) and `tt data tokenizer`.

Both are TF-free, so they run in `tt` subprocesses; the numbers they print are
checked against NumPy on the source rows.
"""

import json
import struct

import numpy as np
import sentencepiece as spm
from support.data_corpus import good_rows, run_tt, write_jsonl


def _converted(tmp_path, n=10, shards=2):
    rows = good_rows(str(tmp_path), n=n)
    write_jsonl(tmp_path / "c.jsonl", rows)
    run_tt("data", "convert", tmp_path / "c.jsonl", tmp_path / "out", "--num-shards", shards, "--workers", 1)
    return rows, tmp_path / "out"


def test_inspect_counts_and_statistics(tmp_path):
    rows, out = _converted(tmp_path)
    result = run_tt("data", "inspect", out, "--verify", "--json", tmp_path / "s.json")
    assert "10 examples in 2 shard(s)" in result.stdout and "verified" in result.stdout
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["num_examples"] == 10 and [x["examples"] for x in s["shards"]] == [5, 5]
    assert s["features"] == {
        "image": {"type": "bytes", "examples": 10},
        "texts": {"type": "bytes", "examples": 10},
        "key": {"type": "bytes", "examples": 10},
        "label": {"type": "int64", "examples": 10},
    }
    captions = [c for r in rows for c in r["captions"]]
    chars = np.array([len(c) for c in captions])
    assert s["caption_chars"]["mean"] == round(chars.mean(), 2)
    assert s["caption_chars"]["median"] == np.median(chars) and s["caption_chars"]["max"] == chars.max()
    assert s["captions_per_example"]["max"] == 2 and s["captions_per_example"]["mean"] == 1.5
    labels = [r["label"] for r in rows]
    assert s["labels"] == [
        {"label": 0, "name": "cat", "count": labels.count("cat")},
        {"label": 1, "name": "dog", "count": labels.count("dog")},
    ]
    assert len(s["samples"]) == 3 and s["samples"][0]["key"] == "img0.png"
    assert s["samples"][0]["image"] == "PNG 16x40" and s["corrupt"] == []


def test_verify_names_corrupt_file_and_offset(tmp_path):
    _, out = _converted(tmp_path)
    shard = out / "shard-00001-of-00002.tfrecord"
    data = bytearray(shard.read_bytes())
    # Independently find record 2: skip record 1 (8-byte length, 4 CRC, data, 4 CRC).
    (first_length,) = struct.unpack("<Q", bytes(data[:8]))
    offset = 16 + first_length
    data[offset + 12 + 40] ^= 0xFF  # flip a byte inside record 2's payload
    shard.write_bytes(bytes(data))

    result = run_tt("data", "inspect", out, "--verify", "--json", tmp_path / "s.json", check=False)
    assert result.returncode == 2
    assert f"shard-00001-of-00002.tfrecord at byte offset {offset}" in result.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["corrupt"] == [{"file": str(shard), "offset": offset, "why": "data CRC mismatch"}]
    # Without --verify the flipped byte goes unnoticed (no CRC check), by design.
    assert run_tt("data", "inspect", out, check=False).returncode == 0


def test_tokenizer_command_trains_on_shard_captions(tmp_path):
    rows, out = _converted(tmp_path)
    model = tmp_path / "tok.model"
    result = run_tt("data", "tokenizer", out, model, "--vocab-size", 5000)
    assert "warning" in result.stderr and "capped" in result.stderr  # 15 captions cannot fill 5000
    sp = spm.SentencePieceProcessor(model_file=str(model))
    assert f"({sp.vocab_size():,} pieces, trained on 15 captions)" in result.stdout
    assert sp.id_to_piece(2) == "</s>" and sp.pad_id() == 0
    assert sp.decode(sp.encode("a photo number 3")) == "a photo number 3"
