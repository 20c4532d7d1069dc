"""The evaluation metrics against hand-checked cases and independent NumPy references.

The references sort each query's candidates explicitly (ties: wrong before
correct, the documented pessimistic rule) and look for the first correct one,
instead of counting as `tt_cli.eval.metrics` does.
"""

import numpy as np
import pytest

from tt_cli.eval import encode, ensemble, fewshot, metrics, retrieval, zero_shot


def reference_first_correct(scores, correct):
    """Position of the first correct candidate after sorting by score, ties wrong-first."""
    ranks = []
    for row, ok in zip(scores, correct):
        # lexsort: last key is primary. Descending score, then correct after wrong.
        order = np.lexsort((ok.astype(int), -row))
        ranks.append(int(np.flatnonzero(ok[order])[0]))
    return np.array(ranks)


def reference_topk(scores, labels, k):
    correct = np.zeros_like(scores, dtype=bool)
    correct[np.arange(len(labels)), labels] = True
    return float(np.mean(reference_first_correct(scores, correct) < k))


def reference_per_class_recall(scores, labels):
    top1 = []
    for row, label in zip(scores, labels):
        best = row.max()
        # Pessimistic: a hit only when the label is the unique best.
        top1.append(row[label] == best and np.sum(row == best) == 1)
    top1 = np.array(top1)
    return float(np.mean([top1[labels == c].mean() for c in sorted(set(labels.tolist()))]))


def test_topk_hand_checked_with_ties():
    scores = np.array(
        [
            [0.9, 0.1, 0.0, 0.0],  # label 0: rank 0
            [0.5, 0.5, 0.0, 0.0],  # label 1 tied with 0: rank 1 (pessimistic)
            [0.1, 0.2, 0.3, 0.4],  # label 0: rank 3
            [0.2, 0.2, 0.2, 0.2],  # label 2, all tied: rank 3
        ]
    )
    labels = np.array([0, 1, 0, 2])
    assert metrics.topk_accuracy(scores, labels, ks=(1, 2, 3, 4)) == {1: 0.25, 2: 0.5, 3: 0.5, 4: 1.0}
    # Class 0: 1 of 2 hit; class 1: 0 of 1; class 2: 0 of 1.
    assert metrics.mean_per_class_recall(scores, labels) == pytest.approx((0.5 + 0 + 0) / 3)


def test_mean_per_class_recall_differs_from_accuracy_on_imbalance():
    scores = np.eye(3)[[0, 0, 0, 0, 1, 0]]  # predicts class 0 except row 4
    labels = np.array([0, 0, 0, 0, 1, 2])
    assert metrics.topk_accuracy(scores, labels, ks=(1,))[1] == pytest.approx(5 / 6)
    assert metrics.mean_per_class_recall(scores, labels) == pytest.approx((1 + 1 + 0) / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk_and_recall_match_references_on_random_scores_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Few distinct values: many ties.
    scores = rng.integers(0, 4, size=(60, 7)).astype(np.float32)
    labels = rng.integers(0, 7, size=60)
    for k in (1, 2, 5, 7):
        assert metrics.topk_accuracy(scores, labels, ks=(k,))[k] == pytest.approx(reference_topk(scores, labels, k))
    assert metrics.mean_per_class_recall(scores, labels) == pytest.approx(reference_per_class_recall(scores, labels))


def test_topk_agrees_with_argsort_without_ties():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(50, 10))
    labels = rng.integers(0, 10, 50)
    top5 = np.argsort(-scores, axis=1)[:, :5]
    expected = np.mean([label in row for label, row in zip(labels, top5)])
    assert metrics.topk_accuracy(scores, labels, ks=(5,))[5] == pytest.approx(expected)
    assert metrics.topk_accuracy(scores, labels, ks=(1,))[1] == pytest.approx(np.mean(scores.argmax(1) == labels))


def test_recall_at_k_hand_checked_several_captions_ties_and_misses():
    # 3 images, 5 captions: image 0 -> captions 0, 1; image 1 -> 2, 3; image 2 -> 4.
    pairs = np.array([[0, 0], [0, 1], [1, 2], [1, 3], [2, 4]])
    sim = np.array(
        [
            [0.1, 0.9, 0.8, 0.0, 0.0],  # best correct (caption 1) first: hit at 1
            [0.7, 0.6, 0.5, 0.2, 0.9],  # best correct (caption 2, 0.5) behind 3 wrong: hit only at k >= 4
            [0.3, 0.3, 0.3, 0.3, 0.3],  # its caption ties with all 4 wrong ones: rank 4 (pessimistic)
        ]
    )
    r = metrics.recall_at_k(sim, pairs, ks=(1, 4, 5))
    assert r["image_to_text"] == {1: pytest.approx(1 / 3), 4: pytest.approx(2 / 3), 5: 1.0}
    # Text -> image, per caption (column): c0: image 0 has 0.1, wrong 0.7, 0.3 -> rank 2.
    # c1: 0.9 vs 0.6, 0.3 -> 0. c2: image 1 0.5 vs 0.8, 0.3 -> 1. c3: 0.2 vs 0.0, 0.3 -> 1.
    # c4: image 2 0.3 vs 0.0, 0.9 -> 1.
    assert r["text_to_image"] == {1: pytest.approx(1 / 5), 4: 1.0, 5: 1.0}


def test_recall_at_k_matches_reference_on_random_retrieval_sets():
    rng = np.random.default_rng(7)
    num_images = 20
    counts = rng.integers(1, 4, num_images)  # 1-3 captions per image
    pairs = np.array([(i, c) for c, i in enumerate(np.repeat(np.arange(num_images), counts))])
    sim = np.round(rng.normal(size=(num_images, len(pairs))), 1)  # rounded: ties
    correct = np.zeros(sim.shape, dtype=bool)
    correct[pairs[:, 0], pairs[:, 1]] = True
    r = metrics.recall_at_k(sim, pairs, ks=(1, 5, 10))
    for k in (1, 5, 10):
        assert r["image_to_text"][k] == pytest.approx(np.mean(reference_first_correct(sim, correct) < k))
        assert r["text_to_image"][k] == pytest.approx(np.mean(reference_first_correct(sim.T, correct.T) < k))


def test_recall_rejects_an_image_without_captions():
    with pytest.raises(ValueError, match="no correct candidate"):
        metrics.recall_at_k(np.zeros((2, 2)), np.array([[0, 0], [0, 1]]), ks=(1,))


def test_duplicate_captions_differing_in_the_last_bit_tie_after_sharing_one_embedding():
    # Two images share the caption "a photo of a dog"; encoded twice (another batch
    # position or CPU) its copies differ in the last bit of one component.
    texts, pairs = retrieval.caption_pairs([["a photo of a dog"], ["a photo of a dog"]])
    dog = np.array([1.0, 0.0], np.float32)
    text = np.stack([dog, np.nextafter(dog, np.float32(0))])  # [1, 0] and [1 - 2^-24, 0]
    images = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    # Without sharing, image 0 "finds" its own copy first by that last bit.
    broken = retrieval.retrieval_metrics(retrieval.cosine_similarity(images, text), pairs, ks=(1,))
    assert broken["image_to_text_R@1"] == 0.5
    # Sharing one embedding per distinct string (what encode_texts does) makes the tie
    # exact, and a correct caption tied with a wrong one counts against the model.
    shared = encode.share_duplicates(text, texts)
    assert np.array_equal(shared[1], shared[0])
    similarity = retrieval.cosine_similarity(images, shared)
    assert similarity[0, 0] == similarity[0, 1] and similarity[1, 0] == similarity[1, 1]
    assert retrieval.retrieval_metrics(similarity, pairs, ks=(1,)) == {
        "image_to_text_R@1": 0.0,
        "text_to_image_R@1": 0.5,
    }


def test_share_duplicates_copies_the_first_rows_embedding():
    embeddings = np.arange(8, dtype=np.float32).reshape(4, 2)
    shared = encode.share_duplicates(embeddings, [b"a", b"b", b"a", b"c"])
    assert shared.tolist() == [[0, 1], [2, 3], [0, 1], [6, 7]]


def test_equal_embeddings_score_bit_identically_wherever_they_sit():
    # Equal rows at far-apart positions of large matrices, where BLAS blocking differs.
    rng = np.random.default_rng(0)
    images = rng.normal(size=(700, 64)).astype(np.float32)
    texts = rng.normal(size=(900, 64)).astype(np.float32)
    images[650], texts[899] = images[3], texts[1]
    similarity = retrieval.cosine_similarity(
        images / np.linalg.norm(images, axis=1, keepdims=True), texts / np.linalg.norm(texts, axis=1, keepdims=True)
    )
    assert similarity.shape == (700, 900) and similarity.dtype == np.float32
    assert np.array_equal(similarity[650], similarity[3]) and np.array_equal(similarity[:, 899], similarity[:, 1])
    expected = (images.astype(np.float64) / np.linalg.norm(images.astype(np.float64), axis=1, keepdims=True)) @ (
        texts.astype(np.float64) / np.linalg.norm(texts.astype(np.float64), axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(similarity, expected, atol=1e-6)


def test_zero_shot_repeated_class_embedding_and_repeated_images_tie_exactly():
    # Classes 2 and 9 have the same name ("crane" twice in ImageNet), hence one shared embedding.
    rng = np.random.default_rng(1)
    classes = rng.normal(size=(10, 16)).astype(np.float32)
    classes[9] = classes[2]
    images = classes[[2, 9, 4, 2]] + rng.normal(size=(4, 16)).astype(np.float32) * 0.01
    images[3] = images[0]
    probabilities = zero_shot.class_probabilities(images, classes, scale=50.0)
    assert np.array_equal(probabilities[:, 2], probabilities[:, 9])
    assert np.array_equal(probabilities[3], probabilities[0])
    # The same numbers as the plain softmax over all 10 classes, up to rounding.
    plain = metrics.softmax(50.0 * images.astype(np.float64) @ classes.astype(np.float64).T)
    np.testing.assert_allclose(probabilities, plain, rtol=1e-12, atol=1e-15)
    # Images of class 2 or 9 score those two classes exactly equal: never a top-1 hit, always top-2.
    labels = np.array([2, 9, 4, 2])
    assert metrics.topk_accuracy(probabilities, labels, ks=(1, 2)) == {1: 0.25, 2: 1.0}


def test_caption_pairs_and_subset_reindex():
    texts, pairs = retrieval.caption_pairs([["a", "b"], ["c"], ["d", "e"]])
    assert texts == ["a", "b", "c", "d", "e"]
    assert pairs.tolist() == [[0, 0], [0, 1], [1, 2], [2, 3], [2, 4]]
    sim = np.arange(15.0).reshape(3, 5)
    sub, sub_pairs = retrieval.subset(sim, pairs, [0, 2])
    assert sub.tolist() == [[0, 1, 3, 4], [10, 11, 13, 14]]
    assert sub_pairs.tolist() == [[0, 0], [0, 1], [1, 2], [1, 3]]


def test_ensemble_combination_split_and_alpha_pick():
    a, b = np.array([[0.8, 0.2]]), np.array([[0.1, 0.9]])
    assert np.allclose(ensemble.combine(a, b, 1.0), a) and np.allclose(ensemble.combine(a, b, 0.0), b)
    assert np.allclose(ensemble.combine(a, b, 0.25), 0.25 * a + 0.75 * b)
    pick, rest = ensemble.heldout_split(11)
    assert len(pick) == 5 and len(rest) == 6 and sorted(np.concatenate([pick, rest]).tolist()) == list(range(11))
    assert np.array_equal(pick, ensemble.heldout_split(11)[0])  # fixed seed
    alpha, scores = ensemble.best_alpha(lambda x: 1.0 if 0.3 <= x <= 0.6 else 0.0)
    assert alpha == 0.3 and len(scores) == 11  # ties -> the first in the grid


def test_ridge_probe_matches_normal_equations_and_brute_force_leave_one_out():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5))
    labels = np.arange(12) % 3
    y = 2.0 * np.eye(3)[labels] - 1.0
    lam = 0.5
    probe = fewshot.fit_ridge(x, labels, 3, l2_reg=lam)
    # Reference: ridge on centred data via the normal equations; bias from the means.
    xc, yc = x - x.mean(0), y - y.mean(0)
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(5), xc.T @ yc)
    assert np.allclose(probe.weights, w)
    assert np.allclose(probe.bias, y.mean(0) - x.mean(0) @ w)
    # Leave-one-out by refitting without each row.
    brute = 0.0
    for i in range(12):
        keep = np.arange(12) != i
        p = fewshot.fit_ridge(x[keep], labels[keep], 3, l2_reg=lam)
        brute += np.sum((y[i] - p.scores(x[i : i + 1])[0]) ** 2)
    assert fewshot.loo_errors(x, labels, 3, grid=(lam,))[lam] == pytest.approx(brute)


def test_fewshot_scores_on_separable_features():
    rng = np.random.default_rng(1)
    centers = np.eye(4) * 5
    train_labels, test_labels = np.repeat(np.arange(4), 10), np.repeat(np.arange(4), 5)
    train_x = centers[train_labels] + rng.normal(size=(40, 4)) * 0.1
    test_x = centers[test_labels] + rng.normal(size=(20, 4)) * 0.1
    rows = fewshot.fewshot_scores(train_x, train_labels, test_x, test_labels, 4, shots=(2, 12), seeds=2)
    assert [r["shots"] for r in rows] == [2, 12]
    assert rows[0]["top1"] == 1.0 and rows[0]["train_images"] == 8 and rows[0]["short_classes"] == 0
    assert rows[1]["train_images"] == 40 and rows[1]["short_classes"] == 4  # only 10 per class
    idx, _ = fewshot.select_shots(train_labels, 3, 0, 4)
    assert np.bincount(train_labels[idx]).tolist() == [3, 3, 3, 3]
    assert not np.array_equal(idx, fewshot.select_shots(train_labels, 3, 1, 4)[0])  # seeds differ
