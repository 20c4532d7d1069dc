"""TFDS datasets as tt data (`--data tfds:NAME:SPLIT`), built-in benchmark names, `tt eval suite`.

Two real TFDS datasets are built here by `tfds.core.GeneratorBasedBuilder`s (no mock data): a
labelled set of coloured squares and a set of images with one to seven captions each. Training,
`tt data embed`, zero-shot, retrieval and the suite read them where they are and must give the
numbers they give on the same data converted to shards by `tt data convert tfds:...` (one shard:
TFDS's record order, so batches are equal and the numbers exact within this process).
"""

import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY_TRAIN_FLAGS, run_tt

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
SHAPES_NAME, CAPTIONS_NAME = "tt_test_squares", "tt_test_captions"
SHAPES, CAPTIONS = f"tfds:{SHAPES_NAME}:test", f"tfds:{CAPTIONS_NAME}:test"


def _square(rng, colour, size=32):
    image = np.full((size, size, 3), 128, np.uint8)
    side = int(rng.integers(10, 20))
    top, left = rng.integers(0, size - side, 2)
    image[top : top + side, left : left + side] = COLOURS[colour]
    return image + rng.integers(0, 12, image.shape, dtype=np.uint8)


def _build_datasets(data_dir):
    import tensorflow_datasets as tfds

    names = list(COLOURS)

    class TtTestSquares(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "image": tfds.features.Image(shape=(32, 32, 3)),
                "label": tfds.features.ClassLabel(names=names),
                "file_name": tfds.features.Text(),
            }
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(48, 1), "test": self._generate_examples(40, 2)}

        def _generate_examples(self, count, seed):
            rng = np.random.default_rng(seed)
            for i in range(count):
                label = i % len(names)
                yield f"{seed}-{i}", {"image": _square(rng, names[label]), "label": label, "file_name": f"sq{i}.png"}

    class TtTestCaptions(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "image": tfds.features.Image(shape=(32, 32, 3)),
                "image/id": np.int64,
                "captions": tfds.features.Sequence({"text": np.str_, "id": np.int64}),
            }
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(48, 3), "test": self._generate_examples(24, 4)}

        def _generate_examples(self, count, seed):
            rng = np.random.default_rng(seed)
            for i in range(count):
                colour = names[i % len(names)]
                # 1 to 7 captions: images with more than five test the five-captions rule.
                texts = [f"a {colour} square number {i} view {j}" for j in range(1 + i % 7)]
                example = {"image": _square(rng, colour), "image/id": 1000 + i}
                example["captions"] = {"text": texts, "id": list(range(len(texts)))}
                yield f"{seed}-{i}", example

    for builder in (TtTestSquares(data_dir=data_dir), TtTestCaptions(data_dir=data_dir)):
        builder.download_and_prepare()


@pytest.fixture(scope="session")
def tfds_data(tmp_path_factory):
    """(TFDS data dir with both datasets built, {name: the same split converted to one shard})."""
    data_dir = str(tmp_path_factory.mktemp("tfds_data"))
    _build_datasets(data_dir)
    out = tmp_path_factory.mktemp("tfds_shards")
    sources = {"squares": SHAPES, "captions": CAPTIONS, "captions_train": f"tfds:{CAPTIONS_NAME}:train"}
    # One process converts all three, through TensorFlow, without the `tfrecord` package; the
    # builders are not defined there: TFDS reads them from their files, as it would any dataset.
    script = (
        "import sys\nfrom click.testing import CliRunner\nfrom tt_cli.main import cli\n"
        + "".join(
            f"r = CliRunner().invoke(cli, ['data', 'convert', {src!r}, {str(out / name)!r}, '--num-shards', '1', "
            f"'--tfds-data-dir', {data_dir!r}])\nassert r.exit_code == 0, r.output\nprint(r.output)\n"
            for name, src in sources.items()
        )
        + "print('tfrecord loaded:', 'tfrecord' in sys.modules, 'tensorflow loaded:', 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tfrecord loaded: False tensorflow loaded: True" in done.stdout
    return data_dir, {name: str(out / name) for name in sources}


# --- fast: names, fields, class lists (no TensorFlow) ---


def _tfds_package_file(*parts):
    """A file TFDS ships, found without importing TFDS (which imports TensorFlow)."""
    return os.path.join(importlib.util.find_spec("tensorflow_datasets").submodule_search_locations[0], *parts)


def test_names_fields_and_builtin_class_lists():
    from tt_cli.data import classnames, tfds_catalog
    from tt_cli.errors import InvalidValueError
    from tt_cli.eval import suite

    name = tfds_catalog.parse_name("tfds:coco_captions/2014:test")
    assert (name.name, name.config, name.split) == ("coco_captions", "2014", "test")
    assert str(name) == "tfds:coco_captions/2014:test"
    for bad in ("tfds:cifar10", "tfds:Cifar10:test", "tfds:cifar10:train[:10%]"):
        with pytest.raises(InvalidValueError, match="tfds:"):
            tfds_catalog.parse_name(bad)
    assert tfds_catalog.parse_fields("caption=captions/text,key=id") == tfds_catalog.Fields(
        texts="captions/text", key="id"
    )
    with pytest.raises(InvalidValueError, match="FIELD=FEATURE"):
        tfds_catalog.parse_fields("caption")
    assert "--manual_dir" in tfds_catalog.prepare_hint(tfds_catalog.parse_name("tfds:imagenet2012:validation"))

    # ImageNet: 1,000 names in the order of the WordNet ids TFDS labels imagenet2012 with.
    wnids, names = classnames.imagenet_wnids_and_names()
    with open(_tfds_package_file("datasets", "imagenet2012", "labels.txt")) as f:
        assert list(wnids) == f.read().split()
    assert len(names) == 1000 and (names[0], names[134], names[517], names[999]) == (
        "tench",
        "crane bird",
        "construction crane",
        "toilet paper",
    )
    for subset, first in (("imagenet_a", "stingray"), ("imagenet_r", "goldfish")):
        label_map = classnames.subset_label_map(subset)
        assert sorted(v for v in label_map if v >= 0) == list(range(200))
        assert classnames.class_names("imagenet1k", subset)[0] == first
    # The other lists against the label names TFDS ships, where those are words.
    with open(_tfds_package_file("image_classification", "food-101_classes.txt")) as f:
        assert classnames.class_names("food101") == [n.replace("_", " ") for n in f.read().split()]
    with open(_tfds_package_file("image_classification", "caltech101_labels.txt")) as f:
        tfds_caltech = f.read().split()
    ours = classnames.class_names("caltech101")
    assert len(ours) == 102 and [ours[tfds_caltech.index(n)] for n in ("faces", "faces_easy", "leopards")] == [
        "off-center face",
        "centered face",
        "leopard",
    ]
    counts = {"cifar10": 10, "cifar100": 100, "oxford_iiit_pet": 37, "oxford_flowers102": 102, "dtd": 47}
    assert {k: len(classnames.class_names(k)) for k in counts} == counts
    assert {k: len(classnames.templates_for(k)) for k in ("imagenet1k", "cifar", "caltech101", "dtd")} == {
        "imagenet1k": 80,
        "cifar": 18,
        "caltech101": 34,
        "dtd": 8,
    }
    # Every catalog entry's lists exist; every suite task names a catalog dataset.
    for entry in tfds_catalog.CATALOG.values():
        assert entry.classes is None or classnames.class_names(entry.classes, entry.label_subset)
        assert entry.templates is None or classnames.templates_for(entry.templates)
    assert {tfds_catalog.parse_name(t.data).name for t in suite.TASKS.values()} <= set(tfds_catalog.CATALOG)
    with pytest.raises(InvalidValueError, match="not one of"):
        suite.parse_tasks("imagenet1k,mnist")


def test_feature_maps_of_tfds_records():
    """How a TFDS record's features become tt's: guessed names, refused kinds (no TensorFlow)."""
    from tt_cli.data import tfds_source
    from tt_cli.data.tfds_catalog import Fields, parse_name
    from tt_cli.errors import InvalidValueError

    features = {
        "image": ("string", 0),
        "captions/text": ("string", 1),
        "image/id": ("int64", 0),
        "bbox": ("float32", 2),
    }
    guessed = tfds_source._default_fields(features)
    assert guessed == Fields(texts="captions/text", key="image/id")
    name = parse_name("tfds:some_set:test")
    with pytest.raises(InvalidValueError, match="no feature 'label'.*tfds_fields"):
        tfds_source._record_fields(name, Fields(label="label"), features, None)
    with pytest.raises(InvalidValueError, match="'bbox' .* cannot be the texts"):
        tfds_source._record_fields(name, Fields(texts="bbox"), features, None)


@pytest.mark.slow  # (TensorFlow's import, when no earlier test made it)
def test_tfds_records_parse_like_shards():
    """A 1,000-way label renumbered onto a subset, an integer key, captions as a list; absent fields."""
    import tensorflow as tf

    from tt_cli.data import schema, tfds_source
    from tt_cli.data.tf_schema import parse_example
    from tt_cli.data.tfds_catalog import Fields, parse_name

    features = {"image": ("string", 0), "captions/text": ("string", 1), "image/id": ("int64", 0)}
    name = parse_name("tfds:some_set:test")
    fields = tfds_source._record_fields(
        name,
        Fields(texts="captions/text", key="image/id", label="y"),
        features | {"y": ("int64", 0)},
        label_map=(-1, 0, -1, 1),
    )
    feature = tf.train.Feature
    record = tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": feature(bytes_list=tf.train.BytesList(value=[b"png"])),
                "captions/text": feature(bytes_list=tf.train.BytesList(value=[b"a", b"b"])),
                "image/id": feature(int64_list=tf.train.Int64List(value=[42])),
                "y": feature(int64_list=tf.train.Int64List(value=[3])),
            }
        )
    ).SerializeToString()
    keys = (schema.IMAGE, schema.TEXTS, schema.LABEL, schema.KEY)
    parsed = {k: v.numpy() for k, v in parse_example(record, keys, fields=fields).items()}
    assert parsed[schema.IMAGE] == b"png" and list(parsed[schema.TEXTS]) == [b"a", b"b"]
    assert (parsed[schema.LABEL], parsed[schema.KEY]) == (1, b"42")
    # A dataset without captions or labels reads as a shard without them.
    bare = tfds_source._record_fields(name, Fields(), features, None)
    parsed = parse_example(record, keys, fields=bare)
    assert parsed[schema.TEXTS].shape == (0,) and int(parsed[schema.LABEL]) == schema.NO_LABEL


def test_help_and_tf_free_modules_do_not_load_tensorflow_datasets():
    code = (
        "import sys, tt_cli.main, tt_cli.data.schema, tt_cli.data.tfds_catalog, tt_cli.data.classnames, "
        "tt_cli.eval.templates\nprint(sorted(m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


# --- slow: the real datasets ---


def _eval(args, tmp_path, name):
    path = str(tmp_path / f"{name}.json")
    result = run_tt([*args, "--json", path])
    assert result.exit_code == 0, result.output
    with open(path) as f:
        return json.load(f), result.output


@pytest.mark.slow
def test_eval_and_suite_on_tfds_equal_the_converted_shards(tfds_data, tiny_run, tmp_path):
    data_dir, shards = tfds_data
    run = tiny_run("clip")
    tfds_dir = ["--tfds-data-dir", data_dir]
    metrics = ("top1", "top5", "mean_per_class_recall")

    on_tfds, _ = _eval(["eval", "zero-shot", run, "--data", SHAPES, *tfds_dir], tmp_path, "zs_tfds")
    on_shards, _ = _eval(["eval", "zero-shot", run, "--data", shards["squares"]], tmp_path, "zs_shards")
    assert on_tfds["num_examples"] == on_shards["num_examples"] == 40
    assert [on_tfds["models"][0][k] for k in metrics] == [on_shards["models"][0][k] for k in metrics]

    # The features named (as for any dataset), though tt finds these usual names by itself.
    fields = ["--tfds-fields", "image=image,caption=captions/text,key=image/id"]
    on_tfds_r, _ = _eval(["eval", "retrieval", run, "--data", CAPTIONS, *tfds_dir, *fields], tmp_path, "r_tfds")
    on_shards_r, _ = _eval(["eval", "retrieval", run, "--data", shards["captions"]], tmp_path, "r_shards")
    recalls = [k for k in on_tfds_r["models"][0] if "_R@" in k]
    assert len(recalls) == 6
    assert [on_tfds_r["models"][0][k] for k in recalls] == [on_shards_r["models"][0][k] for k in recalls]
    # Five captions per image: 24 images with 1..7 captions each (84), 72 counted.
    assert on_tfds_r["num_captions"] == on_shards_r["num_captions"] == sum(min(1 + i % 7, 5) for i in range(24))
    assert "first 5" in on_tfds_r["captions_per_image"]

    # The built-in names in the label order of TFDS's builders (CLIP renamed two flowers).
    import tensorflow_datasets as tfds

    from tt_cli.data import classnames

    def norm(name):
        return name.lower().replace("_", " ").replace("-", " ")

    imagenet = tfds.builder("imagenet2012", data_dir=data_dir, try_gcs=False).info.features["label"].names
    assert tuple(imagenet) == classnames.imagenet_wnids_and_names()[0]  # the synsets TFDS reports, in order
    renamed = {"oxford_flowers102": [("pink-yellow dahlia?", "pink and yellow dahlia"), ("ball moss", "air plant")]}
    for name in ("oxford_iiit_pet", "dtd", "oxford_flowers102"):
        theirs = tfds.builder(name, data_dir=data_dir, try_gcs=False).info.features["label"].names
        ours = classnames.class_names(name)
        assert len(ours) == len(theirs)
        assert [(a, b) for a, b in zip(theirs, ours) if norm(a) != norm(b)] == renamed.get(name, [])

    tasks = f"zeroshot={SHAPES},retrieval={CAPTIONS},imagenet1k"
    started = time.time()
    rows, output = _eval(["eval", "suite", run, "--tasks", tasks, *tfds_dir], tmp_path, "suite")
    said = " ".join(output.split())  # as printed, without the console's line breaks
    assert "skipped imagenet1k: tfds:imagenet2012:validation: not prepared" in said
    assert f"tfds build imagenet2012 --data_dir {data_dir}" in said
    assert time.time() - started < 300  # (a hang, not a timing)
    # CLIP_benchmark's result format: one row per (model, dataset).
    assert [row["task"] for row in rows] == ["zeroshot_classification", "zeroshot_retrieval"]
    for row in rows:
        assert {"dataset", "model", "pretrained", "task", "metrics", "language"} <= set(row)
        assert all(isinstance(row[k], str) for k in ("dataset", "model", "pretrained", "task", "language"))
        assert all(isinstance(v, float) and 0 <= v <= 1 for v in row["metrics"].values())
    classification, retrieval = rows
    assert set(classification["metrics"]) == {"acc1", "acc5", "mean_per_class_recall"}
    assert [classification["metrics"][k] for k in ("acc1", "acc5", "mean_per_class_recall")] == [
        on_tfds["models"][0][k] for k in metrics
    ]
    assert set(retrieval["metrics"]) == {f"{d}_retrieval_recall@{k}" for d in ("image", "text") for k in (1, 5, 10)}
    for k in (1, 5, 10):  # CLIP_benchmark's image retrieval is text->image, its text retrieval image->text
        assert retrieval["metrics"][f"image_retrieval_recall@{k}"] == on_tfds_r["models"][0][f"text_to_image_R@{k}"]
        assert retrieval["metrics"][f"text_retrieval_recall@{k}"] == on_tfds_r["models"][0][f"image_to_text_R@{k}"]


@pytest.mark.slow
def test_train_and_embed_on_tfds_equal_the_converted_shards(tfds_data, tiny_vit_preset, tmp_path):
    import tensorflow as tf

    from tt_cli.data import schema
    from tt_cli.data.tfds_catalog import TfdsOptions

    data_dir, shards = tfds_data
    train_split = f"tfds:{CAPTIONS_NAME}:train"
    flags = ["--mode", "clip", *TINY_TRAIN_FLAGS]
    runs = {}
    for name, data in (("tfds", [train_split, "--tfds-data-dir", data_dir]), ("shards", [shards["captions_train"]])):
        runs[name] = str(tmp_path / name)
        result = run_tt(["train", "--data", *data, "--out", runs[name], *flags])
        assert result.exit_code == 0, result.output
    losses = {
        name: [json.loads(line)["loss"] for line in open(os.path.join(run, "metrics.jsonl"))]
        for name, run in runs.items()
    }
    assert len(losses["tfds"]) >= 2
    np.testing.assert_allclose(losses["tfds"], losses["shards"], rtol=1e-5)
    record = json.load(open(os.path.join(runs["tfds"], "run.json")))
    assert record["dataset"]["tfds"] == {"name": CAPTIONS_NAME, "config": None, "split": "train", "version": "1.0.0"}
    assert record["config"]["tfds_data_dir"] == data_dir
    # A resume on another split is refused by the fingerprint (name, config, split, version).
    other = run_tt(["train", "--data", CAPTIONS, "--tfds-data-dir", data_dir, "--out", runs["tfds"], *flags])
    assert other.exit_code == 2 and "--data" in other.output

    # The training stream resumes exactly: batches from step 2 on equal those of a straight read.
    from tt_cli.data.pipeline import train_dataset
    from tt_cli.data.text_tokenizer import TextTokenizer

    files, info = schema.resolve_shards(train_split, TfdsOptions(data_dir))
    tokenizer = TextTokenizer(os.path.join(runs["tfds"], "tokenizer.model"), 12)

    def batches(count, start_step=0):
        dataset = train_dataset(files, 8, (32, 32), tokenizer, seed=3, start_step=start_step, fields=info.fields)
        return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(count)]

    for straight, resumed in zip(batches(5)[2:], batches(3, start_step=2)):
        for key in ("image", "tokens"):
            np.testing.assert_array_equal(straight[key], resumed[key])

    # tt data embed: the same keys and embeddings from the TFDS split and from its shards.
    embedded = {}
    for name, data in (("tfds", [train_split, "--tfds-data-dir", data_dir]), ("shards", [shards["captions_train"]])):
        out = str(tmp_path / f"h_{name}")
        result = run_tt(["data", "embed", *data, "--pretrained", tiny_vit_preset, "--out", out, "--batch-size", "16"])
        assert result.exit_code == 0, result.output
        info = schema.read_info(out)
        records = tf.data.TFRecordDataset([os.path.join(out, n) for n in info.shards])
        parsed = [tf.train.Example.FromString(r) for r in records.as_numpy_iterator()]
        embedded[name] = (
            [p.features.feature["key"].bytes_list.value[0] for p in parsed],
            np.array([p.features.feature["h_embedding"].float_list.value for p in parsed]),
        )
    assert embedded["tfds"][0] == embedded["shards"][0] and len(embedded["tfds"][0]) == 48
    assert embedded["tfds"][0][0].isdigit()  # the dataset's own image/id
    np.testing.assert_allclose(embedded["tfds"][1], embedded["shards"][1], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_unprepared_dataset_is_one_line_without_network(tiny_run, tmp_path):
    """Offline as here, and with no socket opened: a named but unprepared dataset fails at once."""
    empty = str(tmp_path / "no_tfds")
    os.makedirs(empty)
    code = (
        "import sys\n"
        "attempts = []\n"
        "sys.addaudithook(lambda event, args: attempts.append(event) if event.startswith('socket.') else None)\n"
        "from tt_cli.main import cli\n"
        "try:\n    cli()\nfinally:\n    print('network attempts:', attempts)\n"
    )
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", code, "eval", "zero-shot", tiny_run("clip"), "--data", "tfds:imagenet2012:validation"]
        + ["--tfds-data-dir", empty],
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.time() - started
    assert done.returncode == 2 and "network attempts: []" in done.stdout, (done.stdout, done.stderr[-2000:])
    assert elapsed < 60  # catches a hang (it takes a few seconds: TensorFlow's import)
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: tfds:imagenet2012:validation: not prepared in {empty}; prepare it with: tfds build imagenet2012 "
        f"--data_dir {empty} --manual_dir DIR (with ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
        "image-net.org in DIR)."
    ]
    assert "Traceback" not in done.stderr
