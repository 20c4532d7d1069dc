"""`tt export`: a trained run as a SavedModel, a `.keras` file, a KerasHub preset, or LiteRT
and ONNX encoders.

Flags in, one call of `tt_cli.export.from_run` (which checks OUT against tt's ownership
rule before the run is read, and writes the export), a table out. TensorFlow, Keras and
KerasHub are imported inside the library calls.
"""

import click

from tt_cli import storage
from tt_cli.commands.eval_options import INTERPOLATE
from tt_cli.commands.json_output import json_option, write_result
from tt_cli.commands.option_types import OUTPUT_FILE, OUTPUT_FOLDER


@click.group()
def export():
    """Export a trained run: savedmodel, keras, preset, litert, onnx."""


def _status(text):
    from tt_cli.console import STDERR

    return STDERR.status(text)


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


def _write_json(path, exported, kind, **fields):
    run = exported.run
    interpolate = run.interpolate
    write_result(
        path,
        {
            "export": kind,
            "run": run.path,
            "step": run.step,
            "mode": run.config.get("mode"),
            "out": exported.out,
            **({"interpolate": interpolate} if interpolate is not None else {}),
            **fields,
        },
    )


@export.command()
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=OUTPUT_FOLDER)
@overwrite_option
@INTERPOLATE
@JSON
def savedmodel(run_dir, out, overwrite, interpolate, json_path):
    """Write RUN as a TensorFlow SavedModel in OUT: raw images / JPEG-PNG bytes / raw text in,
    L2-normalised embeddings out. Load it after `import tensorflow_text`."""
    from tt_cli.export import from_run

    exported = from_run.savedmodel(run_dir, out, overwrite, interpolate, status=_status)
    run, rows = exported.run, exported.details
    _print_table(
        f"SavedModel {out} (step {run.step}, mode {run.config.get('mode')})",
        ["endpoint", "input", "output (L2-normalised)"],
        rows,
    )
    _write_json(json_path, exported, "savedmodel", endpoints={name: {"input": i, "output": o} for name, i, o in rows})


@export.command("keras")
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=OUTPUT_FILE)
@overwrite_option
@INTERPOLATE
@JSON
def keras_file(run_dir, out, overwrite, interpolate, json_path):
    """Write RUN's whole model as OUT (a .keras file) and its tokenizer beside it."""
    from tt_cli.export import from_run

    exported = from_run.keras(run_dir, out, overwrite, interpolate, status=_status)
    run, files = exported.run, exported.details
    _print_table(
        f"Keras export (step {run.step}, mode {run.config.get('mode')})",
        ["file", "bytes"],
        [(f, storage.getsize(f)) for f in files],
    )
    _write_json(json_path, exported, "keras", files=files)


@export.command()
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=OUTPUT_FOLDER)
@overwrite_option
@INTERPOLATE
@JSON
def preset(run_dir, out, overwrite, interpolate, json_path):
    """Write RUN as a KerasHub preset directory OUT. A run trained with --init: a preset of the
    same class (CLIPBackbone, SigLIPBackbone, ...) with its preprocessor, which that class's
    from_preset loads. A run from scratch: its image tower (a ViTBackbone; text side in OUT/tt/).

    LiT runs export their locked pretrained tower."""
    from tt_cli.export import from_run

    exported = from_run.preset(run_dir, out, overwrite, interpolate, status=_status)
    run, info = exported.run, exported.details
    fields = ("class", "mode", "init", "interpolate", "image_tower", "image_size", "pooling", "pooled_dim")
    _print_table(
        f"KerasHub preset {out} (step {run.step})",
        ["field", "value"],
        [(k, info[k]) for k in (*fields, "embed_dim", "max_text_len") if info.get(k) is not None],
    )
    _write_json(json_path, exported, "preset", tt_json=info)


def _print_encoders(kind, exported):
    run = exported.run
    _print_table(
        f"{kind} encoders {exported.out} (step {run.step}, mode {run.config.get('mode')})",
        ["file", "bytes"],
        [(f, storage.getsize(f)) for f in exported.details],
    )


@export.command()
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=OUTPUT_FOLDER)
@click.option(
    "--quantize",
    type=click.Choice(["none", "dynamic"]),
    default="none",
    show_default=True,
    help="dynamic: int8 weights (dynamic-range quantization; a quarter of float32's bytes per weight).",
)
@overwrite_option
@INTERPOLATE
@JSON
def litert(run_dir, out, quantize, overwrite, interpolate, json_path):
    """Write RUN's image and text encoders as LiteRT (.tflite) files in OUT: uint8 images at the
    model's size / token ids in, L2-normalised embeddings out; tokenizer.model and encoders.json beside."""
    from tt_cli.export import from_run

    exported = from_run.litert(run_dir, out, quantize, overwrite, interpolate, status=_status)
    _print_encoders("litert", exported)
    _write_json(json_path, exported, "litert", files=exported.details, quantize=quantize)


@export.command()
@click.argument("run_dir", metavar="RUN")
@click.argument("out", type=OUTPUT_FOLDER)
@overwrite_option
@INTERPOLATE
@JSON
def onnx(run_dir, out, overwrite, interpolate, json_path):
    """Write RUN's image and text encoders as ONNX models in OUT: uint8 images at the model's size /
    token ids in, L2-normalised embeddings out; tokenizer.model and encoders.json beside. Needs tt[export]."""
    from tt_cli.export import from_run

    exported = from_run.onnx(run_dir, out, overwrite, interpolate, status=_status)
    _print_encoders("onnx", exported)
    _write_json(json_path, exported, "onnx", files=exported.details)
