"""Ranking metrics of zero-shot classification and retrieval, in plain NumPy.

Tie rule (one rule for every metric here): **pessimistic**. A correct entry
that ties with a wrong one is ranked after it, so a tie never counts as a hit.
The rank of the correct answer is the number of wrong candidates whose score is
greater than *or equal to* the best correct score; a query is a hit at k when
that rank is below k. The result is independent of the order of candidates, and
a degenerate model (all scores equal) scores 0, not 1/C.

The rule needs equal things to score *exactly* equal. Embeddings of one caption
or one image computed twice (another batch position, batch size or CPU) can
differ in the last bit, which would break their tie arbitrarily. So the eval
pipeline embeds each distinct caption and image once (`tt_cli.eval.encode`) and
scores each distinct pair of embeddings once (`distinct_scores`): equal inputs
then give bit-identical scores on every machine.

Example:
>>> import numpy as np
>>> scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.2, 0.6]])
>>> topk_accuracy(scores, np.array([0, 1]), ks=(1, 2))
{1: 0.5, 2: 0.5}
>>> sim = np.array([[0.9, 0.8, 0.1], [0.3, 0.2, 0.7]])   # 2 images x 3 captions
>>> pairs = np.array([[0, 0], [0, 1], [1, 2]])            # (image, caption)
>>> recall_at_k(sim, pairs, ks=(1,))
{'image_to_text': {1: 1.0}, 'text_to_image': {1: 1.0}}
"""

import numpy as np


def correct_rank(scores, correct):
    """Pessimistic 0-based rank of the best correct candidate of each query.

    Args:
      scores: float [Q, K], higher is better.
      correct: bool [Q, K], True where a candidate is a correct answer. Every
        query needs at least one (ValueError otherwise).

    Returns:
      int [Q]: how many wrong candidates score at least as high as the best
      correct one.
    """
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if scores.shape != correct.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and correct {correct.shape} must be equal 2-D shapes")
    missing = np.flatnonzero(~correct.any(axis=1))
    if missing.size:
        raise ValueError(f"{missing.size} queries have no correct candidate (first: query {missing[0]})")
    best_correct = np.where(correct, scores, -np.inf).max(axis=1, keepdims=True)
    return np.sum(~correct & (scores >= best_correct), axis=1)


def _one_hot(labels, num_classes):
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be a 1-D array of class ids in [0, {num_classes})")
    return np.arange(num_classes)[None, :] == labels[:, None]


def topk_accuracy(scores, labels, ks=(1, 5)):
    """Fraction of rows whose label is among the k best-scored classes, for each k.

    scores: [N, C] (logits, probabilities or similarities); labels: int [N].
    Returns {k: accuracy}. A k at or above C is trivially 1.0 (the label is always
    among all classes), which is what the field reports for top-5 on < 5 classes.
    """
    scores = np.asarray(scores)
    rank = correct_rank(scores, _one_hot(labels, scores.shape[1]))
    return {k: float(np.mean(rank < k)) for k in ks}


def mean_per_class_recall(scores, labels, num_classes=None):
    """Top-1 recall of each class, averaged over the classes that occur in `labels`.

    Classes absent from `labels` have no recall and are left out of the mean
    (their false positives already lower the recall of the true classes).
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    num_classes = scores.shape[1] if num_classes is None else num_classes
    hits = correct_rank(scores, _one_hot(labels, num_classes)) == 0
    present = np.unique(labels)
    return float(np.mean([hits[labels == c].mean() for c in present]))


def recall_at_k(similarity, image_to_caption_pairs, ks=(1, 5, 10)):
    """Recall@k of image->text and text->image retrieval.

    Args:
      similarity: float [num_images, num_captions], e.g. cosine similarities.
      image_to_caption_pairs: int [P, 2] rows of (image index, caption index):
        the correct partners. An image may have several captions; every image
        and every caption must appear in at least one pair.
      ks: the cut-offs.

    Returns:
      {"image_to_text": {k: r}, "text_to_image": {k: r}}: the fraction of
      queries with at least one correct partner within the top k (pessimistic ties).
    """
    similarity = np.asarray(similarity)
    pairs = np.asarray(image_to_caption_pairs, dtype=np.int64).reshape(-1, 2)
    correct = np.zeros(similarity.shape, dtype=bool)
    correct[pairs[:, 0], pairs[:, 1]] = True
    image_rank = correct_rank(similarity, correct)
    text_rank = correct_rank(similarity.T, correct.T)
    return {
        "image_to_text": {k: float(np.mean(image_rank < k)) for k in ks},
        "text_to_image": {k: float(np.mean(text_rank < k)) for k in ks},
    }


def distinct_rows(array):
    """(the bit-for-bit distinct rows of a 2-D array in first-occurrence order, inverse),
    with `array == distinct[inverse]` row for row."""
    array = np.ascontiguousarray(array)
    index_of, first_rows, inverse = {}, [], np.empty(len(array), dtype=np.int64)
    for row, values in enumerate(array):
        key = values.tobytes()
        if key not in index_of:
            index_of[key] = len(first_rows)
            first_rows.append(row)
        inverse[row] = index_of[key]
    return array[np.array(first_rows, dtype=np.int64)], inverse


def distinct_scores(queries, candidates, score):
    """`score(queries, candidates)` [Q, K], computed once per distinct query and candidate row.

    A matrix product may give two equal rows results that differ in the last bit
    (BLAS blocking depends on a row's position); scoring each distinct row once
    and copying the result makes equal embeddings tie exactly, which the
    pessimistic tie rule relies on.
    """
    query_rows, query_of = distinct_rows(queries)
    candidate_rows, candidate_of = distinct_rows(candidates)
    return np.asarray(score(query_rows, candidate_rows))[query_of][:, candidate_of]


def softmax(logits, axis=-1, repeats=None):
    """Numerically stable softmax in float64.

    `repeats` (int, one per entry along `axis`): how many classes each entry stands
    for, when repeated classes are computed once; each term counts that often in the sum.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    if repeats is None:
        return e / e.sum(axis=axis, keepdims=True)
    shape = [1] * z.ndim
    shape[axis] = -1
    return e / (e * np.asarray(repeats, np.float64).reshape(shape)).sum(axis=axis, keepdims=True)
