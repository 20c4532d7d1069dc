"""The result table of `tt pretrain` (stdout; progress and notes go to stderr).

Example:
>>> result = {"train_accuracy": 0.9, "heldout_accuracy": 0.8, "chance": 0.1, "num_classes": 10,
...           "steps": 100, "seconds": 12.0, "output_dim": 64, "image_size": [32, 32]}
>>> print_summary(result, "out/")  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
tt pretrain -> out/
...
│ held-out accuracy (0 images) │       0.800 │  0.100 │
...
use it as the third tower: tt train --pretrained out/ ...
"""

from rich.table import Table

from tt_cli.console import STDOUT


def print_summary(summary, out):
    table = Table(title=f"tt pretrain -> {out}", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_column("chance", justify="right")
    chance = f"{summary['chance']:.3f}"
    accuracy = lambda value: "-" if value is None else f"{value:.3f}"  # noqa: E731
    table.add_row("train accuracy (last steps)", accuracy(summary["train_accuracy"]), chance)
    table.add_row(
        f"held-out accuracy ({summary.get('num_heldout', 0)} images)", accuracy(summary["heldout_accuracy"]), chance
    )
    table.add_row("classes", str(summary["num_classes"]), "")
    table.add_row("steps", f"{summary['steps']} ({summary['seconds']:.0f} s)", "")
    table.add_row("preset", f"{summary['output_dim']}-d, {summary['image_size'][0]}x{summary['image_size'][1]}", "")
    STDOUT.print(table)
    STDOUT.print(f"use it as the third tower: tt train --pretrained {out} ...")
