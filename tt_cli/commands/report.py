"""`tt report`: one self-contained HTML page of a run (settings, curves, galleries, confusion).

Thin Click layer: the path is checked while flags are parsed, then `tt_cli.report.build`.
"""

import click

from tt_cli.commands.eval_options import BATCH_SIZE, CLASSNAMES, SAMPLE_SEED, SAMPLES, TEMPLATES
from tt_cli.commands.option_types import OUTPUT_FILE
from tt_cli.commands.tfds_options import tfds_options


@click.command()
@click.argument("run", type=click.Path())
@click.option(
    "--data", help="Shards (or tfds:NAME:SPLIT) to show the galleries (captions) and zero-shot confusion (labels) on."
)
@click.option("--out", type=OUTPUT_FILE, help="The HTML file.  [default: RUN/report.html]")
@CLASSNAMES
@TEMPLATES
@SAMPLES
@SAMPLE_SEED
@BATCH_SIZE
@tfds_options
def report(run, data, out, classnames, templates, samples, seed, batch_size, tfds_data_dir, tfds_fields):
    """Write an HTML report of RUN: settings, training curves and, with --data, retrieval galleries
    and a zero-shot confusion matrix. Self-contained: images embedded, no network needed."""
    from tt_cli.console import STDOUT
    from tt_cli.data.tfds_catalog import TfdsOptions
    from tt_cli.report import build
    from tt_cli.run_dir import read_run_record

    read_run_record(run)  # not a run: one line before anything else
    out = out or build.default_path(run)
    folder = build.prepare_report_path(out, build.report_inputs([run], data, [classnames]), "--out")
    tfds = TfdsOptions.from_text(tfds_data_dir, tfds_fields)
    written = build.run_report(
        run, data, out, classnames, templates, samples, seed, batch_size, folder=folder, tfds=tfds
    )
    STDOUT.print(f"report: {written['path']} ({written['bytes'] / 1e3:,.0f} kB, {written['sections']} sections)")
