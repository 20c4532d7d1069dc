"""`tt eval` end to end through the CLI (in-process CliRunner) on tiny trained runs.

Numbers are checked against independent NumPy computations on embeddings the
test computes itself from the raw images, and the ensemble's alpha 1 / alpha 0
against the single models.

Runs come from the shared `tiny_run` fixture (the real `tt train`, 4 steps); the
evaluation shards are written here, with images kept for the reference numbers.
"""

import io
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tt_cli.main import cli

CLASSES = ["red circle", "green square", "blue triangle"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def shape_image(label, rng, size=32):
    """A coloured shape on a dark noisy background: circle, square or triangle."""
    colour = COLOURS[CLASSES[label].split()[0]]
    image = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    cy, cx, r = rng.integers(12, 20), rng.integers(12, 20), rng.integers(6, 10)
    if label == 0:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif label == 1:
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    else:
        mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - cy + r) / 2)
    image[mask] = colour
    return image


def write_shards(directory, num_examples, seed, num_shards=2):
    """A dataset dir like `tt data convert` makes; returns (images, labels, captions)."""
    import tensorflow as tf

    from tt_cli.data import schema

    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    images, labels, captions = [], [], []
    for i in range(num_examples):
        label = i % len(CLASSES)
        images.append(shape_image(label, rng))
        labels.append(label)
        texts = [f"a {CLASSES[label]}"] + ([f"a photo of a {CLASSES[label]} on black"] if i % 2 else [])
        captions.append(texts)
    names = [schema.shard_name(s, num_shards) for s in range(num_shards)]
    writers = [tf.io.TFRecordWriter(os.path.join(directory, n)) for n in names]
    for i, (image, label, texts) in enumerate(zip(images, labels, captions)):
        png = io.BytesIO()
        Image.fromarray(image).save(png, "PNG")
        feature = {
            schema.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png.getvalue()])),
            schema.TEXTS: tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode() for t in texts])),
            schema.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            schema.KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"img{i}".encode()])),
        }
        # Contiguous blocks per shard, so that file order is row order.
        shard = i * num_shards // num_examples
        writers[shard].write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    for w in writers:
        w.close()
    schema.write_info(directory, schema.DatasetInfo(num_examples=num_examples, num_shards=num_shards,
                                                    source="synthetic shapes", class_names=CLASSES, shards=names))
    return np.stack(images), np.array(labels), captions


@pytest.fixture(scope="session")
def eval_shards_data(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("eval_val_shards"))
    return directory, write_shards(directory, 24, seed=1)


@pytest.fixture(scope="session")
def eval_shards(eval_shards_data):
    return eval_shards_data[0]


@pytest.fixture(scope="session")
def eval_train_shards(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("eval_train_shards"))
    write_shards(directory, 30, seed=2)
    return directory


def invoke(*args):
    result = CliRunner().invoke(cli, ["eval", *map(str, args)])
    return result


def run_json(tmp_path, *args):
    out = tmp_path / f"result_{len(os.listdir(tmp_path))}.json"
    result = invoke(*args, "--json", out)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(out.read_text()), result.output


def embed_independently(run_dir, images, texts):
    """Image and text embeddings computed here, straight from pixels and strings."""
    import tensorflow as tf

    from tt_cli.run_dir import load_run

    run = load_run(run_dir)
    image = run.model.encode_image(tf.constant(images)).numpy()
    text = run.model.encode_text(run.tokenizer.tokenize(tf.constant(texts))).numpy()
    return run, image, text


def test_zero_shot_end_to_end_matches_numpy(tmp_path, tiny_run, eval_shards_data):
    shards, (images, labels, _) = eval_shards_data
    run_dir = tiny_run("3t")
    result, output = run_json(tmp_path, "zero-shot", run_dir, "--data", shards, "--templates", "simple")
    (model,) = result["models"]
    assert result["num_examples"] == 24 and result["num_classes"] == 3 and result["num_templates"] == 1
    assert model["mode"] == "3t" and model["step"] == 4
    assert "top-1" in output and "mean per-class recall" in output

    run, image, text = embed_independently(run_dir, images, [f"a photo of a {c}." for c in CLASSES])
    text = text / np.linalg.norm(text, axis=1, keepdims=True)  # one template: mean = itself
    similarity = image @ text.T
    predicted = similarity.argmax(axis=1)
    assert model["top1"] == pytest.approx(np.mean(predicted == labels))
    assert model["top5"] == 1.0  # 3 classes
    recall = np.mean([np.mean(predicted[labels == c] == c) for c in range(3)])
    assert model["mean_per_class_recall"] == pytest.approx(recall)
    assert model["temperature"] == pytest.approx(float(np.exp(run.model.log_temperatures["image_text"].numpy())))

    # The trainer's entry point gives the same numbers from the in-memory model.
    from tt_cli.eval.zero_shot import zero_shot_accuracy

    direct = zero_shot_accuracy(run.model, run.tokenizer, shards, CLASSES, templates="simple")
    assert {k: direct[k] for k in ("top1", "top5", "mean_per_class_recall")} == {
        k: model[k] for k in ("top1", "top5", "mean_per_class_recall")}


def test_retrieval_end_to_end_matches_numpy(tmp_path, tiny_run, eval_shards_data):
    shards, (images, _, captions) = eval_shards_data
    run_dir = tiny_run("clip")
    result, output = run_json(tmp_path, "retrieval", run_dir, "--data", shards)
    flat = [c for cs in captions for c in cs]
    owner = np.array([i for i, cs in enumerate(captions) for _ in cs])
    assert result["num_images"] == 24 and result["num_captions"] == len(flat) == 36
    assert "image→text R@1" in output

    run, image, text = embed_independently(run_dir, images, flat)
    # Image embeddings as the CLI batches them: identical captions tie exactly, and a
    # last-bit difference from another batch size would decide those ties differently.
    from tt_cli.eval.encode import encode_images

    encoded = encode_images(run.model, shards, show_progress=False).embeddings
    np.testing.assert_allclose(encoded, image, atol=1e-5)
    similarity = (encoded.astype(np.float64) @ text.astype(np.float64).T).astype(np.float32)
    (model,) = result["models"]
    from tt_cli.eval.retrieval import retrieval_recall

    direct = retrieval_recall(run.model, run.tokenizer, shards)
    assert direct["num_captions"] == 36 and all(direct[k] == model[k] for k in model if "_R@" in k)
    # Identical captions of different images tie exactly: sort ties wrong-first (pessimistic).
    correct = owner[None, :] == np.arange(len(images))[:, None]
    for k in (1, 5, 10):
        i2t = np.mean([correct[i][np.lexsort((correct[i], -similarity[i]))][:k].any() for i in range(len(images))])
        t2i = np.mean([correct[:, c][np.lexsort((correct[:, c], -similarity[:, c]))][:k].any()
                       for c in range(len(flat))])
        assert model[f"image_to_text_R@{k}"] == pytest.approx(i2t, abs=1e-9)
        assert model[f"text_to_image_R@{k}"] == pytest.approx(t2i, abs=1e-9)


def test_fewshot_end_to_end_on_a_lit_run(tmp_path, tiny_run, eval_shards_data, eval_train_shards):
    shards, (images, _, _) = eval_shards_data
    run_dir = tiny_run("lit")
    result, output = run_json(tmp_path, "fewshot", run_dir, "--train-data", eval_train_shards, "--data", shards,
                              "--shots", "1,5,20", "--seeds", "2")
    rows = result["models"][0]["shots"]
    assert [r["shots"] for r in rows] == [1, 5, 20]
    assert [r["train_images"] for r in rows] == [3, 15, 30]  # 10 per class in the train set
    assert rows[2]["short_classes"] == 3 and "fewer images" in output
    assert all(0.0 <= r["top1"] <= 1.0 and len(r["l2_regs"]) == 2 for r in rows)
    # Same features and same draws: the 20-shot probe (all 30 images) does not depend on the seed.
    assert rows[2]["top1_std"] == 0.0

    # A LiT run embeds images with its locked pretrained tower: normalised h.
    from tt_cli.eval.encode import encode_images
    from tt_cli.run_dir import load_run

    model = load_run(run_dir).model
    h = model.pretrained_tower(images).numpy()
    encoded = encode_images(model, shards, show_progress=False)
    assert np.allclose(encoded.embeddings, h / np.linalg.norm(h, axis=1, keepdims=True), atol=1e-5)


def test_ensemble_alpha_one_and_zero_reproduce_each_model_and_auto_picks(tmp_path, tiny_run, eval_shards):
    first, second = tiny_run("3t"), tiny_run("lit")
    one, _ = run_json(tmp_path, "zero-shot", first, "--data", eval_shards, "--ensemble", second,
                      "--alpha", "1")
    assert [m["mode"] for m in one["models"]] == ["3t", "lit"]
    for key in ("top1", "top5", "mean_per_class_recall"):
        assert one["ensemble"][key] == one["models"][0][key]

    zero, _ = run_json(tmp_path, "retrieval", first, "--data", eval_shards, "--ensemble", second, "--alpha", "0")
    recall_keys = [k for k in zero["models"][1] if "_R@" in k]
    assert len(recall_keys) == 6
    for key in recall_keys:
        assert zero["ensemble"][key] == zero["models"][1][key]

    auto, output = run_json(tmp_path, "zero-shot", first, "--data", eval_shards, "--ensemble", second,
                            "--alpha", "auto", "--templates", "simple")
    assert auto["ensemble"]["alpha"] in [i / 10 for i in range(11)]
    assert auto["ensemble"]["alpha_source"].startswith("picked on a held-out half (12 of 24")
    assert auto["num_examples"] == 12 and "picked on a held-out half" in " ".join(output.split())


def test_bad_inputs_fail_with_one_line(tmp_path, tiny_run, eval_shards):
    missing = invoke("zero-shot", tmp_path / "nope", "--data", eval_shards)
    assert missing.exit_code == 2 and "no such run directory" in missing.output
    assert "Traceback" not in missing.output and len(missing.output.strip().splitlines()) == 1
    alone = invoke("retrieval", tiny_run("clip"), "--data", eval_shards, "--alpha", "0.5")
    assert alone.exit_code == 2 and "--alpha needs --ensemble" in alone.output
    bad_alpha = invoke("zero-shot", tiny_run("clip"), "--data", eval_shards, "--ensemble", tiny_run("3t"),
                       "--alpha", "2")
    assert bad_alpha.exit_code == 2 and "between 0 and 1" in bad_alpha.output
    no_data = invoke("retrieval", tiny_run("clip"), "--data", tmp_path / "nothing*.tfrecord")
    assert no_data.exit_code == 2 and "no TFRecord shards" in no_data.output
    bad_shots = invoke("fewshot", tiny_run("clip"), "--train-data", eval_shards, "--data", eval_shards,
                       "--shots", "1,x")
    assert bad_shots.exit_code == 2 and "comma-separated" in bad_shots.output
