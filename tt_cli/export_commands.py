"""`tt export`: a trained run as a SavedModel, a `.keras` file or a KerasHub preset.

Each command reads only the run directory (its latest checkpoint, model config and
tokenizer). TensorFlow, Keras and KerasHub are imported inside the commands.
"""

import os
import shutil

import click

from tt_cli.errors import UserError


@click.group()
def export():
    """Export a trained run: savedmodel, keras, preset."""


def _prepare_out(out, overwrite):
    """Refuses to write over an existing OUT unless --overwrite, which removes it first."""
    if not os.path.lexists(out) or (os.path.isdir(out) and not os.listdir(out)):
        return
    if not overwrite:
        raise UserError(f"{out} already exists; choose another path or pass --overwrite.")
    if os.path.isdir(out) and not os.path.islink(out):
        shutil.rmtree(out)
    else:
        os.remove(out)


def _load(run_dir):
    from tt_cli.data.progress import STDERR
    from tt_cli.run_dir import load_run

    with STDERR.status(f"loading {run_dir}"):
        return load_run(run_dir)


def _print_table(title, columns, rows):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console().print(table)


overwrite_option = click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False),
                           help="Also write what was exported here as JSON.")


def _write_json(path, run, out, kind, **fields):
    from tt_cli.data.summary import write_json

    write_json(path, {"export": kind, "run": run.path, "step": run.step, "mode": run.config.get("mode"),
                      "out": out, **fields})


@export.command()
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=click.Path())
@overwrite_option
@json_option
def savedmodel(run_dir, out, overwrite, json_path):
    """Write RUN as a TensorFlow SavedModel in OUT: raw images / JPEG-PNG bytes / raw text in,
    L2-normalised embeddings out. Load it after `import tensorflow_text`."""
    run = _load(run_dir)
    _prepare_out(out, overwrite)
    from tt_cli.data.progress import STDERR
    from tt_cli.export.savedmodel import export_savedmodel

    with STDERR.status(f"tracing and writing {out}"):
        rows = export_savedmodel(run, out)
    _print_table(f"SavedModel {out} (step {run.step}, mode {run.config.get('mode')})",
                 ["endpoint", "input", "output (L2-normalised)"], rows)
    _write_json(json_path, run, out, "savedmodel",
                endpoints={name: {"input": i, "output": o} for name, i, o in rows})


@export.command("keras")
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=click.Path(dir_okay=False))
@overwrite_option
@json_option
def keras_file(run_dir, out, overwrite, json_path):
    """Write RUN's whole model as OUT (a .keras file) and its tokenizer beside it."""
    if not out.endswith(".keras"):
        raise UserError(f"{out}: a Keras model file must end in .keras.")
    run = _load(run_dir)
    from tt_cli.export.keras_file import export_keras, tokenizer_path_for

    _prepare_out(out, overwrite)
    _prepare_out(tokenizer_path_for(out), overwrite)
    files = export_keras(run, out)
    _print_table(f"Keras export (step {run.step}, mode {run.config.get('mode')})", ["file", "bytes"],
                 [(f, os.path.getsize(f)) for f in files])
    _write_json(json_path, run, out, "keras", files=files)


@export.command()
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=click.Path(file_okay=False))
@overwrite_option
@json_option
def preset(run_dir, out, overwrite, json_path):
    """Write RUN's image tower as a KerasHub preset directory OUT (text side in OUT/tt/).

    LiT runs export their locked pretrained tower."""
    run = _load(run_dir)
    _prepare_out(out, overwrite)
    from tt_cli.export.preset import export_preset

    info = export_preset(run, out)
    _print_table(f"KerasHub preset {out} (step {run.step})", ["field", "value"],
                 [(k, info[k]) for k in ("mode", "image_tower", "image_size", "pooling", "pooled_dim", "embed_dim")])
    _write_json(json_path, run, out, "preset", tt_json=info)
