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
from support.ranking_reference import distinct_inputs, recall_bounds, similarity_error

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


def png_bytes(image):
    png = io.BytesIO()
    Image.fromarray(image).save(png, "PNG")
    return png.getvalue()


def write_shards(directory, num_examples, seed, num_shards=2):
    """A dataset dir like `tt data convert` makes; returns (images, labels, captions)."""
    rng = np.random.default_rng(seed)
    images, labels, captions = [], [], []
    for i in range(num_examples):
        label = i % len(CLASSES)
        images.append(shape_image(label, rng))
        labels.append(label)
        texts = [f"a {CLASSES[label]}"] + ([f"a photo of a {CLASSES[label]} on black"] if i % 2 else [])
        captions.append(texts)
    write_examples(directory, images, labels, captions, num_shards)
    return np.stack(images), np.array(labels), captions


def write_examples(directory, images, labels, captions, num_shards=1):
    """Writes the rows as PNGs into a dataset dir, in row order (contiguous blocks per shard)."""
    import tensorflow as tf

    from tt_cli.data import schema

    os.makedirs(directory, exist_ok=True)
    names = [schema.shard_name(s, num_shards) for s in range(num_shards)]
    writers = [tf.io.TFRecordWriter(os.path.join(directory, n)) for n in names]
    for i, (image, label, texts) in enumerate(zip(images, labels, captions)):
        feature = {
            schema.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png_bytes(image)])),
            schema.TEXTS: tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode() for t in texts])),
            schema.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            schema.KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"img{i}".encode()])),
        }
        # Contiguous blocks per shard, so that file order is row order.
        shard = i * num_shards // len(images)
        writers[shard].write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    for w in writers:
        w.close()
    schema.write_info(
        directory,
        schema.DatasetInfo(
            num_examples=len(images),
            num_shards=num_shards,
            source="synthetic shapes",
            class_names=CLASSES,
            shards=names,
        ),
    )


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


@pytest.mark.slow
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
    similarity = image.astype(np.float64) @ text.astype(np.float64).T

    # The pipeline's embeddings differ from these in the last bits: bound what that can change.
    from tt_cli.eval.encode import encode_images
    from tt_cli.eval.zero_shot import class_embeddings

    pipeline_image = encode_images(run.model, shards, show_progress=False).embeddings
    pipeline_text = class_embeddings(run.model, run.tokenizer, CLASSES, ["a photo of a {}."], show_progress=False)
    np.testing.assert_allclose(pipeline_image, image, atol=1e-5)
    np.testing.assert_allclose(pipeline_text, text, atol=1e-5)
    error = similarity_error(pipeline_image, image, pipeline_text, text)
    correct = labels[:, None] == np.arange(3)[None, :]
    classes = np.arange(3)  # three distinct class names
    low, high = recall_bounds(similarity, correct, classes, 1, error)
    assert low <= model["top1"] <= high
    assert model["top5"] == 1.0  # 3 classes
    per_class = [recall_bounds(similarity[labels == c], correct[labels == c], classes, 1, error) for c in range(3)]
    low, high = np.mean(per_class, axis=0)
    assert low - 1e-12 <= model["mean_per_class_recall"] <= high + 1e-12
    assert model["temperature"] == pytest.approx(float(np.exp(run.model.log_temperatures["image_text"].numpy())))

    # The trainer's entry point gives the same numbers from the in-memory model.
    from tt_cli.eval.zero_shot import zero_shot_accuracy

    direct = zero_shot_accuracy(run.model, run.tokenizer, shards, CLASSES, templates="simple")
    assert {k: direct[k] for k in ("top1", "top5", "mean_per_class_recall")} == {
        k: model[k] for k in ("top1", "top5", "mean_per_class_recall")
    }


@pytest.mark.slow
def test_retrieval_end_to_end_matches_numpy(tmp_path, tiny_run, eval_shards_data):
    shards, (images, _, captions) = eval_shards_data
    run_dir = tiny_run("clip")
    result, output = run_json(tmp_path, "retrieval", run_dir, "--data", shards)
    flat = [c for cs in captions for c in cs]
    owner = np.array([i for i, cs in enumerate(captions) for _ in cs])
    assert result["num_images"] == 24 and result["num_captions"] == len(flat) == 36
    assert "image→text R@1" in output

    # The reference embeds each distinct caption string and each distinct image once,
    # as the pipeline does, so repeated captions tie exactly here too.
    texts, text_id = distinct_inputs(flat)
    pixels = [image.tobytes() for image in images]
    pictures, image_id = distinct_inputs(pixels)
    run, image, text = embed_independently(run_dir, images[[pixels.index(p) for p in pictures]], texts)
    image, text = image[image_id], text[text_id]
    similarity = image.astype(np.float64) @ text.astype(np.float64).T

    # How far the pipeline's embeddings are from these bounds how far its similarities can be.
    from tt_cli.eval.encode import encode_images, encode_texts

    pipeline_image = encode_images(run.model, shards, show_progress=False).embeddings
    pipeline_text = encode_texts(run.model, run.tokenizer, flat, show_progress=False)
    np.testing.assert_allclose(pipeline_image, image, atol=1e-5)
    np.testing.assert_allclose(pipeline_text, text, atol=1e-5)
    error = similarity_error(pipeline_image, image, pipeline_text, text)

    (model,) = result["models"]
    from tt_cli.eval.retrieval import retrieval_recall

    # Same process, same kernels and batch shapes as the CLI: the trainer's entry point agrees exactly.
    direct = retrieval_recall(run.model, run.tokenizer, shards)
    assert direct["num_captions"] == 36 and all(direct[k] == model[k] for k in model if "_R@" in k)
    correct = owner[None, :] == np.arange(len(images))[:, None]
    # The data have repeated captions whose exact ties the pessimistic rule decides.
    assert any(np.sum(text_id == text_id[c]) > 1 for c in range(len(flat)))
    for k in (1, 5, 10):
        low, high = recall_bounds(similarity, correct, text_id, k, error)
        assert low <= model[f"image_to_text_R@{k}"] <= high
        low, high = recall_bounds(similarity.T, correct.T, image_id, k, error)
        assert low <= model[f"text_to_image_R@{k}"] <= high


def retrieval_recall_of(tmp_path, run_dir, shards, batch_size):
    result, _ = run_json(tmp_path, "retrieval", run_dir, "--data", shards, "--batch-size", batch_size)
    (model,) = result["models"]
    return {k: v for k, v in model.items() if "_R@" in k}, result["num_images"], result["num_captions"]


@pytest.mark.slow
def test_retrieval_recall_is_the_same_at_any_batch_size_and_data_order(tmp_path, tiny_run):
    """Repeated captions and repeated images tie exactly however they are batched or ordered."""
    rng = np.random.default_rng(3)
    labels = [i % len(CLASSES) for i in range(12)]
    images = [shape_image(label, rng) for label in labels]
    # Rows 12-14 repeat rows 0, 4 and 8 pixel for pixel (identical PNG bytes).
    images += [images[0], images[4], images[8]]
    labels += [labels[0], labels[4], labels[8]]
    # Every image has "a <class>", shared by all images of its class; some add a second
    # caption, and row 12 has its caption twice.
    captions = [
        [f"a {CLASSES[label]}"] + ([f"a photo of a {CLASSES[label]}"] if i % 2 else [])
        for i, label in enumerate(labels)
    ]
    captions[12] = captions[12] * 2
    in_order = str(tmp_path / "in_order")
    write_examples(in_order, images, labels, captions, num_shards=2)
    # The same examples in another order, each with its captions reversed.
    order = np.random.default_rng(4).permutation(len(images))
    shuffled = str(tmp_path / "shuffled")
    write_examples(
        shuffled,
        [images[i] for i in order],
        [labels[i] for i in order],
        [captions[i][::-1] for i in order],
        num_shards=3,
    )

    run_dir = tiny_run("clip")
    # Exact equality is sound: repeats tie exactly by construction, and distinct inputs of
    # this set score orders of magnitude further apart than another batch size moves them.
    reference = retrieval_recall_of(tmp_path, run_dir, in_order, 128)  # one batch
    assert reference[1:] == (15, 23)
    # Batches of 4 and 7: a repeated image or caption is encoded at another position and
    # in another batch than its first copy, and the shuffled set orders everything anew.
    assert retrieval_recall_of(tmp_path, run_dir, in_order, 4) == reference
    assert retrieval_recall_of(tmp_path, run_dir, shuffled, 7) == reference
    assert retrieval_recall_of(tmp_path, run_dir, shuffled, 128) == reference

    # The repeats share one embedding: row 12 is row 0's, though they were encoded in
    # different batches (rows 0-3 and 12-14).
    from tt_cli.eval.encode import encode_images
    from tt_cli.run_dir import load_run

    encoded = encode_images(load_run(run_dir).model, in_order, batch_size=4, show_progress=False).embeddings
    assert all(np.array_equal(encoded[copy], encoded[first]) for copy, first in ((12, 0), (13, 4), (14, 8)))


@pytest.mark.slow
def test_fewshot_end_to_end_on_a_lit_run(tmp_path, tiny_run, eval_shards_data, eval_train_shards):
    shards, (images, _, _) = eval_shards_data
    run_dir = tiny_run("lit")
    result, output = run_json(
        tmp_path,
        "fewshot",
        run_dir,
        "--train-data",
        eval_train_shards,
        "--data",
        shards,
        "--shots",
        "1,5,20",
        "--seeds",
        "2",
    )
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


@pytest.mark.slow
def test_ensemble_alpha_one_and_zero_reproduce_each_model_and_auto_picks(tmp_path, tiny_run, eval_shards):
    first, second = tiny_run("3t"), tiny_run("lit")
    one, _ = run_json(tmp_path, "zero-shot", first, "--data", eval_shards, "--ensemble", second, "--alpha", "1")
    assert [m["mode"] for m in one["models"]] == ["3t", "lit"]
    for key in ("top1", "top5", "mean_per_class_recall"):
        assert one["ensemble"][key] == one["models"][0][key]

    zero, _ = run_json(tmp_path, "retrieval", first, "--data", eval_shards, "--ensemble", second, "--alpha", "0")
    recall_keys = [k for k in zero["models"][1] if "_R@" in k]
    assert len(recall_keys) == 6
    for key in recall_keys:
        assert zero["ensemble"][key] == zero["models"][1][key]

    auto, output = run_json(
        tmp_path,
        "zero-shot",
        first,
        "--data",
        eval_shards,
        "--ensemble",
        second,
        "--alpha",
        "auto",
        "--templates",
        "simple",
    )
    assert auto["ensemble"]["alpha"] in [i / 10 for i in range(11)]
    assert auto["ensemble"]["alpha_source"].startswith("picked on a held-out half (12 of 24")
    assert auto["num_examples"] == 12 and "picked on a held-out half" in " ".join(output.split())


@pytest.mark.slow
def test_several_runs_side_by_side_equal_each_run_alone(tmp_path, tiny_run, eval_shards):
    clip, three_towers = tiny_run("clip"), tiny_run("3t")
    together, output = run_json(tmp_path, "retrieval", clip, three_towers, "--data", eval_shards)
    assert [m["run"] for m in together["models"]] == [clip, three_towers]
    names = [m["name"] for m in together["models"]]
    assert names == [os.path.basename(clip), os.path.basename(three_towers)]
    assert all(name in output for name in names), output
    # One table, a column per run: each row holds every run's number.
    row = next(line for line in output.splitlines() if "text→image R@10" in line)
    cells = [cell.strip() for cell in row.split("│")[2:-1]]
    assert cells == [f"{100 * m['text_to_image_R@10']:.2f}" for m in together["models"]], row
    for run_dir, model in zip((clip, three_towers), together["models"]):
        (alone,) = run_json(tmp_path, "retrieval", run_dir, "--data", eval_shards)[0]["models"]
        assert {k: v for k, v in model.items() if "_R@" in k} == {k: v for k, v in alone.items() if "_R@" in k}
    assert together["num_images"] == 24

    with_ensemble = invoke("retrieval", clip, three_towers, "--data", eval_shards, "--ensemble", clip)
    assert with_ensemble.exit_code == 2 and "--ensemble combines one RUN" in with_ensemble.output


def test_suite_rows_equal_the_training_time_evaluator_on_the_same_shards(tiny_run, eval_shards, eval_shards_data):
    """`tt eval suite` (a retrieval=DATA task) and the validation that `tt train --val-data`
    runs give one run the same Recall@k on the same shards (the suite's zero-shot tasks use
    CLIP's 80 prompts: slow here; the evaluator's zero-shot uses one)."""
    from tt_cli.eval.suite import run_suite
    from tt_cli.eval.validation import ValidationEvaluator
    from tt_cli.run_dir import load_run

    run_dir = tiny_run("clip")  # the run other fast tests train
    suite = run_suite([run_dir], f"retrieval={eval_shards}")
    (row,) = suite["rows"]
    assert (row["task"], row["model"], row["dataset"]) == (
        "zeroshot_retrieval",
        os.path.basename(run_dir),
        f"retrieval={eval_shards}",
    )
    _, labels, captions = eval_shards_data[1]
    assert suite["skipped"] == [] and (row["tt"]["num_images"], row["tt"]["num_captions"]) == (
        len(labels),
        sum(map(len, captions)),
    )
    run = load_run(run_dir)
    evaluator = ValidationEvaluator.for_shards(eval_shards, templates=["a photo of a {}."])
    assert evaluator.class_names == CLASSES  # from the shards' dataset.json
    expected = evaluator.evaluate(run.model, run.tokenizer)
    for k in (1, 5, 10):
        assert row["metrics"][f"image_retrieval_recall@{k}"] == expected[f"text_to_image_R@{k}"]
        assert row["metrics"][f"text_retrieval_recall@{k}"] == expected[f"image_to_text_R@{k}"]
    assert 0 <= expected["top1"] <= expected["top5"] == 1.0  # 3 classes: the true one is always in the top 5


def test_columns_are_named_by_run_folder_and_told_apart():
    from tt_cli.eval.evaluate import column_names

    assert column_names(["runs/clip", "runs/3t"]) == ["clip", "3t"]
    # Two runs of one name: as much of their paths as differs; one run given twice: numbered.
    assert column_names(["a/run", "b/run", "a/run/"]) == ["a/run", "b/run", "a/run (2)"]


def test_bad_inputs_fail_with_one_line(tmp_path, tiny_run, eval_shards):
    missing = invoke("zero-shot", tmp_path / "nope", "--data", eval_shards)
    assert missing.exit_code == 2 and "no such run directory" in missing.output
    assert "Traceback" not in missing.output and len(missing.output.strip().splitlines()) == 1
    alone = invoke("retrieval", tiny_run("clip"), "--data", eval_shards, "--alpha", "0.5")
    assert alone.exit_code == 2 and "--alpha needs --ensemble" in alone.output
    bad_alpha = invoke(
        "zero-shot", tiny_run("clip"), "--data", eval_shards, "--ensemble", tiny_run("3t"), "--alpha", "2"
    )
    assert bad_alpha.exit_code == 2 and "between 0 and 1" in bad_alpha.output
    no_data = invoke("retrieval", tiny_run("clip"), "--data", tmp_path / "nothing*.tfrecord")
    assert no_data.exit_code == 2 and "no TFRecord shards" in no_data.output
    bad_shots = invoke(
        "fewshot", tiny_run("clip"), "--train-data", eval_shards, "--data", eval_shards, "--shots", "1,x"
    )
    assert bad_shots.exit_code == 2 and "comma-separated" in bad_shots.output
