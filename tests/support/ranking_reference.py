"""Reference ranking metrics that hold on any machine, for tests that re-embed data themselves.

A test's own embeddings (another batch shape, eager instead of `tf.function`,
another CPU's kernels) differ from the pipeline's in the last bits. So a reference
never asserts a metric exactly from them: it bounds it. Inputs that are the same
(one caption string, one image) are embedded once here as in the pipeline, so
their ties are exact in both; scores of different inputs closer than the
embeddings' measured difference allows are counted both ways.
"""

import numpy as np

# Rounding of a float32 similarity near 1 (half an ulp is 3e-8) and of the float64 products.
ROUNDING = 1e-7


def distinct_inputs(keys):
    """(distinct keys in first-occurrence order, index of each key among them)."""
    distinct = list(dict.fromkeys(keys))
    index = {key: i for i, key in enumerate(distinct)}
    return distinct, np.array([index[key] for key in keys])


def similarity_error(pipeline_a, a, pipeline_b, b):
    """Largest |pipeline_a·pipeline_b - a·b| over rows: |Δa|·|b| + |pipeline_a|·|Δb| (Cauchy-Schwarz)."""
    norm = lambda x: np.linalg.norm(np.asarray(x, np.float64), axis=1).max()
    return norm(pipeline_a - a) * norm(b) + norm(pipeline_a) * norm(pipeline_b - b) + ROUNDING


def recall_bounds(similarity, correct, input_ids, k, error):
    """(lowest, highest) Recall@k of the rows over every scoring within `error` of `similarity`.

    Each row is a query, each column a candidate; `correct` marks its right answers.
    Pessimistic ties: a wrong candidate scoring at least the best correct one counts
    against the query, so a wrong candidate within 2·error of that best may count
    either way, except one with the same input (`input_ids`, per candidate) as the
    query's certainly-best correct candidate: it ties exactly, by construction,
    and always counts against. Without near-ties the bounds are equal.
    """
    maybe_against, surely_against = [], []
    for scores, ok in zip(np.asarray(similarity, np.float64), np.asarray(correct, bool)):
        best = scores[ok].max()
        best_inputs = set(input_ids[ok & (scores >= best - 2 * error)].tolist())
        sure_best = best_inputs.pop() if len(best_inputs) == 1 else None
        maybe_against.append(np.sum(~ok & (scores >= best - 2 * error)))
        surely_against.append(np.sum(~ok & ((scores > best + 2 * error) | (input_ids == sure_best))))
    return float(np.mean(np.array(maybe_against) < k)), float(np.mean(np.array(surely_against) < k))
