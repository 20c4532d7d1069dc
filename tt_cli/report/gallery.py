"""Retrieval galleries: for sampled images their top captions, for sampled captions their top images.

Scores are the retrieval evaluation's own cosine similarities (`RunEvaluation.similarity`).
A caption shared by several images is one column per image there, with bit-identical
scores (`tt_cli.eval.encode`); the gallery ranks each distinct caption string once.
Ties keep data order (the first image or caption in the shards ranks first).

- image → text: a sampled image, its own captions, and the `TOP_K` best captions; a
  caption is a *hit* when it is one of the image's own.
- text → image: a sampled caption and the `TOP_K` best images; an image is a *hit*
  when the caption is one of its own.

Sampling (`sample_rows`): `samples` images and `samples` distinct captions drawn
without replacement by NumPy's generator seeded with `seed`, so a report is
reproducible and its size bounded (~`samples` x (1 + TOP_K) thumbnails) whatever
the size of the set. Several runs render side by side, one column each, on the
same samples.

Example:
>>> from tt_cli.report.evaluation import RunEvaluation
>>> captions = [["a red circle"], ["a blue square", "blue"]]
>>> texts = ["a red circle", "a blue square", "blue"]   # the similarity's columns
>>> evaluation = RunEvaluation("demo", thumbnails=[b"", b""], captions=captions, texts=texts,
...     similarity=np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.7]]))
>>> sample = sample_rows(num_images=2, num_captions=3, samples=16, seed=0)
>>> sample.images.tolist(), sample.captions.tolist()
([0, 1], [0, 1, 2])
>>> image_to_text(evaluation, sample.images, k=2)[1]
[Retrieved(index=1, score=0.8, hit=True), Retrieved(index=2, score=0.7, hit=True)]
"""

import dataclasses

import numpy as np

from tt_cli.report.html import escape, image_tag, section

TOP_K = 5


@dataclasses.dataclass(frozen=True)
class Sample:
    images: np.ndarray  # sorted image rows
    captions: np.ndarray  # sorted indices into the distinct caption strings


@dataclasses.dataclass(frozen=True)
class Retrieved:
    index: int  # a distinct caption's index (image → text) or an image row (text → image)
    score: float
    hit: bool


def sample_rows(num_images, num_captions, samples, seed):
    """`samples` image rows and `samples` distinct-caption indices (fewer if the set is smaller)."""
    rng = np.random.default_rng(seed)
    images = np.sort(rng.choice(num_images, min(samples, num_images), replace=False))
    captions = np.sort(rng.choice(num_captions, min(samples, num_captions), replace=False))
    return Sample(images, captions)


def distinct_captions(texts):
    """(distinct caption strings in first-occurrence order, the similarity column of each)."""
    column_of = {}
    for column, text in enumerate(texts):
        column_of.setdefault(text, column)
    return list(column_of), np.array(list(column_of.values()), dtype=np.int64)


def _top(scores, k):
    """Indices of the k best scores of each row, best first, ties in index order."""
    return np.argsort(-np.asarray(scores, np.float64), axis=-1, kind="stable")[..., :k]


def image_to_text(evaluation, image_rows, k=TOP_K):
    """Per sampled image: its k best distinct captions as `Retrieved` (index into the distinct strings)."""
    strings, columns = distinct_captions(evaluation.texts)
    scores = evaluation.similarity[np.ix_(image_rows, columns)]
    return [
        [
            Retrieved(int(j), float(scores[row, j]), strings[j] in evaluation.captions[image])
            for j in _top(scores[row], k)
        ]
        for row, image in enumerate(image_rows)
    ]


def text_to_image(evaluation, caption_indices, k=TOP_K):
    """Per sampled distinct caption: its k best images as `Retrieved` (image rows)."""
    strings, columns = distinct_captions(evaluation.texts)
    result = []
    for index in caption_indices:
        scores = evaluation.similarity[:, columns[index]]
        result.append(
            [Retrieved(int(i), float(scores[i]), strings[index] in evaluation.captions[i]) for i in _top(scores, k)]
        )
    return result


def _mark(hit):
    return "hit" if hit else "miss"


def _caption_list(strings, retrieved):
    items = "".join(
        f'<li class="{_mark(r.hit)}" data-caption="{r.index}">{escape(strings[r.index])} '
        f'<span class="score">{r.score:.3f}</span></li>'
        for r in retrieved
    )
    return f"<ol>{items}</ol>"


def _image_list(evaluation, retrieved):
    figures = "".join(
        f'<figure class="{_mark(r.hit)}" data-image="{r.index}">'
        f"{image_tag(evaluation.thumbnails[r.index], '; '.join(evaluation.captions[r.index]))}"
        f'<figcaption>#{r.index} <span class="score">{r.score:.3f}</span></figcaption></figure>'
        for r in retrieved
    )
    return f'<div class="images">{figures}</div>'


def _header(names, first):
    return (
        "<thead><tr>" + f"<th>{escape(first)}</th>" + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr></thead>"
    )


def gallery_sections(evaluations, samples, seed):
    """The two gallery `<section>`s for [(run name, RunEvaluation)] on one dataset."""
    names = [name for name, _ in evaluations]
    first = evaluations[0][1]
    strings, _ = distinct_captions(first.texts)
    sample = sample_rows(len(first.captions), len(strings), samples, seed)
    note = (
        f"{len(sample.images)} of {len(first.captions)} images and {len(sample.captions)} of {len(strings)} "
        f"distinct captions, drawn with seed {seed}; scores are the retrieval evaluation's cosine similarities; "
        "✓ marks a hit."
    )

    per_run = [image_to_text(e, sample.images) for _, e in evaluations]
    rows = []
    for n, image in enumerate(sample.images):
        own = "".join(f"<li>{escape(c)}</li>" for c in first.captions[image])
        query = (
            f"{image_tag(first.thumbnails[image], '; '.join(first.captions[image]))}<div>#{image}</div>"
            f'<ul class="note">{own}</ul>'
        )
        cells = "".join(f"<td>{_caption_list(strings, retrieved[n])}</td>" for retrieved in per_run)
        rows.append(f'<tr class="query" data-image="{image}"><td>{query}</td>{cells}</tr>')
    image_table = (
        f'<table class="gallery">{_header(names, "image and its captions")}<tbody>{"".join(rows)}</tbody></table>'
    )

    per_run = [text_to_image(e, sample.captions) for _, e in evaluations]
    rows = []
    for n, caption in enumerate(sample.captions):
        cells = "".join(f"<td>{_image_list(e, retrieved[n])}</td>" for (_, e), retrieved in zip(evaluations, per_run))
        rows.append(f'<tr class="query" data-caption="{caption}"><td>{escape(strings[caption])}</td>{cells}</tr>')
    text_table = f'<table class="gallery">{_header(names, "caption")}<tbody>{"".join(rows)}</tbody></table>'
    return [
        section("image-to-text", f"Image → text: top {TOP_K} captions", image_table, note),
        section("text-to-image", f"Text → image: top {TOP_K} images", text_table, note),
    ]
