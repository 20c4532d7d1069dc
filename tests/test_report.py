"""`tt report` and `tt eval ... --report`: the HTML page parsed back and checked against NumPy.

The run is the shared 4-step `tiny_run("3t")`; the data are `tiny_val_shards` (40 demo
shapes, one shard, so shard order is generation order). The test regenerates those rows
with `shape_rows` and embeds them itself, straight from pixels and strings, so the
galleries' rankings, hit marks, thumbnails and the confusion matrix are checked against
numbers computed here, not by the report's code.
"""

import base64
import html.parser
import io
import json
import os

import numpy as np
import pytest
from conftest import run_tt
from PIL import Image

from tt_cli.demo.shapes import CLASS_NAMES, shape_rows

SAMPLES, SEED = 6, 3
# Independent float64 scores and the pipeline's float32 ones differ by ~1e-6 at most
# (test_eval_cli bounds the embeddings to 1e-5): ranks closer than this may swap.
NEAR_TIE = 1e-4


class Element:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def find(self, tag=None, css_class=None):
        """Every descendant with this tag and/or class, in document order."""
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and (css_class is None or css_class in child.classes):
                found.append(child)
            found += child.find(tag, css_class)
        return found


class Tree(html.parser.HTMLParser):
    """A minimal DOM of the report (the stdlib parser; void tags closed at once)."""

    VOID = {"img", "meta", "br", "hr", "input", "link"}

    def __init__(self, text):
        super().__init__()
        self.root = self.current = Element("document", [], None)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs, self.current)
        self.current.children.append(element)
        if tag not in self.VOID:
            self.current = element

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text += data

    def section(self, section_id):
        (found,) = [s for s in self.root.find("section") if s.attrs.get("id") == section_id]
        return found


def jpeg_pixels(img):
    data = img.attrs["src"].split(",", 1)[1]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"), np.float64)


@pytest.fixture(scope="module")
def truth():
    """The validation rows as generated: pixels, caption lists, labels."""
    rows = list(shape_rows(40, seed=1, image_size=32))
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(r["image"])).convert("RGB")) for r in rows])
    return pixels, [r["texts"] for r in rows], np.array([r["label"] for r in rows])


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_run, tiny_val_shards):
    folder = tmp_path_factory.mktemp("report")
    out = str(folder / "page.html")
    # The bare class name as the prompt: the tiny run's 12 tokens would cut "a photo of a ..." short.
    templates = folder / "templates.txt"
    templates.write_text("{}\n")
    result = run_tt(
        [
            "report",
            tiny_run("3t"),
            "--data",
            tiny_val_shards,
            "--out",
            out,
            "--samples",
            str(SAMPLES),
            "--seed",
            str(SEED),
            "--templates",
            str(templates),
        ]
    )
    assert result.exit_code == 0, result.output
    with open(out, encoding="utf-8") as f:
        return out, Tree(f.read()), result.output


@pytest.fixture(scope="module")
def embeddings(tiny_run, truth):
    """Image, distinct-caption and class embeddings computed here, float64."""
    import tensorflow as tf

    from tt_cli.run_dir import load_run

    pixels, captions, _ = truth
    run = load_run(tiny_run("3t"))
    strings = list(dict.fromkeys(c for cs in captions for c in cs))
    embed_text = lambda texts: run.model.encode_text(run.tokenizer.tokenize(tf.constant(texts))).numpy()
    image = run.model.encode_image(tf.constant(pixels)).numpy().astype(np.float64)
    classes = embed_text(CLASS_NAMES).astype(np.float64)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    return image, strings, embed_text(strings).astype(np.float64), classes, run


def check_ranking(shown, scores, name):
    """`shown` (indices, best first) is the top of `scores`, except where independent scores nearly tie.
    Returns how many positions were decisive."""
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    decisive = 0
    for position, index in enumerate(shown):
        gaps = [abs(ranked[position] - ranked[p]) for p in (position - 1, position + 1) if 0 <= p < len(ranked)]
        if min(gaps) > NEAR_TIE:
            assert index == order[position], (name, position)
            decisive += 1
        else:
            assert abs(scores[index] - ranked[position]) <= NEAR_TIE, (name, position)
    return decisive


def test_run_report_sections_galleries_and_confusion_match_numpy(report, truth, embeddings, tiny_val_shards):
    out, tree, output = report
    pixels, captions, labels = truth
    image, strings, text, classes, run = embeddings
    assert f"report: {out}" in " ".join(output.split())
    ids = [s.attrs["id"] for s in tree.root.find("section")]
    assert ids == ["settings", "curves", "image-to-text", "text-to-image", "zero-shot"]
    assert tree.root.find("script") == [] and "http" not in "".join(i.attrs["src"][:5] for i in tree.root.find("img"))

    settings = {
        div.find("span", "name")[0].text: div.find("span", "value")[0].text
        for div in tree.section("settings").find("div")
        if div.find("span", "name")
    }
    recorded = json.load(open(os.path.join(run.path, "run.json")))
    assert settings["mode"] == "3t" and settings["steps"] == "4" and settings["resolved.scale.image_size"] == "32"
    assert settings["dataset.num_examples"] == str(recorded["dataset"]["num_examples"])
    # One curve per kind of number the run logged (no --val-data: no validation panel).
    logged = {k for line in open(os.path.join(run.path, "metrics.jsonl")) for k in json.loads(line)}
    assert {"loss", "loss_image_text", "accuracy", "t_image_text", "lr", "pairs_per_second"} <= logged
    assert [i.attrs["alt"] for i in tree.section("curves").find("img")] == [
        "Losses",
        "Contrastive accuracy",
        "Temperatures",
        "Learning rate",
        "Pairs per second",
    ]

    # Image -> text: the documented seeded draw, one thumbnail per sampled image.
    gallery = tree.section("image-to-text")
    queries = gallery.find("tr", "query")
    rng = np.random.default_rng(SEED)
    expected_images = np.sort(rng.choice(40, SAMPLES, replace=False))
    expected_captions = np.sort(rng.choice(len(strings), SAMPLES, replace=False))
    assert [int(q.attrs["data-image"]) for q in queries] == expected_images.tolist()
    assert len(gallery.find("img")) == SAMPLES
    similarity = image @ text.T
    decisive = 0
    for query in queries:
        row = int(query.attrs["data-image"])
        thumbnail = jpeg_pixels(query.find("img")[0])
        distance = np.abs(pixels.astype(np.float64) - thumbnail).mean(axis=(1, 2, 3))
        # The right image: JPEG loses detail of the noisy background, far less than another image differs.
        assert np.argmin(distance) == row and distance[row] < 0.5 * np.partition(distance, 1)[1]
        items = query.find("li", "hit") + query.find("li", "miss")
        items.sort(key=lambda li: query.find("li").index(li))
        assert len(items) == 5
        shown = [int(li.attrs["data-caption"]) for li in items]
        assert [li.text.strip() for li in items] == [strings[i] for i in shown]
        decisive += check_ranking(shown, similarity[row], f"image {row}")
        for li, index in zip(items, shown):
            assert ("hit" in li.classes) == (strings[index] in captions[row])
            assert float(li.find("span")[0].text) == pytest.approx(similarity[row, index], abs=2e-3)
    assert decisive >= SAMPLES * 5 // 2

    # Text -> image: five thumbnails per sampled caption; a hit is an image that has the caption.
    gallery = tree.section("text-to-image")
    queries = gallery.find("tr", "query")
    assert [int(q.attrs["data-caption"]) for q in queries] == expected_captions.tolist()
    assert len(gallery.find("img")) == SAMPLES * 5
    decisive = 0
    for query in queries:
        index = int(query.attrs["data-caption"])
        assert query.find("td")[0].text.strip() == strings[index]
        figures = query.find("figure")
        shown = [int(f.attrs["data-image"]) for f in figures]
        decisive += check_ranking(shown, similarity[:, index], f"caption {index}")
        for figure, row in zip(figures, shown):
            assert ("hit" in figure.classes) == (strings[index] in captions[row])
            assert np.argmin(np.abs(pixels - jpeg_pixels(figure.find("img")[0])).mean(axis=(1, 2, 3))) == row
    assert decisive >= SAMPLES * 5 // 2

    # Zero-shot: the matrix counts every image once, rows true class, columns the arg-max.
    cells = [int(td.attrs["data-count"]) for td in tree.section("zero-shot").find("td", "cm")]
    matrix = np.array(cells).reshape(len(CLASS_NAMES), len(CLASS_NAMES))
    assert matrix.sum() == 40 and (matrix.sum(axis=1) == np.bincount(labels, minlength=len(CLASS_NAMES))).all()
    scores = image @ classes.T
    top_two = np.sort(scores, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > NEAR_TIE
    independent = np.zeros_like(matrix)
    np.add.at(independent, (labels, scores.argmax(axis=1)), 1)
    # Rows whose best two classes nearly tie may land in a neighbouring cell, nowhere else.
    assert np.abs(matrix - independent).sum() <= 2 * np.sum(~clear)
    assert clear.sum() >= 30 and len(set(scores.argmax(axis=1))) > 3  # a test that can fail
    # The diagonal is the evaluation's own top-1 (its pessimistic tie rule included).
    from tt_cli.eval.zero_shot import zero_shot_accuracy

    top1 = zero_shot_accuracy(run.model, run.tokenizer, tiny_val_shards, CLASS_NAMES, templates=["{}"])["top1"]
    assert np.trace(matrix) / 40 == pytest.approx(top1, abs=1e-12)
    recall_rows = tree.section("zero-shot").find("tr", "recall")
    assert sorted(int(r.attrs["data-class"]) for r in recall_rows) == list(range(len(CLASS_NAMES)))
    # The whole page stays small: 36 thumbnails of ~1 kB and five curves.
    assert os.path.getsize(out) < 1_000_000


def confusion_counts(tree):
    return [int(td.attrs["data-count"]) for td in tree.section("zero-shot").find("td", "cm")]


@pytest.mark.slow
def test_eval_reports_put_runs_side_by_side_and_own_their_file(tmp_path, report, tiny_run, tiny_val_shards):
    out, run_page, _ = report
    first, second = tiny_run("3t"), tiny_run("clip")
    page = tmp_path / "retrieval.html"
    result = run_tt(
        [
            "eval",
            "retrieval",
            first,
            "--data",
            tiny_val_shards,
            "--ensemble",
            second,
            "--alpha",
            "0.5",
            "--report",
            str(page),
            "--samples",
            "4",
        ]
    )
    assert result.exit_code == 0, result.output
    tree = Tree(page.read_text(encoding="utf-8"))
    assert [s.attrs["id"] for s in tree.root.find("section")] == ["image-to-text", "text-to-image"]
    names = [os.path.basename(first), os.path.basename(second)]
    for section_id, thumbnails in (("image-to-text", 4), ("text-to-image", 4 * 5 * 2)):
        gallery = tree.section(section_id)
        assert [th.text for th in gallery.find("th")][1:] == names
        assert len(gallery.find("img")) == thumbnails
        assert all(len(row.find("td")) >= 3 for row in gallery.find("tr", "query"))
    assert (
        len(tree.section("image-to-text").find("li", "hit") + tree.section("image-to-text").find("li", "miss"))
        == 4 * 5 * 2
    )

    # Zero-shot of two runs side by side, with the run report's prompts: the first run's matrix
    # is the run report's (from the evaluation's own probabilities), the second run's follows.
    templates = os.path.join(os.path.dirname(out), "templates.txt")
    zero_shot_page = tmp_path / "zero_shot.html"
    result = run_tt(
        [
            "eval",
            "zero-shot",
            first,
            second,
            "--data",
            tiny_val_shards,
            "--templates",
            templates,
            "--report",
            str(zero_shot_page),
        ]
    )
    assert result.exit_code == 0, result.output
    tree = Tree(zero_shot_page.read_text(encoding="utf-8"))
    assert [s.attrs["id"] for s in tree.root.find("section")] == ["zero-shot"]
    counts, own = confusion_counts(tree), confusion_counts(run_page)
    assert len(counts) == 2 * len(own) and counts[: len(own)] == own
    assert sum(counts[len(own) :]) == sum(own)  # every image once in each run's matrix

    # The file is tt's: a report replaces its own page, never an input or a file of the user's.
    again = run_tt(["report", first, "--out", out])
    assert again.exit_code == 0, again.output
    assert [s.attrs["id"] for s in Tree(open(out, encoding="utf-8").read()).root.find("section")] == [
        "settings",
        "curves",
    ]
    mine = tmp_path / "notes.html"
    mine.write_text("the user's own")
    for args, words in (
        (["report", first, "--out", str(mine)], "tt did not write it"),
        (["report", first, "--out", os.path.join(first, "run.json")], "is the input"),
        (
            ["report", first, "--data", tiny_val_shards, "--out", os.path.join(tiny_val_shards, "page.html")],
            "lies inside the input",
        ),
        (
            [
                "eval",
                "zero-shot",
                first,
                "--data",
                tiny_val_shards,
                "--report",
                os.path.join(tiny_val_shards, "dataset.json"),
            ],
            "lies inside the input",
        ),
        (["report", str(tmp_path)], "not a run directory"),
    ):
        refused = run_tt(args)
        assert refused.exit_code == 2 and words in refused.output and "Traceback" not in refused.output, args
        assert len(refused.output.strip().splitlines()) == 1
    assert mine.read_text() == "the user's own"
