"""Hostile rows: each is rejected alone, with its reason, while the good rows convert intact.

Every input is made here (FIFOs, `/dev/zero`, sparse files, decompression bombs, bytes
that are not UTF-8, runaway captions and lines). Conversions run in `tt` subprocesses
with generous timeouts, so a regression that hangs fails instead of stalling the suite.
The converted result then trains (`tt train`, 4 tiny steps) to show it is safe to use.
"""

import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time

import numpy as np
import pytest
from PIL import Image
from support.data_corpus import (
    ENV,
    decode_pil,
    pixels,
    png_of_zeros,
    read_back,
    run_tt,
    save_image,
    tt_command,
    write_jsonl,
)

HANG = 120  # seconds: far beyond any of these conversions, short of a stalled suite
MAX_CAPTION_CHARS = 1000  # tt_cli.data.validate.MAX_CAPTION_CHARS (not imported: it loads the tfrecord side)
BOMB = (10_000, 9_000)  # 90 megapixels: just over the 89,478,485-pixel limit, 262 KB on disk


def _good_images(root, n=24):
    """n 32x32 RGB images (PNG, every third one JPEG) with integer labels; returns the JSONL rows."""
    rows = []
    for i in range(n):
        name = f"good{i}.{'jpg' if i % 3 == 2 else 'png'}"
        save_image(os.path.join(root, "images", name), pixels(i, 32, 32))
        rows.append(
            {
                "key": f"good{i}",
                "image": f"images/{name}",
                "label": i % 2,
                "caption": f"a {'red' if i % 2 else 'blue'} picture number {i}",
            }
        )
    return rows


def _line(record):
    return json.dumps(record).encode() + b"\n"


@pytest.fixture(scope="module")
def hostile_jsonl(tmp_path_factory):
    """A JSON Lines source: 24 good rows with one hostile row of every kind among them, converted."""
    root = tmp_path_factory.mktemp("hostile")
    good = _good_images(str(root))
    images = root / "images"
    os.mkfifo(images / "fifo.png")
    with open(images / "huge.png", "wb") as f:  # sparse: 70 MiB on paper, nothing on disk
        f.truncate(70 << 20)
    png_of_zeros(images / "bomb.png", *BOMB)
    with open(os.fsencode(images) + b"/\xe9t\xe9.png", "wb") as f:  # a file name that is not UTF-8
        f.write((images / "good0.png").read_bytes())
    long_caption = " ".join(f"word{i}" for i in range(150_000))  # ~1 MB
    image0 = "images/good0.png"
    hostile = [  # (line, expected key in rejected.jsonl or None when the row converts, reason)
        (
            b'{"key": "latin1", "image": "images/good0.png", "caption": "caf\xe9", "label": 0}\n',
            "latin1",
            "caption_not_utf8",
        ),
        (
            b'{"key": "k\xff", "image": "images/good0.png", "caption": "bad key", "label": 0}\n',
            "k\\xff",
            "key_not_utf8",
        ),
        (
            b'{"key": "path", "image": "images/\xe9t\xe9.png", "caption": "bad path", "label": 0}\n',
            "path",
            "path_not_utf8",
        ),
        (_line({"key": "nul", "image": image0 + "\0.png", "caption": "NUL", "label": 0}), "nul", "bad_path"),
        (_line({"key": "negative", "image": image0, "caption": "label -1", "label": -1}), "negative", "bad_label"),
        (_line({"key": "int64", "image": image0, "caption": "label 2**63", "label": 2**63}), "int64", "bad_label"),
        (_line({"key": "fifo", "image": "images/fifo.png", "caption": "a FIFO", "label": 0}), "fifo", "not_a_file"),
        (_line({"key": "zero", "image": "/dev/zero", "caption": "endless", "label": 0}), "zero", "not_a_file"),
        (_line({"key": "dir", "image": "images", "caption": "a folder", "label": 0}), "dir", "not_a_file"),
        (_line({"key": "huge", "image": "images/huge.png", "caption": "70 MiB", "label": 0}), "huge", "too_large"),
        (_line({"key": "bomb", "image": "images/bomb.png", "caption": "90 MP", "label": 0}), "bomb", "too_large"),
        (_line({"key": "long", "image": image0, "caption": long_caption, "label": 1}), None, "caption_truncated"),
        (_line({"key": "runaway", "image": image0, "caption": "x" * (17 << 20), "label": 1}), "", "row_too_large"),
    ]
    source = root / "hostile.jsonl"
    with open(source, "wb") as f:
        for i, row in enumerate(good):  # hostile rows spread among the good ones
            f.write(_line(row))
            if i < len(hostile):
                f.write(hostile[i][0])
    out = root / "out"
    result = run_tt("data", "convert", source, out, "--num-shards", 3, "--workers", 2, timeout=HANG)
    return {"root": root, "out": out, "good": good, "hostile": hostile, "long": long_caption, "result": result}


def test_each_hostile_row_is_rejected_alone_with_its_reason(hostile_jsonl):
    out, hostile = hostile_jsonl["out"], hostile_jsonl["hostile"]
    raw = (out / "rejected.jsonl").read_bytes()
    rejected = [json.loads(line) for line in raw.decode("utf-8").splitlines()]  # valid UTF-8 JSON throughout
    assert [(r["key"], r["reason"]) for r in rejected] == [(k, reason) for _, k, reason in hostile if k is not None]
    by_key = {r["key"]: r for r in rejected}
    assert "is a FIFO" in by_key["fifo"]["detail"] and "is a device" in by_key["zero"]["detail"]
    assert "10000x9000" in by_key["bomb"]["detail"] and "73,400,320 bytes" in by_key["huge"]["detail"]
    assert by_key["path"]["image"].endswith("images/\\xe9t\\xe9.png")
    report = json.loads((out / "report.json").read_text())
    assert report["written"] == 25 and report["read"] == 25 + len(rejected)
    assert report["converted"] == {"caption_truncated": 1}
    assert report["rejected"] == {
        "bad_label": 2,
        "bad_path": 1,
        "caption_not_utf8": 1,
        "key_not_utf8": 1,
        "not_a_file": 3,
        "path_not_utf8": 1,
        "row_too_large": 1,
        "too_large": 2,
    }


def test_good_rows_convert_intact_and_long_captions_are_cut(hostile_jsonl):
    root, good = hostile_jsonl["root"], hostile_jsonl["good"]
    info, rows = read_back(hostile_jsonl["out"])
    assert info.num_examples == 25 and sorted(rows) == sorted([r["key"] for r in good] + ["long"])
    for row in good:
        back = rows[row["key"]]
        assert back["image"] == (root / row["image"]).read_bytes()  # kept byte for byte
        assert back["texts"] == [row["caption"]] and back["label"] == row["label"]
    cut = rows["long"]["texts"][0]
    assert MAX_CAPTION_CHARS // 2 < len(cut) <= MAX_CAPTION_CHARS
    assert hostile_jsonl["long"].startswith(cut) and hostile_jsonl["long"][len(cut)] == " "  # on a word boundary


@pytest.mark.slow
def test_inspect_agrees_and_a_short_training_run_succeeds(hostile_jsonl, tmp_path):
    from conftest import TINY_TRAIN_FLAGS
    from conftest import run_tt as run_tt_here

    out = hostile_jsonl["out"]
    run_tt("data", "inspect", out, "--verify", "--json", tmp_path / "s.json", timeout=HANG)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["num_examples"] == 25 and summary["images_too_large"] == 0 and summary["images_unreadable"] == 0
    assert summary["caption_chars"]["max"] <= MAX_CAPTION_CHARS
    result = run_tt_here(
        ["train", "--data", str(out), "--out", str(tmp_path / "run"), "--mode", "clip", *TINY_TRAIN_FLAGS]
    )
    assert result.exit_code == 0, result.output
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "ckpt-4.index")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_csv_bom_field_limit_labels_and_a_bracket_in_the_name(tmp_path):
    rows = _good_images(str(tmp_path), n=4)
    lines = [
        b"image,caption,label",
        f"{rows[0]['image']},first,0".encode(),
        f"{rows[1]['image']},{'x' * 200_000},0".encode(),  # over csv's 131,072-character field limit
        f"{rows[2]['image']},third,1".encode(),
        f"{rows[3]['image']},caf\xe9,1".encode("latin-1"),
        f"{rows[3]['image']},negative,-5".encode(),
        f"{rows[3]['image']},too big,{2**64}".encode(),
        f"{rows[3]['image']},fourth,1".encode(),
    ]
    source = tmp_path / "caps[1].csv"  # exists: taken literally, not as a glob
    source.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")  # with a byte-order mark
    result = run_tt("data", "convert", source, tmp_path / "out", "--label-column", "label", timeout=HANG)
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["origin"], r["reason"]) for r in rejected] == [
        ("caps[1].csv:3", "field_too_large"),
        ("caps[1].csv:5", "caption_not_utf8"),
        ("caps[1].csv:6", "bad_label"),
        ("caps[1].csv:7", "bad_label"),
    ]
    assert "line 3" in rejected[0]["detail"] and "field limit" in rejected[0]["detail"]
    _, back = read_back(tmp_path / "out")
    assert {k: (v["texts"], v["label"]) for k, v in back.items()} == {
        rows[0]["image"]: (["first"], 0),
        rows[2]["image"]: (["third"], 1),
        rows[3]["image"]: (["fourth"], 1),
    }
    assert back[rows[0]["image"]]["image"] == (tmp_path / rows[0]["image"]).read_bytes()
    assert "Traceback" not in result.stderr


def test_tsv_is_not_quoted_csv(tmp_path):
    rows = _good_images(str(tmp_path), n=3)
    source = tmp_path / "caps.tsv"
    source.write_text(
        "image\tcaption\n"
        f'{rows[0]["image"]}\t"quoted, she said\n'  # a quote that csv would run on
        f"{rows[1]['image']}\tsecond\n{rows[2]['image']}\tthird\n"
    )
    run_tt("data", "convert", source, tmp_path / "out", timeout=HANG)
    _, back = read_back(tmp_path / "out")
    assert {k: v["texts"] for k, v in back.items()} == {
        rows[0]["image"]: ['"quoted, she said'],
        rows[1]["image"]: ["second"],
        rows[2]["image"]: ["third"],
    }


def test_empty_sources_get_one_clear_line(tmp_path):
    for name, content, message in (
        ("empty.csv", b"", "the file is empty"),
        ("header.csv", b"image,caption\n", "a header line but no rows"),
        ("empty.jsonl", b"\n", "holds no rows to convert"),
    ):
        (tmp_path / name).write_bytes(content)
        result = run_tt("data", "convert", tmp_path / name, tmp_path / "out", check=False, timeout=HANG)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"Error: {tmp_path / name}: {message}"
            + ("; a CSV source needs a header line and one line per row." if name == "empty.csv" else ".")
        ]


def test_folder_with_non_utf8_class_and_glob_characters(tmp_path):
    # Exists: a folder source, not a glob of tars. Its own name is not UTF-8 either: that is the
    # user's folder, not a row, so its images convert.
    root = tmp_path / os.fsdecode(b"imgs[\xe9]")
    for key, seed in (("cat/a.png", 0), ("cat/d?.png", 1), ("dog/b.png", 2)):
        save_image(str(root / key), pixels(seed, 32, 32))
    bad_class = os.fsencode(root) + b"/caf\xe9"
    os.makedirs(bad_class)
    save_image(os.fsdecode(bad_class + b"/c.png"), pixels(3, 32, 32))
    run_tt("data", "convert", root, tmp_path / "out", timeout=HANG)
    info, back = read_back(tmp_path / "out")
    assert info.class_names == ["cat", "dog"]
    assert {k: v["label"] for k, v in back.items()} == {"cat/a.png": 0, "cat/d?.png": 0, "dog/b.png": 1}
    assert back["cat/d?.png"]["image"] == (root / "cat" / "d?.png").read_bytes()
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["key"], r["reason"]) for r in rejected] == [("caf\\xe9/c.png", "path_not_utf8")]


def test_webdataset_member_limits_and_non_utf8_keys(tmp_path):
    folder = tmp_path / "tars"
    folder.mkdir()
    source = folder / "part[0].tar"  # exists: taken literally

    def add(tar, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    good = {f"good{i}": tmp_path / f"good{i}.png" for i in range(3)}
    for i, path in enumerate(good.values()):
        save_image(str(path), pixels(i, 32, 32))
    with tarfile.open(source, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        for key, path in good.items():
            add(tar, f"{key}.png", path.read_bytes())
            add(tar, f"{key}.txt", f"caption of {key}".encode())
        add(tar, "k\udcff.png", good["good0"].read_bytes())  # a member name that is not UTF-8
        add(tar, "k\udcff.txt", b"bad key")
        add(tar, "runaway.png", good["good0"].read_bytes())
        add(tar, "runaway.txt", b"y" * (17 << 20))
    run_tt("data", "convert", source, tmp_path / "out", timeout=HANG)
    _, back = read_back(tmp_path / "out")
    assert {k: v["texts"] for k, v in back.items()} == {k: [f"caption of {k}"] for k in good}
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["key"], r["reason"]) for r in rejected] == [("k\\xff", "key_not_utf8"), ("runaway", "row_too_large")]


def test_max_size_shrinks_a_large_jpeg_while_decoding_and_rejects_a_png_bomb(tmp_path):
    Image.new("RGB", BOMB, (200, 100, 50)).save(tmp_path / "big.jpg", quality=85)
    png_of_zeros(tmp_path / "bomb.png", *BOMB)
    save_image(str(tmp_path / "small.png"), pixels(0, 32, 32))
    write_jsonl(
        tmp_path / "c.jsonl", [{"image": name, "caption": name} for name in ("big.jpg", "bomb.png", "small.png")]
    )
    result = run_tt("data", "convert", tmp_path / "c.jsonl", tmp_path / "out", "--max-size", 64, timeout=HANG)
    assert "resized" in result.stdout
    _, back = read_back(tmp_path / "out")
    assert sorted(back) == ["big.jpg", "small.png"]
    assert back["big.jpg"]["pixels"].shape == (58, 64, 3)  # 10000x9000 -> 64 wide
    assert np.abs(back["big.jpg"]["pixels"].astype(int) - [200, 100, 50]).max() <= 3
    np.testing.assert_array_equal(back["small.png"]["pixels"], decode_pil(str(tmp_path / "small.png")))
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["key"], r["reason"]) for r in rejected] == [("bomb.png", "too_large")]


def test_a_failed_conversion_fails_again_when_rerun(tmp_path):
    write_jsonl(tmp_path / "c.jsonl", [{"image": "nowhere.png", "caption": "x"}, {"image": "gone.png", "caption": "y"}])
    message = f"Error: no row could be converted; the reasons are in {tmp_path / 'out' / 'rejected.jsonl'}."
    for _ in range(2):
        result = run_tt("data", "convert", tmp_path / "c.jsonl", tmp_path / "out", check=False, timeout=HANG)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == message


def _our_processes(marker):
    """Live processes whose command line mentions `marker` (the converter and its workers)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
        except OSError:  # exited meanwhile
            continue
        if marker.encode() in command:
            found.append(int(pid))
    return found


@pytest.mark.slow  # a subprocess stopped by SIGINT, 3.1 s: the fast lane keeps under 3 minutes
def test_ctrl_c_stops_promptly_and_the_rerun_resumes(tmp_path):
    """40 rows of an 81-megapixel PNG (just under the limit, slow to decode): a full run takes
    far longer than the generous bound on stopping after SIGINT. Shard k's rows (i mod 4 = k)
    read `slow{k}.png`, links to one file, so that the rerun can make only the unfinished
    shards' images quick (a finished shard whose images changed is converted again)."""
    png_of_zeros(tmp_path / "slow.png", 9000, 9000)
    for k in range(4):
        os.link(tmp_path / "slow.png", tmp_path / f"slow{k}.png")
    write_jsonl(
        tmp_path / "c.jsonl",
        [{"key": f"row{i}", "image": f"slow{i % 4}.png", "caption": f"row {i}"} for i in range(40)],
    )
    out = tmp_path / "out"
    args = ["data", "convert", str(tmp_path / "c.jsonl"), str(out), "--num-shards", "4"]
    process = subprocess.Popen(
        tt_command() + args + ["--workers", "2"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.time() + HANG
        while not list(out.glob("shard-*.tmp")):  # the workers are converting
            assert time.time() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2 and "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    finished = re.fullmatch(
        r"Error: interrupted with (\d) of 4 shard\(s\) finished; run the same command again "
        r"to resume\.",
        last,
    )
    assert finished and int(finished.group(1)) < 4, last
    time.sleep(0.5)
    assert _our_processes(str(out)) == []  # no worker left behind
    assert [p.name for p in out.rglob("*.tmp")] == []

    for k in range(4):  # the same rows, now quick to convert where they are still to be converted
        if not (out / f"shard-{k:05d}-of-00004.tfrecord").exists():
            os.remove(tmp_path / f"slow{k}.png")
            save_image(str(tmp_path / f"slow{k}.png"), pixels(k, 32, 32))
    result = run_tt(*args, "--workers", "2", timeout=HANG)
    report = json.loads((out / "report.json").read_text())
    assert report["shards_resumed"] == int(finished.group(1)) and report["written"] == 40, result.stdout
    _, back = read_back(out)
    assert sorted(back) == sorted(f"row{i}" for i in range(40))


@pytest.mark.slow
def test_training_and_inspect_agree_on_images_convert_would_reject(tmp_path):
    """Shards not made by convert: the pipeline never decodes a bomb, and a broken image is an error, not a skip."""
    import tensorflow as tf

    from tt_cli.data import pipeline
    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.data.tokenizer import train_sentencepiece

    good = pixels(0, 32, 32)
    buffer = io.BytesIO()
    Image.fromarray(good).save(buffer, "PNG")
    bomb = png_of_zeros(tmp_path / "bomb.png", *BOMB).read_bytes()
    jpeg = io.BytesIO()
    Image.fromarray(pixels(1, 64, 64)).save(jpeg, "JPEG")
    broken = jpeg.getvalue()[: len(jpeg.getvalue()) // 2]  # truncated: the header is intact, the pixels are not
    garbage = b"\xff\xd8\xff not a JPEG after all"

    def example(image, key):
        feature = {
            "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
            "texts": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a photo"])),
            "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[key])),
        }
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    shard = str(tmp_path / "mixed.tfrecord")
    with tf.io.TFRecordWriter(shard) as writer:
        for image, key in ((buffer.getvalue(), b"good"), (bomb, b"bomb"), (broken, b"broken"), (garbage, b"junk")):
            writer.write(example(image, key))

    assert [int(pipeline.image_pixels(tf.constant(x))) for x in (buffer.getvalue(), bomb, broken)] == [
        32 * 32,
        BOMB[0] * BOMB[1],
        64 * 64,
    ]
    assert not bool(pipeline.decode_image(tf.constant(bomb), (8, 8)).numpy().any())  # black, never decoded
    model = str(tmp_path / "tok.model")
    train_sentencepiece(["a photo of something"] * 20, model, 17)
    tokenizer = TextTokenizer(model, 8)
    good_and_bomb = str(tmp_path / "good_and_bomb.tfrecord")
    with tf.io.TFRecordWriter(good_and_bomb) as writer:
        for image, key in ((buffer.getvalue(), b"good"), (bomb, b"bomb")):
            writer.write(example(image, key))
    batches = pipeline.train_dataset([good_and_bomb], batch_size=4, image_size=(32, 32), tokenizer=tokenizer)
    for batch in batches.take(3):  # only the good record is left, repeated: the bomb is never decoded
        np.testing.assert_array_equal(batch["image"].numpy(), np.repeat(good[None], 4, axis=0))
    # An undecodable image is not skipped in silence: the read fails, and training names the data.
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        next(iter(pipeline.train_dataset([shard], batch_size=4, image_size=(32, 32), tokenizer=tokenizer)))
    assert pipeline.is_read_error(error.value)
    said = pipeline.shard_read_error(error.value, [shard], shard)
    assert said.shards == shard and f"inspect_shards({shard!r}, verify=True)" in str(said)

    result = run_tt("data", "inspect", shard, "--json", tmp_path / "s.json", "--samples", 4, timeout=HANG)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["images_too_large"] == 1 and summary["images_unreadable"] == 1
    assert [s["image"] for s in summary["samples"]] == [
        "PNG 32x32",
        "PNG 10000x9000 (too large)",
        "JPEG 64x64",
        "unreadable",
    ]
    assert "1 image(s) over the 89,478,485-pixel limit (training skips them); first: key 'bomb'" in result.stdout


def test_tokenizer_cost_does_not_grow_with_caption_length(tmp_path):
    """A 1 MB caption tokenizes to the first pieces of the same text, as a short one would."""
    import sentencepiece as spm
    import tensorflow as tf

    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.data.tokenizer import EOS_ID, train_sentencepiece

    model = str(tmp_path / "tok.model")
    train_sentencepiece(["a cat on the grass", "a dog in the sky"] * 20, model, 19)
    long = "a cat on the grass " * 60_000
    tok = TextTokenizer(model, 12)
    ids = tok.tokenize(tf.constant([long, "a dog"])).numpy()
    sp = spm.SentencePieceProcessor(model_file=model)
    assert ids[0].tolist() == sp.encode(long[:2000])[:11] + [EOS_ID]
    assert ids[1].tolist()[: len(sp.encode("a dog")) + 1] == sp.encode("a dog") + [EOS_ID]
    # Structurally: the strings are cut (Substr) before SentencePiece sees them.
    graph = tf.function(tok.tokenize).get_concrete_function(tf.TensorSpec([None], tf.string)).graph
    ops = [op.type for op in graph.get_operations()]
    assert "Substr" in ops and ops.index("Substr") < min(i for i, t in enumerate(ops) if "Sentencepiece" in t)
