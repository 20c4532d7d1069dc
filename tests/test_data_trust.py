"""No data is silently wrong or incomplete: each input here once was (issue 22), and now is
converted intact, rejected with its reason, or refused with one line.

Every input is built here; every byte outside tt's own outputs is hashed before and after.
TF-free commands (`tt data convert/inspect/tokenizer`) run as `tt` subprocesses with a
timeout, so a FIFO that hangs a regression fails the test instead of the suite; the
TensorFlow commands run in this process, refused before they read a record.
"""

import hashlib
import importlib.util
import io
import json
import os
import shutil
import stat
import tarfile
import threading

import numpy as np
import pytest
from conftest import TINY_TRAIN_FLAGS, run_tt
from PIL import Image
from support.data_corpus import pixels, read_back, save_image, write_jsonl
from support.data_corpus import run_tt as run_tt_process

HANG = 120  # seconds: far beyond any of these commands, short of a stalled suite


def tree(root):
    """{relative path: sha256 of a file, its kind for anything else (a FIFO is never opened)}."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                with open(path, "rb") as f:
                    state[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
            else:
                state[os.path.relpath(path, root)] = stat.S_IFMT(mode)
    return state


def assert_refused(result, *words):
    """Exit 2, exactly one `Error:` line (naming `words`) and no traceback, from a `tt`
    subprocess (its stderr) or an in-process run (whose output also holds progress lines)."""
    code, output = (
        (result.returncode, result.stderr) if hasattr(result, "returncode") else (result.exit_code, result.output)
    )
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in output, output
    for word in words:
        assert word in errors[0], errors[0]


def user_files(root, *ours):
    """`tree` of `root` without tt's own outputs `ours` (names relative to root)."""
    return {k: v for k, v in tree(root).items() if not any(k == o or k.startswith(o + "/") for o in ours)}


def rejected(out):
    return [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]


def _tar_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _smooth(width, height):
    """A smooth RGB image (JPEG re-encoding stays close to it) whose four corners differ."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], axis=-1).astype(np.uint8)


# ------------------------------------------------------------------ sources: rows


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One CSV, one JSON Lines and one folder of WebDataset tars with every hostile row of
    this issue among good ones, each converted once; the user's files hashed around it."""
    root = tmp_path_factory.mktemp("trust_sources")
    for i in range(12):
        save_image(str(root / "images" / f"g{i}.png"), pixels(i, 24, 20))
    upright = _smooth(40, 24)  # 40 wide: stored on its side below, with orientation 6
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as a phone writes it
    stored.save(root / "images" / "phone.jpg", quality=98, exif=exif)

    csv_lines = [
        "image,caption,label",
        "images/g0.png,first row,cat",
        'images/g1.png,"a caption whose quote never closes,dog',  # line 3: alone rejected
        *(f"images/g{i}.png,row {i},{'cat' if i % 2 else 'dog'}" for i in range(2, 10)),  # lines 4-11: intact
        "images/g10.png,an unquoted, comma,cat",  # line 12: 4 cells
        'images/g11.png,"a caption with a',  # lines 13-14: a quoted line break
        'line break",dog',
        "images/g11.png,no label here,",  # line 15: one row without a label in a labelled source
    ]
    (root / "captions.csv").write_text("\n".join(csv_lines) + "\n")

    jsonl = [{"key": f"j{i}", "image": f"images/g{i}.png", "caption": f"json row {i}"} for i in range(5)]
    jsonl[2]["label"] = "bird"  # the only labelled row: the source stays unlabelled, the label is ignored
    jsonl.append({"key": "phone", "image": "images/phone.jpg", "caption": "taken upright"})
    write_jsonl(root / "captions.jsonl", jsonl)
    with open(root / "captions.jsonl", "a") as f:
        f.write('{"key": "surrogate", "image": "images/g0.png", "caption": "\\ud800"}\n')

    tars = root / "tars"
    tars.mkdir()
    with tarfile.open(tars / "part-0.tar", "w") as tar:
        for i in range(6):
            _tar_member(tar, f"s{i}.txt", f"sample {i}".encode())
            _tar_member(tar, f"s{i}.png", (root / "images" / f"g{i}.png").read_bytes())
    whole = (tars / "part-0.tar").read_bytes()
    last = tarfile.open(tars / "part-0.tar").getmember("s5.png")
    (tars / "part-0.tar").write_bytes(whole[: last.offset_data + last.size // 2])  # cut mid-member
    with tarfile.open(tars / "part-1.tar", "w") as tar:
        for key, text, image in (("d", "first d", 6), ("e", "e", 7), ("d", "second d", 8)):
            _tar_member(tar, f"{key}.png", (root / "images" / f"g{image}.png").read_bytes())
            _tar_member(tar, f"{key}.txt", text.encode())

    before = tree(root)
    results = {
        name: run_tt_process("data", "convert", root / source, root / name, "--workers", 1, *flags, timeout=HANG)
        for name, source, flags in (
            ("out_csv", "captions.csv", ["--label-column", "label"]),
            ("out_jsonl", "captions.jsonl", []),
            ("out_wds", "tars", []),
        )
    }
    return {"root": root, "before": before, "results": results, "upright": upright}


def test_csv_quote_and_cell_count_faults_reject_their_own_lines(sources):
    root, out = sources["root"], sources["root"] / "out_csv"
    assert [(r["origin"], r["reason"]) for r in rejected(out)] == [
        ("captions.csv:3", "bad_row"),
        ("captions.csv:12", "bad_row"),
        ("captions.csv:13", "bad_row"),
        ("captions.csv:15", "missing_label"),
    ]
    details = [r.get("detail", "") for r in rejected(out)]
    assert "line 3: a quoted cell is not closed on its line" in details[0]
    assert "line 12: 4 cells, the header has 3" in details[1]
    assert "lines 13-14: a quoted cell spans 2 lines" in details[2]
    info, back = read_back(out)
    # The eight rows after the open quote are intact, each with its own caption and label.
    assert {k: (v["texts"], v["label"]) for k, v in back.items()} == {
        "images/g0.png": (["first row"], 0),
        **{f"images/g{i}.png": ([f"row {i}"], 1 - i % 2) for i in range(2, 10)},  # odd: cat (0)
    }
    assert info.class_names == ["cat", "dog"]
    assert user_files(root, "out_csv", "out_jsonl", "out_wds") == sources["before"]


def test_jsonl_lone_surrogate_stray_label_and_exif_orientation(sources):
    root, out = sources["root"], sources["root"] / "out_jsonl"
    assert "Traceback" not in sources["results"]["out_jsonl"].stderr
    assert [(r["key"], r["reason"], r["detail"]) for r in rejected(out)] == [
        ("surrogate", "caption_not_utf8", "\\ud800")
    ]
    report = json.loads((out / "report.json").read_text())
    assert report["labels_ignored"] == 1 and not report["labelled"] and report["converted"] == {"orientation": 1}
    assert "1 label(s) ignored" in sources["results"]["out_jsonl"].stdout
    info, back = read_back(out)
    assert info.class_names is None and sorted(back) == ["j0", "j1", "j2", "j3", "j4", "phone"]
    assert all(row["label"] == -1 for row in back.values())  # no row is labelled
    # Turned upright as its EXIF says: 40 wide and 24 high, as the photo was taken.
    turned = back["phone"]["pixels"].astype(int)
    assert turned.shape == (24, 40, 3) and np.abs(turned - sources["upright"]).mean() < 4
    assert user_files(root, "out_csv", "out_jsonl", "out_wds") == sources["before"]


def test_truncated_tar_and_duplicate_tar_keys_are_said(sources):
    root, out = sources["root"], sources["root"] / "out_wds"
    assert [(r["origin"], r["reason"]) for r in rejected(out)] == [
        ("part-0.tar:s5", "truncated_tar"),
        ("part-1.tar:d", "duplicate_key"),
    ]
    assert rejected(out)[0]["detail"].startswith("the tar is truncated: it ends inside s5.png at byte ")
    _, back = read_back(out)
    assert {k: v["texts"] for k, v in back.items()} == {
        **{f"s{i}": [f"sample {i}"] for i in range(5)},
        "d": ["first d"],  # the first sample of a key, not silently replaced by the second
        "e": ["e"],
    }
    assert back["d"]["image"] == (root / "images" / "g6.png").read_bytes()
    assert user_files(root, "out_csv", "out_jsonl", "out_wds") == sources["before"]


def test_rerun_after_a_source_image_changed_converts_again(sources, tmp_path):
    root = tmp_path / "rerun"
    shutil.copytree(sources["root"] / "images", root / "images")
    rows = [{"key": f"r{i}", "image": f"images/g{i}.png", "caption": f"row {i}"} for i in range(4)]
    write_jsonl(root / "c.jsonl", rows)
    args = ("data", "convert", root / "c.jsonl", root / "out", "--num-shards", 2, "--workers", 1)
    run_tt_process(*args, timeout=HANG)
    first = (root / "out" / "shard-00000-of-00002.tfrecord").read_bytes()
    save_image(str(root / "images" / "g1.png"), pixels(99, 30, 30))  # row 1: shard 1
    before = user_files(root, "out")
    again = run_tt_process(*args, timeout=HANG)
    assert "already complete" not in again.stdout and "1 shard(s) converted again" in again.stdout
    _, back = read_back(root / "out")
    assert back["r1"]["image"] == (root / "images" / "g1.png").read_bytes()
    assert (root / "out" / "shard-00000-of-00002.tfrecord").read_bytes() == first  # unchanged rows
    assert "already complete" in run_tt_process(*args, timeout=HANG).stdout
    assert user_files(root, "out") == before


def test_s3_without_its_package_names_the_s3_extra(tmp_path):
    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed here: s3:// would be reached")
    result = run_tt_process("data", "convert", "s3://bucket/c.jsonl", tmp_path / "out", check=False, timeout=HANG)
    assert_refused(result, "s3://", "pip install 'tt[s3]'")
    assert "gcs" not in result.stderr and not os.path.exists(tmp_path / "out")


# ------------------------------------------------------------------ shards


@pytest.fixture
def shards_copy(tiny_shards, tmp_path):
    """A copy of the session's tiny dataset (2 shards of 48 examples) to damage."""
    copy = tmp_path / "data"
    shutil.copytree(tiny_shards, copy)
    return copy


def _train(data, out, *flags):
    """`tt train` in this process (a CLIP run unless `flags` say another mode)."""
    return run_tt(["train", "--data", str(data), "--out", str(out), "--mode", "clip", *TINY_TRAIN_FLAGS, *flags])


def test_an_empty_shard_is_refused_not_trained_on(shards_copy, tmp_path):
    shard = shards_copy / "shard-00001-of-00002.tfrecord"
    size = shard.stat().st_size
    os.truncate(shard, 0)
    before = tree(tmp_path)
    assert_refused(_train(shards_copy, tmp_path / "run"), "shard-00001-of-00002.tfrecord has 0 bytes", f"{size:,}")
    inspected = run_tt_process("data", "inspect", shards_copy, check=False, timeout=HANG)
    assert_refused(inspected, "shard-00001-of-00002.tfrecord has 0 bytes")
    assert "damaged:" in inspected.stdout
    assert tree(tmp_path) == before
    # A dataset.json of an older tt (no per-shard records): the empty shard is still refused.
    info = json.loads((shards_copy / "dataset.json").read_text())
    old = {k: v for k, v in info.items() if k not in ("shard_examples", "shard_bytes")}
    (shards_copy / "dataset.json").write_text(json.dumps(old))
    before = tree(tmp_path)
    assert_refused(_train(shards_copy, tmp_path / "run"), "shard-00001-of-00002.tfrecord is empty (0 bytes)")
    assert tree(tmp_path) == before


def test_an_edited_num_examples_does_not_drive_epochs(shards_copy, tmp_path):
    info = json.loads((shards_copy / "dataset.json").read_text())
    (shards_copy / "dataset.json").write_text(json.dumps(dict(info, num_examples=1000)))
    before = tree(tmp_path)
    flags = list(TINY_TRAIN_FLAGS)
    del flags[flags.index("--steps") : flags.index("--steps") + 2]
    result = run_tt(["train", "--data", str(shards_copy), "--out", str(tmp_path / "run"), *flags, "--epochs", "1"])
    assert_refused(result, "num_examples 1000, but its shards record 96 examples")
    assert tree(tmp_path) == before


def _unblock_after(fifo, seconds):
    """Opens the FIFO for writing after `seconds`, so that a reader a regression left
    waiting on it wakes up (at end of file) and the test fails instead of hanging."""

    def unblock():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass

    timer = threading.Timer(seconds, unblock)
    timer.start()
    return timer


def test_a_fifo_named_like_a_shard_is_refused_by_every_reader(shards_copy, tmp_path):
    shard = shards_copy / "shard-00001-of-00002.tfrecord"
    shard.unlink()
    os.mkfifo(shard)
    before = tree(tmp_path)
    for args in (
        ("data", "inspect", shards_copy),
        ("data", "inspect", shards_copy / "*.tfrecord"),  # a glob of the files: no dataset.json
        ("data", "tokenizer", shards_copy, tmp_path / "tok.model", "--vocab-size", 40),
    ):
        assert_refused(run_tt_process(*args, check=False, timeout=HANG), "shard-00001-of-00002.tfrecord is a FIFO")
    timer = _unblock_after(str(shard), HANG)
    try:
        assert_refused(_train(shards_copy, tmp_path / "run"), "shard-00001-of-00002.tfrecord is a FIFO")
    finally:
        timer.cancel()
    assert tree(tmp_path) == before


def test_verify_decodes_what_training_decodes(tmp_path):
    """A record whose checksums are valid but whose image is cut: training stops at it, so
    `inspect --verify` (which the training error advises) must find it."""
    from tt_cli.data.tf_shards import write_shards

    good = io.BytesIO()
    Image.fromarray(pixels(0, 32, 32)).save(good, "PNG")
    jpeg = io.BytesIO()
    Image.fromarray(pixels(1, 64, 64)).save(jpeg, "JPEG")
    cut = jpeg.getvalue()[: len(jpeg.getvalue()) // 2]  # header intact, pixels not
    rows = [
        {"image": good.getvalue(), "texts": ["fine"], "key": "good"},
        {"image": cut, "texts": ["cut"], "key": "cut"},
    ]
    data = write_shards(str(tmp_path / "data"), rows, num_shards=1, source="test")
    before = tree(tmp_path)
    assert run_tt_process("data", "inspect", data, timeout=HANG).returncode == 0  # the header alone is fine
    verified = run_tt_process("data", "inspect", data, "--verify", check=False, timeout=HANG)
    assert_refused(verified, "1 image(s) that training cannot decode; first: key 'cut'", "truncated_image")
    assert tree(tmp_path) == before


# ------------------------------------------------------------------ embeddings and few-shot (TensorFlow)


@pytest.mark.slow
def test_embeddings_are_matched_to_their_tower_by_its_weights(tiny_shards, tiny_vit_preset, tmp_path):
    import keras_hub

    from models import PretrainedTower
    from tt_cli.data.lockstep import tower_fingerprint

    preset, h = tmp_path / "tower", tmp_path / "h"
    shutil.copytree(tiny_vit_preset, preset)
    result = run_tt(["data", "embed", tiny_shards, "--pretrained", str(preset), "--out", str(h)])
    assert result.exit_code == 0, result.output
    made = json.loads((h / "dataset.json").read_text())["h_embedding"]
    assert made["weights_sha256"] == tower_fingerprint(PretrainedTower.from_preset(str(preset)))

    # Retrained in place: the same directory, new weights.
    backbone = keras_hub.models.Backbone.from_preset(str(preset))
    for variable in backbone.weights:
        variable.assign(variable + 0.01)
    backbone.save_to_preset(str(preset))
    retrained = tower_fingerprint(PretrainedTower.from_preset(str(preset)))
    assert retrained != made["weights_sha256"]
    before = user_files(tmp_path, "run")
    words = ("other weights", made["weights_sha256"], retrained)
    with_h = ["--mode", "3t", "--pretrained", str(preset), "--embeddings", str(h)]
    assert_refused(_train(tiny_shards, tmp_path / "run", *with_h), *words)
    bench = ["bench", "--scale", "tiny", "--modes", "3t", "--pretrained", str(preset), "--batch-size", "4"]
    assert_refused(run_tt([*bench, "--data", tiny_shards, "--embeddings", str(h)]), *words)
    # Embedding again with the retrained tower is another plan: its output is replaced only on request.
    assert_refused(run_tt(["data", "embed", tiny_shards, "--pretrained", str(preset), "--out", str(h)]), "--overwrite")
    assert user_files(tmp_path, "run") == before

    # A folder an older tt made (no fingerprint) cannot be told from one of a retrained tower.
    info = json.loads((h / "dataset.json").read_text())
    del info["h_embedding"]["weights_sha256"]
    (h / "dataset.json").write_text(json.dumps(info))
    before = user_files(tmp_path, "run", "run2")
    assert_refused(_train(tiny_shards, tmp_path / "run2", *with_h), "records no fingerprint", "tt data embed")
    assert user_files(tmp_path, "run", "run2") == before


@pytest.mark.slow
def test_fewshot_matches_classes_by_name(tiny_run, tmp_path):
    """A test set that lacks one of the training set's classes numbers the others
    differently (indices of its own sorted class names): scores must be of the classes
    matched by name, as with the complete test set; an unknown class is refused."""
    from test_eval_cli import CLASSES, shape_image, write_examples

    from tt_cli.eval import fewshot
    from tt_cli.eval.encode import encode_images
    from tt_cli.run_dir import load_run

    rng = np.random.default_rng(5)
    train_labels = np.arange(30) % 3
    write_examples(str(tmp_path / "train"), [shape_image(y, rng) for y in train_labels], train_labels, [["x"]] * 30)
    test_labels = np.arange(12) % 3
    test_images = [shape_image(y, rng) for y in test_labels]
    kept = [i for i, y in enumerate(test_labels) if CLASSES[y] != "green square"]
    names = sorted(c for c in CLASSES if c != "green square")  # the test set's own class names
    own = np.array([names.index(CLASSES[test_labels[i]]) for i in kept])
    write_examples(str(tmp_path / "test"), [test_images[i] for i in kept], own, [["x"]] * len(kept))
    info = json.loads((tmp_path / "test" / "dataset.json").read_text())
    (tmp_path / "test" / "dataset.json").write_text(json.dumps(dict(info, class_names=names)))

    run = tiny_run("lit")
    before = tree(tmp_path), tree(run)
    out = tmp_path / "fewshot.json"
    args = ["eval", "fewshot", run, "--train-data", str(tmp_path / "train"), "--data", str(tmp_path / "test")]
    result = run_tt([*args, "--shots", "10", "--seeds", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    top1 = json.loads(out.read_text())["models"][0]["shots"][0]["top1"]

    # Independently: the probe on every training image (10 shots of 10 per class), scored on
    # the kept test images against their classes in the training set's numbering.
    model = load_run(run).model
    train_x = encode_images(model, str(tmp_path / "train"), show_progress=False).embeddings
    test_x = encode_images(model, str(tmp_path / "test"), show_progress=False).embeddings
    predicted = fewshot.predict(fewshot.fit_ridge(train_x, train_labels, 3), test_x)
    assert (own != test_labels[kept]).all()  # the two sets number every kept class differently
    assert top1 == pytest.approx(np.mean(predicted == test_labels[kept]))

    unknown = dict(info, class_names=["blue triangle", "purple hexagon"])
    (tmp_path / "test" / "dataset.json").write_text(json.dumps(unknown))
    assert_refused(run_tt([*args, "--shots", "10"]), "'purple hexagon'", "not among the 3 classes")
    (tmp_path / "test" / "dataset.json").write_text(json.dumps(dict(info, class_names=names)))
    assert (user_files(tmp_path, "fewshot.json", ".tt-manifest.json"), tree(run)) == before  # --json is tt's
