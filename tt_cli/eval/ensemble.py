"""The 3T + LiT ensemble of the paper: a convex combination of two models.

`combine(a, b, alpha) = alpha·a + (1 - alpha)·b` of class probabilities
(zero-shot) or similarity matrices (retrieval). `--alpha auto` picks alpha on a
held-out half of the data: the rows are shuffled with a fixed seed (0), alpha is
chosen from the grid 0, 0.1, ..., 1 by the score on the first half (ties go to
the smallest alpha), and every reported number — both single models and the
combination — is measured on the other half only, so that they stay comparable
and the pick never sees its evaluation data.

Example:
>>> import numpy as np
>>> combine(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.3)
array([0.3, 0.7])
>>> pick, rest = heldout_split(10)
>>> len(pick), len(rest)
(5, 5)
>>> best_alpha(lambda a: -abs(a - 0.4))[0]
0.4
"""

import numpy as np

from tt_cli.errors import InvalidValueError

ALPHA_GRID = tuple(round(i / 10, 1) for i in range(11))
SPLIT_SEED = 0


def parse_alpha(text):
    """'auto' or a number in [0, 1] (the weight of the first run); `InvalidValueError` otherwise."""
    if text is None or str(text).strip().lower() == "auto":
        return "auto"
    try:
        alpha = float(text)
    except ValueError:
        raise InvalidValueError(f"alpha {text}: give a number in [0, 1] or 'auto'.") from None
    if not 0.0 <= alpha <= 1.0:
        raise InvalidValueError(f"alpha {text}: must be between 0 and 1.")
    return alpha


def combine(a, b, alpha):
    return alpha * np.asarray(a) + (1.0 - alpha) * np.asarray(b)


def heldout_split(n, seed=SPLIT_SEED):
    """(indices to pick alpha on, indices to evaluate on): a seeded shuffle cut in half."""
    if n < 2:
        raise InvalidValueError("alpha 'auto' needs at least 2 examples (half picks alpha, half evaluates).")
    order = np.random.default_rng(seed).permutation(n)
    half = n // 2
    return np.sort(order[:half]), np.sort(order[half:])


def best_alpha(score, grid=ALPHA_GRID):
    """(alpha with the highest `score(alpha)`, {alpha: score}); ties go to the first in `grid`."""
    scores = {alpha: float(score(alpha)) for alpha in grid}
    best = max(scores.values())
    return next(a for a in grid if scores[a] == best), scores
