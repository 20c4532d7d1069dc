"""Rich tables of `tt eval` results (stdout; progress stays on stderr).

Metrics are rows, models are columns, so several runs (`tt eval retrieval RUN1 RUN2 ...`),
or a run, a second run and their ensemble, read side by side. Values print as percentages.

Example:
>>> print_result({"task": "zero-shot", "data": "val", "evaluated_on": "all 8 examples",
...               "models": [{"name": "3t", "mode": "3t", "step": 5, "top1": 0.5, "top5": 1.0,
...                           "mean_per_class_recall": 0.5}]})   # doctest: +ELLIPSIS
tt eval zero-shot val: all 8 examples
...
"""

import math

from rich.table import Table

from tt_cli.console import STDOUT

METRICS = {
    "zero-shot": [("top1", "top-1"), ("top5", "top-5"), ("mean_per_class_recall", "mean per-class recall")],
    "retrieval": [
        (f"{d}_R@{k}", f"{label} R@{k}")
        for d, label in (("image_to_text", "image→text"), ("text_to_image", "text→image"))
        for k in (1, 5, 10)
    ],
}


def _percent(value):
    return f"{100 * value:.2f}"


def _l2(value):
    """λ as a power of two when it is one (the auto grid), else as a number."""
    exponent = math.log2(value) if value > 0 else None
    return f"2^{int(exponent)}" if exponent is not None and exponent == int(exponent) else f"{value:g}"


def _header(model):
    interpolated = f" · A={model['interpolate']:g}" if model.get("interpolate") is not None else ""
    return f"{model['name']}\n[dim]{model['mode']} · step {model['step']}{interpolated}[/]"


def print_result(result):
    if result["task"] == "fewshot":
        return _print_fewshot(result)
    STDOUT.print(f"[bold]tt eval {result['task']}[/] {result['data']}: {result['evaluated_on']}")
    ens = result.get("ensemble")
    if ens:
        # Class probabilities p for zero-shot, similarities s for retrieval.
        sym = "p" if result["task"] == "zero-shot" else "s"
        STDOUT.print(
            f"ensemble α·{sym}({result['models'][0]['name']}) + (1−α)·{sym}({result['models'][1]['name']}): "
            f"[bold]α = {ens['alpha']:g}[/] ({ens['alpha_source']})"
        )
    table = Table(show_header=True)
    table.add_column("metric (%)")
    for model in result["models"]:
        table.add_column(_header(model), justify="right")
    if ens:
        table.add_column(f"ensemble\n[dim]α = {ens['alpha']:g}[/]", justify="right")
    for key, label in METRICS[result["task"]]:
        if key not in result["models"][0]:
            continue
        table.add_row(label, *[_percent(m[key]) for m in result["models"]], *([_percent(ens[key])] if ens else []))
    STDOUT.print(table)
    if "captions_per_image" in result:
        STDOUT.print(f"[dim]captions counted: {result['captions_per_image']}[/]")


def _print_fewshot(result):
    if len(result["models"]) > 1:
        return _print_fewshot_side_by_side(result)
    (model,) = result["models"]
    STDOUT.print(
        f"[bold]tt eval fewshot[/] {model['name']} ({model['mode']} · step {model['step']}): "
        f"train {result['train_data']} ({result['num_train']}), test {result['data']} "
        f"({result['num_examples']}), {result['num_classes']} classes"
    )
    table = Table(show_header=True)
    for name in ("shots", "top-1 (%)", "± std", "mean per-class recall (%)", "λ per seed", "train images"):
        table.add_column(name, justify="right")
    notes = []
    for row in model["shots"]:
        table.add_row(
            str(row["shots"]),
            _percent(row["top1"]),
            _percent(row["top1_std"]),
            _percent(row["mean_per_class_recall"]),
            " ".join(_l2(r) for r in row["l2_regs"]),
            str(row["train_images"]),
        )
        if row["short_classes"]:
            notes.append(f"{row['shots']}-shot: {row['short_classes']} classes have fewer images and use all they have")
    STDOUT.print(table)
    seeds = model["shots"][0]["seeds"] if model["shots"] else 0
    STDOUT.print(
        f"[dim]mean over {seeds} seeds of shot selection; λ {result['l2_reg']}"
        f"{' (leave-one-out on the shots)' if result['l2_reg'] == 'auto' else ''}[/]"
    )
    for note in notes:
        STDOUT.print(f"[yellow]{note}[/]")


def _print_fewshot_side_by_side(result):
    """Several runs: a row per shots and metric, a column per run (mean ± std over seeds)."""
    models = result["models"]
    STDOUT.print(
        f"[bold]tt eval fewshot[/] train {result['train_data']} ({result['num_train']}), test "
        f"{result['data']} ({result['num_examples']}), {result['num_classes']} classes"
    )
    table = Table(show_header=True)
    table.add_column("shots, metric (%)")
    for model in models:
        table.add_column(_header(model), justify="right")
    for i, row in enumerate(models[0]["shots"]):
        table.add_row(
            f"{row['shots']}-shot top-1",
            *[f"{_percent(m['shots'][i]['top1'])} ± {_percent(m['shots'][i]['top1_std'])}" for m in models],
        )
        table.add_row(
            f"{row['shots']}-shot mean per-class recall",
            *[_percent(m["shots"][i]["mean_per_class_recall"]) for m in models],
        )
    STDOUT.print(table)
    seeds = models[0]["shots"][0]["seeds"] if models[0]["shots"] else 0
    STDOUT.print(
        f"[dim]mean ± std over {seeds} seeds of shot selection, the same shots for every run; λ {result['l2_reg']}[/]"
    )
    for row in models[0]["shots"]:
        if row["short_classes"]:
            STDOUT.print(
                f"[yellow]{row['shots']}-shot: {row['short_classes']} classes have fewer images and use all "
                "they have[/]"
            )


def print_suite(result):
    """`tt eval suite`: a row per task and metric, a column per run, then the skipped tasks."""
    rows, runs = result["rows"], result["runs"]
    by_cell = {(row["tt"]["task"], row["model"]): row for row in rows}
    table = Table(show_header=True, title="tt eval suite (%)")
    table.add_column("task")
    table.add_column("metric")
    for run in runs:
        table.add_column(run, justify="right")
    for task in result["tasks"]:
        first = by_cell[(task, runs[0])]
        for metric in first["metrics"]:
            cells = [_percent(by_cell[(task, run)]["metrics"][metric]) for run in runs]
            dataset = f" [dim]({first['dataset']})[/]" if first["dataset"] != task else ""
            table.add_row(task + dataset, metric, *cells)
    if result["tasks"]:
        STDOUT.print(table)
    rules = {row["tt"]["captions_per_image"] for row in rows if "captions_per_image" in row["tt"]}
    for rule in rules:
        STDOUT.print(f"[dim]retrieval captions counted: {rule}[/]")
    for skipped in result["skipped"]:
        STDOUT.print(f"[yellow]skipped {skipped['task']}:[/] {skipped['reason']}")
