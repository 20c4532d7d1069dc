"""Training curves from a run's `metrics.jsonl`, drawn with matplotlib into PNGs.

One panel per kind of number `tt train` logs: the total and per-pair losses, the
contrastive accuracy, the learned temperatures, the learning rate, pairs per
second, and the validation metrics (`val/...`, logged every `--val-every` steps).
Matplotlib's object API with the Agg canvas: no display, no global pyplot state.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "metrics.jsonl")
>>> with open(path, "w") as f:   # as `tt train` writes it; the last line cut short by a crash
...     _ = f.write('{"step": 1, "loss": 4.1, "lr": 0.001}\\n{"step": 2, "loss": 3.9, "lr": 0.002}\\n{"step": 3, "lo')
>>> records, skipped = read_metrics(path)
>>> len(records), skipped
(2, 1)
>>> [(title, png[:4]) for title, png in curve_pngs(records)]
[('Losses', b'\\x89PNG'), ('Learning rate', b'\\x89PNG')]
"""

import io
import json
import math

from tt_cli import storage

PANELS = (
    ("Losses", "loss", lambda key: key == "loss" or key.startswith("loss_")),
    ("Contrastive accuracy", "accuracy", lambda key: key == "accuracy"),
    ("Temperatures", "temperature", lambda key: key.startswith("t_")),
    ("Learning rate", "learning rate", lambda key: key == "lr"),
    ("Pairs per second", "pairs / s", lambda key: key == "pairs_per_second"),
    ("Validation", "held-out metric", lambda key: key.startswith("val/")),
)


def read_metrics(path):
    """(records: list of {"step", ...} dicts, number of unreadable lines skipped)."""
    records, skipped = [], 0
    with storage.open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by a crash
                skipped += 1
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
            else:
                skipped += 1
    return records, skipped


def series(records, wanted):
    """{key: ([steps], [values])} for the keys `wanted(key)` accepts, finite numbers only."""
    out = {}
    for record in records:
        for key, value in record.items():
            if key != "step" and wanted(key) and isinstance(value, (int, float)) and math.isfinite(value):
                steps, values = out.setdefault(key, ([], []))
                steps.append(record["step"])
                values.append(value)
    return out


def _png(title, ylabel, lines):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.4, 2.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for key, (steps, values) in sorted(lines.items(), key=lambda item: (item[0] not in ("loss",), item[0])):
        style = {"linewidth": 2.2} if key == "loss" else {"linewidth": 1.2}
        axes.plot(steps, values, marker="o" if len(steps) < 12 else None, markersize=3, label=key, **style)
    axes.set_title(title, fontsize=11)
    axes.set_xlabel("step", fontsize=9)
    axes.set_ylabel(ylabel, fontsize=9)
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    if len(lines) > 1:
        axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def curve_pngs(records):
    """[(panel title, PNG bytes)] for each panel with at least one logged value."""
    panels = []
    for title, ylabel, wanted in PANELS:
        lines = series(records, wanted)
        if lines:
            panels.append((title, _png(title, ylabel, lines)))
    return panels
