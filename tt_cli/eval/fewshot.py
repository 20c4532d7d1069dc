"""Few-shot linear probes on frozen image embeddings (big_vision's `fewshot_lsr`).

For each number of shots and each seed, `shots` training images per class are
drawn (a class with fewer uses all it has, and the result says how many such
classes there were). A linear map with a bias is fitted in closed form by
L2-regularised least squares onto targets in {-1, +1} (one-hot scaled, as
big_vision): with features and targets centred on their training means (the
bias is not penalised), `W = (XᵀX + λI)⁻¹ XᵀY`. The predicted class is the
arg-max of `xW + b`. Accuracies are averaged over seeds. The test set's classes
are matched to the training set's by name (`align_classes`).

Regularisation: with `l2_reg="auto"`, λ is chosen per fit from 2^-10 ... 2^10
by leave-one-out error on the few-shot training set itself (closed form for
ridge regression: residual / (1 - leverage)), so the test set is never used to
tune; a number fixes λ.

Example:
>>> import numpy as np
>>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
>>> probe = fit_ridge(x, np.array([0, 0, 1, 1]), num_classes=2, l2_reg=0.1)
>>> predict(probe, np.array([[0.8, 0.2], [0.2, 0.8]]))
array([0, 1])
"""

import dataclasses

import numpy as np

from tt_cli.errors import InvalidValueError
from tt_cli.eval import metrics

L2_GRID = tuple(2.0**i for i in range(-10, 11))
DEFAULT_SHOTS = (1, 5, 10, 25)
DEFAULT_SEEDS = 3


@dataclasses.dataclass
class Probe:
    weights: np.ndarray  # [D, C]
    bias: np.ndarray  # [C]
    l2_reg: float

    def scores(self, x):
        """[N, C] regression outputs; the arg-max is the predicted class."""
        return np.asarray(x, np.float64) @ self.weights + self.bias


def targets(labels, num_classes):
    """One-hot labels scaled to {-1, +1}."""
    return 2.0 * (np.arange(num_classes)[None, :] == np.asarray(labels)[:, None]) - 1.0


def _svd(x):
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    return u, s, vt


def loo_errors(x, labels, num_classes, grid=L2_GRID):
    """{λ: leave-one-out sum of squared residuals} of centred ridge regression, in closed form."""
    x = np.asarray(x, np.float64)
    y = targets(labels, num_classes)
    n = len(x)
    u, s, _ = _svd(x - x.mean(axis=0))
    uy = u.T @ (y - y.mean(axis=0))
    errors = {}
    for lam in grid:
        shrink = s**2 / (s**2 + lam)
        fitted = u @ (shrink[:, None] * uy) + y.mean(axis=0)
        # Leverage of each row, including the unpenalised intercept's 1/n.
        leverage = 1.0 / n + np.sum(u**2 * shrink[None, :], axis=1)
        residual = (y - fitted) / np.maximum(1.0 - leverage, 1e-12)[:, None]
        errors[lam] = float(np.sum(residual**2))
    return errors


def fit_ridge(x, labels, num_classes, l2_reg="auto"):
    """Fits a `Probe` on features [N, D] and integer labels [N]."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        raise InvalidValueError("a few-shot probe needs at least 2 training images.")
    if l2_reg == "auto":
        errors = loo_errors(x, labels, num_classes)
        l2_reg = min(errors, key=errors.get)
    y = targets(labels, num_classes)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    u, s, vt = _svd(x - x_mean)
    weights = vt.T @ ((s / (s**2 + l2_reg))[:, None] * (u.T @ (y - y_mean)))
    return Probe(weights, y_mean - x_mean @ weights, float(l2_reg))


def predict(probe, x):
    return np.argmax(probe.scores(x), axis=1)


def check_shots(shots):
    """`shots` (numbers of images per class) as a tuple; `InvalidValueError` unless each is at least 1."""
    shots = tuple(shots)
    if not shots or min(shots) < 1:
        raise InvalidValueError(
            f"shots {','.join(map(str, shots)) or '(none)'}: every number of shots must be at least 1."
        )
    return shots


def select_shots(labels, shots, seed, num_classes):
    """Indices of `shots` random examples of each class (all of a smaller class); and how many were short."""
    rng = np.random.default_rng(seed)
    chosen, short = [], 0
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        if len(members) < shots:
            short += 1
        chosen.append(rng.choice(members, size=min(shots, len(members)), replace=False))
    return np.sort(np.concatenate(chosen)), short


def align_classes(train_names, train_labels, test_names, test_labels, train_data, data):
    """(number of classes, the test labels as train class ids) for a probe fitted on one
    labelled set (`train_names`: its class names, or None) and scored on another.

    Labels are indices into each set's own class names (the sorted folder names of
    `tt data convert`), so two sets with different classes number them differently: they
    are matched by name. A test class the training set lacks cannot be predicted, so it is
    refused; training classes the test set lacks are fine. Sets without class names have
    integer labels of the user's own numbering, taken as they are; one named and one not
    cannot be matched.

    >>> align_classes(["cat", "dog", "fox"], [0, 1, 2], ["cat", "fox"], [1, 0], "A", "B")
    (3, array([2, 0]))
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    if not train_names and not test_names:
        return int(max(train_labels.max(), test_labels.max())) + 1, test_labels
    if not train_names or not test_names:
        named, unnamed = (train_data, data) if train_names else (data, train_data)
        raise InvalidValueError(
            f"{named} names its classes but {unnamed} has only integer labels: their classes cannot be "
            "matched; give both sets class names (dataset.json's class_names)."
        )
    index = {name: i for i, name in enumerate(train_names)}
    used = sorted({int(label) for label in test_labels})
    unknown = [test_names[i] for i in used if i < len(test_names) and test_names[i] not in index]
    if unknown:
        raise InvalidValueError(
            f"{data}: class(es) {', '.join(map(repr, unknown[:5]))} are not among the {len(train_names)} classes "
            f"of {train_data}; a probe cannot predict a class it was never shown."
        )
    mapping = np.array([index.get(name, -1) for name in test_names], dtype=np.int64)
    return len(train_names), mapping[test_labels]


def fewshot_scores(
    train_x, train_labels, test_x, test_labels, num_classes, shots=DEFAULT_SHOTS, seeds=DEFAULT_SEEDS, l2_reg="auto"
):
    """Per number of shots: mean/std over seeds of top-1 accuracy and mean per-class recall.

    Returns a list of dicts {"shots", "top1", "top1_std", "mean_per_class_recall",
    "l2_regs" (one per seed), "train_images", "short_classes"}.
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    # Identical test images (one shared embedding) are scored once, so they get one prediction.
    test_rows, test_row_of = metrics.distinct_rows(test_x)
    rows = []
    for k in check_shots(shots):
        top1, recall, regs, sizes, short = [], [], [], [], 0
        for seed in range(seeds):
            idx, short = select_shots(train_labels, k, seed, num_classes)
            probe = fit_ridge(train_x[idx], train_labels[idx], num_classes, l2_reg)
            scores = probe.scores(test_rows)[test_row_of]
            top1.append(metrics.topk_accuracy(scores, test_labels, ks=(1,))[1])
            recall.append(metrics.mean_per_class_recall(scores, test_labels))
            regs.append(probe.l2_reg)
            sizes.append(len(idx))
        rows.append(
            {
                "shots": k,
                "top1": float(np.mean(top1)),
                "top1_std": float(np.std(top1)),
                "mean_per_class_recall": float(np.mean(recall)),
                "l2_regs": regs,
                "train_images": sizes[0],
                "short_classes": short,
                "seeds": seeds,
            }
        )
    return rows
