"""What a report shows of one run's evaluation: the scores the evaluation itself computed.

The galleries and the confusion matrix are drawn from the very similarity matrix and
class probabilities that `tt eval` scores (`tt_cli.eval.retrieval`, `tt_cli.eval.zero_shot`),
from one encoding pass that also made the thumbnails (`encode_images(thumbnails=True)`):
nothing is encoded or decoded twice.

In use (with a trained run and its validation shards):

```python
run = load_run("runs/demo")
evaluation = evaluate_run(run, "shards/val", templates="simple")
evaluation.similarity.shape, len(evaluation.thumbnails)  # ((200, 400), 200)
```
"""

import dataclasses
import os

import numpy as np

from tt_cli.eval import encode, retrieval, zero_shot


@dataclasses.dataclass
class RunEvaluation:
    """One run on one dataset, as the report sections read it."""

    name: str
    thumbnails: list  # JPEG bytes per image, in shard order
    captions: list  # per image, its caption strings
    similarity: np.ndarray = None  # float32 [images, texts]: retrieval's cosine similarities
    texts: list = None  # the similarity's columns: every caption of every image, flattened
    probabilities: np.ndarray = None  # float [images, classes]: zero-shot class probabilities
    labels: np.ndarray = None  # int [images]
    class_names: list = None


def run_name(run):
    return os.path.basename(os.path.normpath(run.path))


def from_encoded(name, images, similarity=None, probabilities=None, class_names=None):
    """A `RunEvaluation` of images encoded with thumbnails and the scores computed from them."""
    texts = retrieval.caption_pairs(images.captions)[0] if similarity is not None else None
    labels = images.labels if probabilities is not None else None
    return RunEvaluation(
        name,
        images.thumbnails,
        images.captions,
        similarity,
        texts,
        probabilities,
        labels,
        list(class_names) if class_names is not None else None,
    )


def evaluate_run(
    run, data, class_names=None, templates=("a photo of a {}.",), batch_size=encode.DEFAULT_BATCH_SIZE, tfds=None
):
    """Retrieval scores when the images have captions, zero-shot probabilities when they have
    labels and `class_names` are given; one encoding pass for both (`tfds`: the options of a
    TFDS dataset `data`)."""
    images = encode.encode_images(
        run.model, data, batch_size, description=f"images ({run_name(run)})", thumbnails=True, tfds=tfds
    )
    similarity = probabilities = None
    if any(images.captions):
        retrieval.check_captions(images.captions, data)
        similarity, _ = retrieval.similarity_matrix(run.model, run.tokenizer, images, batch_size)
    labelled = images.labels.size and not (images.labels == encode.NO_LABEL).any()
    if class_names and labelled:
        zero_shot.check_labels(images.labels, data, len(class_names))
        probabilities = zero_shot.zero_shot_probabilities(
            run.model, run.tokenizer, images, class_names, list(templates), batch_size
        )
    return from_encoded(
        run_name(run), images, similarity, probabilities, class_names if probabilities is not None else None
    )
