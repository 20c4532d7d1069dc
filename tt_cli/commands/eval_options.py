"""Flags that `tt eval` and `tt report` share: they evaluate a run the same way, so a flag
means the same in both and is declared once here."""

import click

from tt_cli.commands.option_types import BATCH, COUNT, SEED, WEIGHT

BATCH_SIZE = click.option(
    "--batch-size", type=BATCH, default=128, show_default=True, help="Images or texts per forward pass."
)
CLASSNAMES = click.option(
    "--classnames",
    type=click.Path(dir_okay=False),
    help="One class name per line [default: class_names of the shards' dataset.json].",
)
TEMPLATES = click.option(
    "--templates",
    help="Zero-shot prompts: 'clip' (the CLIP paper's 80), 'simple' (one), or a file of one template per line "
    "with {}.  [default: a TFDS benchmark's own prompts, else 'clip']",
)
SAMPLES = click.option(
    "--samples",
    type=COUNT,
    default=16,
    show_default=True,
    help="Images and captions drawn for the retrieval galleries.",
)
SAMPLE_SEED = click.option(
    "--seed", type=SEED, default=0, show_default=True, help="Seed of the gallery's draw of images and captions."
)

# Also `tt export`'s: an exported model can be the interpolated one.
INTERPOLATE = click.option(
    "--interpolate",
    type=WEIGHT,
    default=None,
    metavar="A",
    help="WiSE-FT, for runs trained with --init: use the weights A x trained + (1 - A) x the init preset's "
    "(0: the preset's model, 1: the trained one).",
)
