"""Image-text retrieval (big_vision's retrieval evaluator; the COCO/Flickr protocol).

Every image of the set is scored against every caption of the set by cosine
similarity. Image->text: for each image, is any of its own captions within the
top k captions? Text->image: for each caption, is its image within the top k
images? Recall@k is the fraction of hits; ties are pessimistic (see metrics).

Five captions per image (`CAPTIONS_PER_IMAGE`): an image's first five captions take part,
as big_vision and CLIP_benchmark count COCO and Flickr30k (COCO's Karpathy test split has
5,000 images with 25,010 captions, 25,000 of them counted), so the numbers compare.

In use (what `tt eval retrieval runs/demo --data shards/val` runs, after a training run):

```python
run = load_run("runs/demo")
retrieval_recall(run.model, run.tokenizer, "shards/val")
# {'image_to_text_R@1': 0.31, ..., 'text_to_image_R@10': 0.88, 'num_images': 200, 'num_captions': 300}
```
"""

import numpy as np

from tt_cli.errors import InvalidValueError
from tt_cli.eval import encode, metrics

KS = (1, 5, 10)
CAPTIONS_PER_IMAGE = 5  # the first five captions of each image count
CAPTIONS_RULE = f"the first {CAPTIONS_PER_IMAGE} of each image (as big_vision and CLIP_benchmark)"


def caption_pairs(captions_per_image, limit=CAPTIONS_PER_IMAGE):
    """Flattens the first `limit` captions of each image; returns (captions [T], pairs int
    [T, 2] of (image, caption)).

    >>> caption_pairs([["a", "b"], ["c"]], limit=1)
    (['a', 'c'], array([[0, 0],
           [1, 1]]))
    """
    texts, pairs = [], []
    for image, captions in enumerate(captions_per_image):
        for caption in captions[:limit]:
            pairs.append((image, len(texts)))
            texts.append(caption)
    return texts, np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def check_captions(captions_per_image, data):
    empty = [i for i, c in enumerate(captions_per_image) if not c]
    if empty:
        raise InvalidValueError(
            f"{data}: {len(empty)} images have no caption (first: row {empty[0]}); "
            "retrieval needs at least one per image."
        )


def retrieval_metrics(similarity, pairs, ks=KS):
    """Flat {"image_to_text_R@k": r, "text_to_image_R@k": r} of a similarity matrix."""
    recall = metrics.recall_at_k(similarity, pairs, ks)
    return {f"{direction}_R@{k}": value for direction, by_k in recall.items() for k, value in by_k.items()}


def subset(similarity, pairs, image_indices):
    """The similarity and pairs of a subset of images and their own captions, re-indexed."""
    image_indices = np.asarray(image_indices)
    keep = np.isin(pairs[:, 0], image_indices)
    captions = pairs[keep, 1]
    new_image = {old: new for new, old in enumerate(image_indices)}
    new_caption = {old: new for new, old in enumerate(captions)}
    new_pairs = np.array([(new_image[i], new_caption[c]) for i, c in pairs[keep]], dtype=np.int64).reshape(-1, 2)
    return similarity[np.ix_(image_indices, captions)], new_pairs


def similarity_matrix(model, tokenizer, images, batch_size=encode.DEFAULT_BATCH_SIZE, show_progress=True):
    """(cosine similarities [I, T], pairs) of already-encoded images against all their captions.

    A caption repeated in the set (by one image or several) is embedded once, and
    identical images share one embedding (`encode`), so repeats tie exactly.
    """
    texts, pairs = caption_pairs(images.captions)
    text = encode.encode_texts(model, tokenizer, texts, batch_size, show_progress, "encoding captions")
    return cosine_similarity(images.embeddings, text), pairs


def cosine_similarity(images, texts, block=1024):
    """float32 [I, T] of normalised embeddings, computed in float64 and rounded.

    Each distinct image row is scored once against each distinct text row and the
    scores are copied to the repeats (`metrics.distinct_scores`): equal embeddings
    give bit-identical scores whatever their position, so their ties are exact.
    The product is accumulated in float64 and rounded to float32, so BLAS summation
    order hardly ever shows in a score; row blocks bound its memory.
    """

    def score(image_rows, text_rows):
        text_rows = np.asarray(text_rows, np.float64).T
        return np.concatenate(
            [
                (np.asarray(image_rows[i : i + block], np.float64) @ text_rows).astype(np.float32)
                for i in range(0, len(image_rows), block)
            ]
        )

    return metrics.distinct_scores(images, texts, score)


def retrieval_recall(
    model, tokenizer, dataset_or_files, ks=KS, batch_size=encode.DEFAULT_BATCH_SIZE, show_progress=False
):
    """Recall@k both ways of an in-memory model
    (the Python API; `tt train` validates with `validation_metrics`).

    `dataset_or_files`: a dataset directory or glob, a list of shard files, or a
    batched `tf.data.Dataset` of {"image" at model.image_size, "texts"}.
    """
    images = encode.encode_images(model, dataset_or_files, batch_size, show_progress)
    check_captions(images.captions, dataset_or_files)
    similarity, pairs = similarity_matrix(model, tokenizer, images, batch_size, show_progress)
    return dict(
        retrieval_metrics(similarity, pairs, ks), num_images=similarity.shape[0], num_captions=similarity.shape[1]
    )
