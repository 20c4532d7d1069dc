"""`tt export`: a trained run as a SavedModel, a `.keras` file or a KerasHub preset.

Each command reads only the run directory (its latest checkpoint, model config and
tokenizer). TensorFlow, Keras and KerasHub are imported inside the commands. OUT is
checked against `tt_cli.ownership` before the run is read: never the run or a folder
around it, and --overwrite replaces only an earlier export of the same kind.
"""

import os

import click

from tt_cli import ownership, storage
from tt_cli.commands.eval_options import INTERPOLATE
from tt_cli.commands.json_output import json_option, write_result


@click.group()
def export():
    """Export a trained run: savedmodel, keras, preset."""


def _prepare_out(run_dir, out, overwrite, kind):
    """Refuses an OUT that is the run or around it, or that holds anything but an earlier
    `tt export KIND` (replaced only with --overwrite). Checks only, before the run is read."""
    ownership.refuse_overlap(out, [run_dir])
    return ownership.prepare_whole_folder(out, f"tt export {kind}", overwrite, f"a {kind} export")


def _load(run_dir, interpolate=None):
    from tt_cli.console import STDERR
    from tt_cli.run_dir import load_run

    with STDERR.status(f"loading {run_dir}"):
        return load_run(run_dir, interpolate)


def _print_table(title, columns, rows):
    from rich.table import Table

    from tt_cli.console import STDOUT

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    STDOUT.print(table)


overwrite_option = click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
JSON = json_option("Also write what was exported here as JSON.")


def _write_json(path, run, out, kind, **fields):
    interpolate = run.interpolate
    write_result(
        path,
        {
            "export": kind,
            "run": run.path,
            "step": run.step,
            "mode": run.config.get("mode"),
            "out": out,
            **({"interpolate": interpolate} if interpolate is not None else {}),
            **fields,
        },
    )


@export.command()
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=click.Path())
@overwrite_option
@INTERPOLATE
@JSON
def savedmodel(run_dir, out, overwrite, interpolate, json_path):
    """Write RUN as a TensorFlow SavedModel in OUT: raw images / JPEG-PNG bytes / raw text in,
    L2-normalised embeddings out. Load it after `import tensorflow_text`."""
    folder = _prepare_out(run_dir, out, overwrite, "savedmodel")
    run = _load(run_dir, interpolate)
    ownership.begin_whole_folder(folder)
    from tt_cli.console import STDERR
    from tt_cli.export.savedmodel import export_savedmodel

    with STDERR.status(f"tracing and writing {out}"):
        rows = export_savedmodel(run, out)
    ownership.record_all(folder)
    _print_table(
        f"SavedModel {out} (step {run.step}, mode {run.config.get('mode')})",
        ["endpoint", "input", "output (L2-normalised)"],
        rows,
    )
    _write_json(json_path, run, out, "savedmodel", endpoints={name: {"input": i, "output": o} for name, i, o in rows})


@export.command("keras")
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=click.Path(dir_okay=False))
@overwrite_option
@INTERPOLATE
@JSON
def keras_file(run_dir, out, overwrite, interpolate, json_path):
    """Write RUN's whole model as OUT (a .keras file) and its tokenizer beside it."""
    from tt_cli.export.keras_file import check_keras_path, export_keras, tokenizer_path_for

    check_keras_path(out)  # before the run is read
    command = "tt export keras"
    ownership.refuse_overlap(out, [run_dir])
    ownership.refuse_overlap(tokenizer_path_for(out), [run_dir])
    folder = ownership.prepare_file(out, command, overwrite)
    ownership.prepare_file(tokenizer_path_for(out), command, overwrite)
    run = _load(run_dir, interpolate)
    files = export_keras(run, out)
    folder.record([os.path.basename(f) for f in files], stamp=True)
    _print_table(
        f"Keras export (step {run.step}, mode {run.config.get('mode')})",
        ["file", "bytes"],
        [(f, storage.getsize(f)) for f in files],
    )
    _write_json(json_path, run, out, "keras", files=files)


@export.command()
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=click.Path(file_okay=False))
@overwrite_option
@INTERPOLATE
@JSON
def preset(run_dir, out, overwrite, interpolate, json_path):
    """Write RUN as a KerasHub preset directory OUT. A run trained with --init: a preset of the
    same class (CLIPBackbone, SigLIPBackbone, ...) with its preprocessor, which that class's
    from_preset loads. A run from scratch: its image tower (a ViTBackbone; text side in OUT/tt/).

    LiT runs export their locked pretrained tower."""
    folder = _prepare_out(run_dir, out, overwrite, "preset")
    run = _load(run_dir, interpolate)
    ownership.begin_whole_folder(folder)
    from tt_cli.export.preset import export_preset

    info = export_preset(run, out)
    ownership.record_all(folder)
    fields = ("class", "mode", "init", "interpolate", "image_tower", "image_size", "pooling", "pooled_dim")
    _print_table(
        f"KerasHub preset {out} (step {run.step})",
        ["field", "value"],
        [(k, info[k]) for k in (*fields, "embed_dim", "max_text_len") if info.get(k) is not None],
    )
    _write_json(json_path, run, out, "preset", tt_json=info)
