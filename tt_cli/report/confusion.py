"""Zero-shot confusion matrix and per-class recall, from the evaluation's class probabilities.

The predicted class follows the metrics' pessimistic tie rule (`tt_cli.eval.metrics`):
when the true class ties with another for the highest probability, the other one is
predicted. So the matrix's diagonal over its total is exactly the reported top-1, and
each row's diagonal share is that class's recall.

Up to `MAX_MATRIX_CLASSES` classes the whole matrix is drawn (rows: true class,
columns: predicted); with more, the most frequent confusions are listed instead.

Example:
>>> import numpy as np
>>> probabilities = np.array([[0.7, 0.3], [0.5, 0.5], [0.1, 0.9]])
>>> predicted_classes(probabilities, np.array([0, 0, 1])).tolist()
[0, 1, 1]
>>> confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), 2).tolist()
[[1, 1], [0, 1]]
"""

import numpy as np

from tt_cli.report.html import escape, section

MAX_MATRIX_CLASSES = 40
TOP_CONFUSIONS = 20


def predicted_classes(probabilities, labels):
    """Arg-max class per row; a true class tied at the top loses to the first other tied class."""
    probabilities = np.asarray(probabilities)
    best = probabilities.max(axis=1, keepdims=True)
    tied = probabilities == best
    rows = np.arange(len(labels))
    others = tied.copy()
    others[rows, labels] = False
    return np.where(others.any(axis=1), np.argmax(others, axis=1), np.argmax(tied, axis=1))


def confusion_matrix(labels, predicted, num_classes):
    """int [C, C]: rows the true class, columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    return matrix


def per_class_recall(matrix):
    """float [C]: the diagonal over each row's total; NaN for a class with no examples."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def _cell(count, row_total, diagonal):
    share = count / row_total if row_total else 0.0
    colour = (f"rgba(26,156,69,{share:.2f})" if diagonal else f"rgba(200,40,40,{share:.2f})") if count else "#fff"
    return f'<td class="cm" data-count="{count}" title="{count}" style="background:{colour}">{count or ""}</td>'


def _matrix_table(matrix, class_names):
    head = "<tr><th></th>" + "".join(f'<th class="column">{escape(n)}</th>' for n in class_names) + "</tr>"
    rows = "".join(
        f"<tr><th>{escape(class_names[i])}</th>"
        + "".join(_cell(int(c), int(matrix[i].sum()), i == j) for j, c in enumerate(matrix[i]))
        + "</tr>"
        for i in range(len(class_names))
    )
    return f'<table class="confusion">{head}{rows}</table>'


def _top_confusions(matrix, class_names):
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:TOP_CONFUSIONS]
    rows = [
        (class_names[i], class_names[j], int(off[i, j]))
        for i, j in zip(*np.unravel_index(flat, off.shape))
        if off[i, j]
    ]
    body = "".join(f"<tr><td>{escape(t)}</td><td>{escape(p)}</td><td>{n}</td></tr>" for t, p, n in rows)
    return f'<table class="confusions"><tr><th>true</th><th>predicted</th><th>images</th></tr>{body}</table>'


def _recall_table(recall, matrix, class_names):
    order = [int(c) for c in np.argsort(np.nan_to_num(recall, nan=2.0), kind="stable")]  # worst first, absent last
    rows = "".join(
        f'<tr class="recall" data-class="{c}"><td>{escape(class_names[c])}</td>'
        + (
            f'<td>{100 * recall[c]:.1f}%</td><td><span class="bar" style="width:{100 * recall[c]:.0f}px"></span></td>'
            if not np.isnan(recall[c])
            else "<td>—</td><td></td>"
        )
        + f"<td>{int(matrix[c].sum())}</td></tr>"
        for c in order
    )
    return f'<table class="per-class"><tr><th>class</th><th>recall</th><th></th><th>images</th></tr>{rows}</table>'


def confusion_section(evaluations):
    """The zero-shot `<section>` for [(run name, RunEvaluation)] with probabilities, side by side."""
    blocks = []
    for name, evaluation in evaluations:
        names, labels = evaluation.class_names, evaluation.labels
        matrix = confusion_matrix(labels, predicted_classes(evaluation.probabilities, labels), len(names))
        recall = per_class_recall(matrix)
        top1 = np.trace(matrix) / matrix.sum()
        shown = _matrix_table(matrix, names) if len(names) <= MAX_MATRIX_CLASSES else _top_confusions(matrix, names)
        blocks.append(
            f'<div class="run" data-run="{escape(name)}"><h3>{escape(name)}: top-1 {100 * top1:.1f}%, '
            f"mean per-class recall {100 * np.nanmean(recall):.1f}%</h3>{shown}"
            f"<h4>Per-class recall (worst first)</h4>{_recall_table(recall, matrix, names)}</div>"
        )
    first = evaluations[0][1]
    note = (
        f"All {len(first.labels)} images, {len(first.class_names)} classes; rows: true class, columns: "
        "predicted (arg-max, a tie with the true class counts against it)."
    )
    return section("zero-shot", "Zero-shot confusion", f'<div class="runs">{"".join(blocks)}</div>', note)
