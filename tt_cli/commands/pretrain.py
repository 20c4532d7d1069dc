"""`tt pretrain`: flags in, `PretrainConfig` out, `pretrain()` called, a table printed. No ML logic here."""

import shlex
import sys

import click

from tt_cli.commands.json_output import json_option, write_result
from tt_cli.commands.option_types import (
    BATCH,
    COUNT,
    COUNT_OR_ZERO,
    FRACTION,
    NON_NEGATIVE,
    OUTPUT_FOLDER,
    POSITIVE,
    SCALE,
    SEED,
)
from tt_cli.pretrain import PretrainConfig

D = PretrainConfig()  # the defaults, shown in --help


@click.command(context_settings={"show_default": True})
@click.option("--data", required=True, help="Labelled shards: a `tt data convert` directory or a glob.")
@click.option(
    "--out",
    required=True,
    type=OUTPUT_FOLDER,
    help="Preset directory to write (use it as `tt train --pretrained OUT`).",
)
@click.option("--val-data", help="Labelled held-out shards.  [default: hold out --holdout of --data]")
@click.option("--scale", type=SCALE, default=D.scale, help="ViT size; tiny/small for CPU.")
@click.option(
    "--image-size",
    type=COUNT,
    default=None,
    help="Train the ViT at NxN, a multiple of the scale's patch size; the preset keeps it.  [default: the scale's]",
)
@click.option("--steps", type=COUNT, default=None, help="Training steps.  [default: --epochs passes]")
@click.option("--epochs", type=POSITIVE, default=D.epochs)
@click.option("--batch-size", type=BATCH, default=D.batch_size)
@click.option("--lr", type=POSITIVE, default=D.lr, help="Peak learning rate (AdamW, warm-up then cosine decay).")
@click.option("--warmup-steps", type=COUNT_OR_ZERO, default=None, help="[default: 5% of the steps]")
@click.option("--weight-decay", type=NON_NEGATIVE, default=D.weight_decay)
@click.option(
    "--holdout", type=FRACTION, default=D.holdout, help="Fraction of --data held out for the accuracy report."
)
@click.option("--augment/--no-augment", default=D.augment, help="Random horizontal flips.")
@click.option("--seed", type=SEED, default=D.seed)
@click.option("--strategy", default=D.strategy, help="auto | default | mirrored | multiworker | tpu (as `tt train`)")
@click.option("--precision", default=D.precision, help="auto | float32 | bfloat16 | float16")
@click.option("--jit/--no-jit", default=None, help="XLA compilation.  [default: on, except with several CPU replicas]")
@click.option("--deterministic", is_flag=True, help="Deterministic ops (bit-reproducible, slower).")
@click.option("--log-every", type=COUNT, default=D.log_every)
@click.option("--checkpoint-every", type=COUNT, default=D.checkpoint_every)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace a finished preset in --out, or start an unfinished run there over (without it, "
    "the same command resumes).",
)
@json_option("Also write the summary here as JSON.")
def pretrain(json_path, **flags):
    """Train a ViT classifier on labelled shards; save its backbone as a KerasHub preset for --pretrained."""
    from tt_cli.commands.pretrain_report import print_summary
    from tt_cli.console import STDERR
    from tt_cli.pretrain import pretrain as run_pretrain

    command = "tt " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["pretrain"] else None
    summary = run_pretrain(PretrainConfig(command=command, **flags), log=STDERR.print)
    print_summary(summary, flags["out"])
    write_result(json_path, summary)
