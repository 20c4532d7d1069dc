"""`tt report`: one self-contained HTML page of a run (settings, curves, galleries, confusion).

Thin Click layer: the path is checked while flags are parsed, then `tt_cli.report.build`.
"""

import click

from tt_cli.commands.option_types import COUNT, SEED

SAMPLES = click.option("--samples", type=COUNT, default=16, show_default=True,
                       help="Images and captions drawn for the retrieval galleries.")
SAMPLE_SEED = click.option("--seed", type=SEED, default=0, show_default=True,
                           help="Seed of the gallery's draw of images and captions.")


@click.command()
@click.argument("run", type=click.Path())
@click.option("--data", help="Shards to show the galleries (captions) and zero-shot confusion (labels) on.")
@click.option("--out", type=click.Path(dir_okay=False), help="The HTML file.  [default: RUN/report.html]")
@click.option("--classnames", type=click.Path(dir_okay=False),
              help="One class name per line [default: class_names of the shards' dataset.json].")
@click.option("--templates", default="clip", show_default=True,
              help="Zero-shot prompts: 'clip', 'simple', or a file of one template per line with {}.")
@SAMPLES
@SAMPLE_SEED
@click.option("--batch-size", type=COUNT, default=128, show_default=True, help="Images or texts per forward pass.")
def report(run, data, out, classnames, templates, samples, seed, batch_size):
    """Write an HTML report of RUN: settings, training curves and, with --data, retrieval galleries
    and a zero-shot confusion matrix. Self-contained: images embedded, no network needed."""
    from tt_cli.console import STDOUT
    from tt_cli.report import build
    from tt_cli.run_dir import read_run_config

    read_run_config(run)  # not a run: one line before anything else
    out = out or build.default_path(run)
    folder = build.prepare_report_path(out, build.report_inputs([run], data, [classnames]), "--out")
    written = build.run_report(run, data, out, classnames, templates, samples, seed, batch_size, folder=folder)
    STDOUT.print(f"report: {written['path']} ({written['bytes'] / 1e3:,.0f} kB, {written['sections']} sections)")
