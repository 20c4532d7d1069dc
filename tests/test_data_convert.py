"""`tt data convert`: every source format, bad inputs, resume, and no TensorFlow.

Conversion runs in a `tt` subprocess (it imports the `tfrecord` package, which
cannot share a process with TensorFlow); the shards are read back here through
`tf.data`, so each test also checks that the two sides agree on the format.
"""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
from PIL import Image
from support.data_corpus import (
    ENV,
    decode_pil,
    good_rows,
    pixels,
    png_of_zeros,
    read_back,
    run_tt,
    save_image,
    tt_command,
    write_jsonl,
    write_wds,
)

CLASSES = ["cat", "dog"]


def _make_source(fmt, root):
    """Writes a source of `fmt`; returns (source path, extra CLI args, expected {key: row})."""
    rows = good_rows(root)
    expected = {}
    for row in rows:
        expected[row["key"]] = {
            "file": os.path.join(root, row["image"]),
            "texts": row["captions"],
            "label": CLASSES.index(row["label"]),
        }
    if fmt in ("csv", "tsv"):
        path = os.path.join(root, f"captions.{fmt}")
        columns = ["filepath", "title", "label"] if fmt == "csv" else ["picture", "sentence", "class"]
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
            writer.writerow(columns)
            for row in rows:  # several captions of one image: several lines
                for caption in row["captions"]:
                    writer.writerow([row["image"], caption, row["label"]])
        args = ["--label-column", columns[2]]
        if fmt == "tsv":
            args += ["--image-column", "picture", "--caption-column", "sentence"]
        return path, args, {r["image"]: expected[r["key"]] for r in rows}
    if fmt == "jsonl":
        path = os.path.join(root, "captions.jsonl")
        write_jsonl(path, rows)
        return path, [], expected
    if fmt == "folder":
        tree = os.path.join(root, "tree")
        by_key = {}
        for row in rows:
            key = f"{row['label']}/{row['key']}"
            os.makedirs(os.path.join(tree, row["label"]), exist_ok=True)
            os.link(os.path.join(root, row["image"]), os.path.join(tree, key))
            by_key[key] = dict(expected[row["key"]], texts=[row["label"]])
        open(os.path.join(tree, "cat", "notes.txt"), "w").write("not an image")
        return tree, [], by_key
    if fmt == "wds":
        tars = os.path.join(root, "tars")
        os.makedirs(tars)
        write_wds(os.path.join(tars, "part-0.tar"), rows[:3], root)
        write_wds(os.path.join(tars, "part-1.tar"), rows[3:], root)
        for name, part in (("part-0.tar", rows[:3]), ("part-1.tar", rows[3:])):
            with tarfile.open(os.path.join(tars, name), "a") as tar:  # integer labels as key.cls
                for row in part:
                    data = str(CLASSES.index(row["label"])).encode()
                    info = tarfile.TarInfo(row["key"].rsplit(".", 1)[0] + ".cls")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return tars, [], {r["key"].rsplit(".", 1)[0]: expected[r["key"]] for r in rows}
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "folder", "wds"])
def test_each_format_reads_back_through_tf_data(fmt, tmp_path):
    source, args, expected = _make_source(fmt, str(tmp_path))
    out = tmp_path / "out"
    run_tt("data", "convert", source, out, "--num-shards", 2, "--workers", 2, *args)
    info, rows = read_back(out)
    assert info.num_examples == len(expected) == 6 and info.num_shards == 2
    assert sorted(rows) == sorted(expected)
    for key, want in expected.items():
        got = rows[key]
        source_bytes = open(want["file"], "rb").read()
        assert got["image"] == source_bytes  # valid RGB PNG/JPEG are kept byte for byte
        if want["file"].endswith(".png"):  # lossless: TF pixels equal Pillow's
            np.testing.assert_array_equal(got["pixels"], decode_pil(want["file"]))
        assert got["texts"] == want["texts"]
        assert got["label"] == want["label"]
    # Integer labels (wds .cls) carry no names; named labels and folders do.
    assert info.class_names == (None if fmt == "wds" else CLASSES)
    report = json.loads((out / "report.json").read_text())
    assert report["written"] == 6 and report["rejected"] == {} and report["converted"] == {}
    assert report["ignored_files"] == (1 if fmt == "folder" else 0)
    assert (out / "rejected.jsonl").read_text() == ""
    assert not (out / ".convert").exists()


def _bad_corpus(root):
    """The rows of a JSONL source with one of every problem; returns (path, expected rejections)."""
    image = lambda name: os.path.join(root, name)
    rgb = pixels(1, 20, 16)
    save_image(image("good.png"), rgb)
    save_image(image("good2.jpg"), pixels(2, 24, 24))
    jpeg = open(save_image(image("whole.jpg"), pixels(3, 32, 32)), "rb").read()
    open(image("truncated.jpg"), "wb").write(jpeg[: len(jpeg) // 2])
    open(image("zero.png"), "wb").close()
    # Smooth, so that JPEG re-encoding stays close (random noise would not).
    yy, xx = np.mgrid[0:16, 0:24]
    smooth = np.stack([xx * 10, yy * 15, 255 - xx * 10], axis=-1).astype(np.uint8)
    Image.fromarray(smooth).convert("CMYK").save(image("cmyk.jpg"), quality=98)
    gray16 = (np.arange(16 * 20).reshape(16, 20) * 200).astype(np.uint16)
    Image.fromarray(gray16).save(image("gray16.png"))
    rgba = pixels(5, 18, 14, channels=4)
    Image.fromarray(rgba, "RGBA").save(image("rgba.png"))
    lines = [
        {"key": "good", "image": "good.png", "caption": "fine"},
        {"key": "truncated", "image": "truncated.jpg", "caption": "cut in half"},
        {"key": "zero", "image": "zero.png", "caption": "no bytes"},
        {"key": "missing", "image": "nowhere.png", "caption": "no file"},
        {"key": "cmyk", "image": "cmyk.jpg", "caption": "printer colours"},
        {"key": "gray16", "image": "gray16.png", "caption": "sixteen bits"},
        {"key": "rgba", "image": "rgba.png", "caption": "see through"},
        {"key": "empty", "image": "good.png", "caption": "   "},
        "INVALID_UTF8",
        {"key": "good", "image": "good2.jpg", "caption": "same key again"},
        {"key": "good2", "image": "good2.jpg", "captions": ["fine too", "and another"]},
    ]
    path = os.path.join(root, "bad.jsonl")
    with open(path, "wb") as f:
        for line in lines:
            if line == "INVALID_UTF8":
                f.write(b'{"key": "latin1", "image": "good.png", "caption": "caf\xe9 cr\xe8me"}\n')
            else:
                f.write(json.dumps(line).encode() + b"\n")
    rejected = [
        ("truncated", "truncated_image"),
        ("zero", "empty_file"),
        ("missing", "missing_file"),
        ("empty", "empty_caption"),
        ("latin1", "caption_not_utf8"),
        ("good", "duplicate_key"),
    ]
    return path, rejected, {"rgb": rgb, "gray16": gray16, "rgba": rgba}


def test_bad_inputs_are_rejected_or_converted(tmp_path):
    source, want_rejected, arrays = _bad_corpus(str(tmp_path))
    out = tmp_path / "out"
    result = run_tt("data", "convert", source, out, "--num-shards", 3, "--workers", 2)
    assert "rejected" in result.stdout and "truncated_image" in result.stdout
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["key"], r["reason"]) for r in rejected] == want_rejected  # in source order
    assert rejected[0]["origin"] == "bad.jsonl:2"
    report = json.loads((out / "report.json").read_text())
    assert report["read"] == 11 and report["written"] == 5
    assert report["rejected"] == {
        "caption_not_utf8": 1,
        "duplicate_key": 1,
        "empty_caption": 1,
        "empty_file": 1,
        "missing_file": 1,
        "truncated_image": 1,
    }
    assert report["converted"] == {"16bit": 1, "alpha": 1, "cmyk": 1}

    info, rows = read_back(out)
    assert info.num_examples == 5 and sorted(rows) == ["cmyk", "good", "good2", "gray16", "rgba"]
    # The intact rows are untouched.
    assert rows["good"]["image"] == open(tmp_path / "good.png", "rb").read()
    assert rows["good"]["texts"] == ["fine"]
    np.testing.assert_array_equal(rows["good"]["pixels"], arrays["rgb"])
    assert rows["good2"]["image"] == open(tmp_path / "good2.jpg", "rb").read()
    assert rows["good2"]["texts"] == ["fine too", "and another"]
    # 16-bit grayscale: scaled (not clipped) to 8 bits, replicated to RGB.
    want16 = np.round(arrays["gray16"] / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(rows["gray16"]["pixels"], np.repeat(want16[..., None], 3, axis=2))
    # RGBA: composited over white, computed independently here.
    a = arrays["rgba"][..., 3:].astype(np.float64) / 255
    want_rgba = arrays["rgba"][..., :3] * a + 255 * (1 - a)
    assert np.abs(rows["rgba"]["pixels"].astype(np.float64) - want_rgba).max() <= 1.0
    # CMYK: RGB now; close to Pillow's own conversion (JPEG re-encoding is lossy).
    want_cmyk = np.asarray(Image.open(tmp_path / "cmyk.jpg").convert("RGB"), dtype=np.float64)
    assert rows["cmyk"]["pixels"].shape == want_cmyk.shape
    assert np.abs(rows["cmyk"]["pixels"] - want_cmyk).mean() < 3.0


@pytest.mark.slow  # a subprocess killed mid-conversion, 3.4 s: the fast lane keeps under 3 minutes
def test_interrupted_conversion_resumes_without_duplicates(tmp_path):
    """A real interruption: the last shard's images are large and slow to decode; killed inside it."""
    rows = good_rows(str(tmp_path), n=12, with_jpeg=False)
    # Row i goes to shard i mod 4: rows 3, 7 and 11 make the last shard, converted last with one
    # worker. 81-megapixel PNGs (just under the pixel limit) take a good second to decode together.
    slow = [tmp_path / "images" / f"img{i}.png" for i in (3, 7, 11)]
    png_of_zeros(tmp_path / "big.png", 9000, 9000)
    for path in slow:
        os.remove(path)
        os.link(tmp_path / "big.png", path)
    source = tmp_path / "captions.jsonl"
    write_jsonl(source, rows)
    out = tmp_path / "out"
    args = ["data", "convert", str(source), str(out), "--num-shards", "4"]
    process = subprocess.Popen(
        tt_command() + args + ["--workers", "1"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        names = [f"shard-{i:05d}-of-00004.tfrecord" for i in range(4)]
        deadline = time.time() + 60
        while not all((out / n).exists() for n in names[:3]):
            assert time.time() < deadline and process.poll() is None
            time.sleep(0.01)
        assert process.poll() is None  # inside shard 3
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (out / names[3]).exists() and (out / (names[3] + ".tmp")).exists()
    assert not (out / "dataset.json").exists()
    finished = {n: os.stat(out / n).st_mtime_ns for n in names[:3]}

    for i, path in zip((3, 7, 11), slow):  # small again, so that the rerun is quick
        os.remove(path)
        save_image(str(path), pixels(i, 49, 18))
    result = run_tt(*args, "--workers", "2")
    assert "3 already finished" in result.stdout
    assert {n: os.stat(out / n).st_mtime_ns for n in names[:3]} == finished  # not redone
    report = json.loads((out / "report.json").read_text())
    assert report["shards_resumed"] == 3 and report["shards_converted_now"] == 1
    info, back = read_back(out)  # read_back fails on a duplicate key
    assert info.num_examples == 12 and len(back) == 12
    assert sorted(os.listdir(out)) == sorted(
        names + ["dataset.json", "rejected.jsonl", "report.json", ".tt-manifest.json"]
    )

    # Once complete, a rerun changes nothing; a different plan needs --overwrite.
    assert "already complete" in run_tt(*args).stdout
    assert {n: os.stat(out / n).st_mtime_ns for n in names[:3]} == finished
    different = run_tt(*args[:-1], "2", check=False)
    assert different.returncode == 2 and "--overwrite" in different.stderr
    run_tt(*args[:-1], "2", "--overwrite")
    assert sorted(p for p in os.listdir(out) if p.startswith("shard-")) == [
        "shard-00000-of-00002.tfrecord",
        "shard-00001-of-00002.tfrecord",
    ]


def test_max_size_reencodes_large_images_as_jpeg(tmp_path):
    save_image(str(tmp_path / "big.png"), pixels(0, 64, 32))
    save_image(str(tmp_path / "small.png"), pixels(1, 20, 10))
    write_jsonl(
        tmp_path / "c.jsonl", [{"image": "big.png", "caption": "big"}, {"image": "small.png", "caption": "small"}]
    )
    run_tt("data", "convert", tmp_path / "c.jsonl", tmp_path / "out", "--max-size", 24)
    _, rows = read_back(tmp_path / "out")
    assert rows["big.png"]["image"][:3] == b"\xff\xd8\xff"  # JPEG now
    assert rows["big.png"]["pixels"].shape == (12, 24, 3)
    assert rows["small.png"]["image"] == open(tmp_path / "small.png", "rb").read()


def test_user_errors_are_one_line(tmp_path):
    result = run_tt("data", "convert", tmp_path / "nothing.jsonl", tmp_path / "out", check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'nothing.jsonl'}: no such file or folder."
    ]
    (tmp_path / "c.csv").write_text("a,b\nx.png,hello\n")
    result = run_tt("data", "convert", tmp_path / "c.csv", tmp_path / "out", check=False)
    assert result.returncode == 2 and "--image-column" in result.stderr and "Traceback" not in result.stderr


def test_tf_free_commands_do_not_import_tensorflow(tmp_path):
    rows = good_rows(str(tmp_path), n=4)
    write_jsonl(tmp_path / "c.jsonl", rows)
    script = f"""
import sys
from tt_cli.main import cli
out = {str(tmp_path / "out")!r}
cli.main(["data", "convert", {str(tmp_path / "c.jsonl")!r}, out, "--workers", "1"], standalone_mode=False)
cli.main(["data", "inspect", out, "--verify"], standalone_mode=False)
cli.main(["data", "tokenizer", out, out + "/tok.model", "--vocab-size", "40"], standalone_mode=False)
heavy = sorted(m for m in ("tensorflow", "keras", "keras_hub", "tensorflow_text") if m in sys.modules)
print("HEAVY", heavy)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert os.path.isfile(tmp_path / "out" / "tok.model")
