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


def _print_files(title, exported):
    run = exported.run
    _print_table(
        f"{title} (step {run.step}, mode {run.config.get('mode')})",
        ["file", "bytes"],
        [(f, storage.getsize(f)) for f in exported.details],
    )


overwrite_option = click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
JSON = json_option("Also write what was exported here as JSON.")


def _export_command(out_type, name=None, options=()):
    """A `tt export` command of RUN and OUT, with `options`, --overwrite, --interpolate and --json."""

    def decorate(function):
        arguments = (click.argument("run_dir", metavar="RUN"), click.argument("out", type=out_type))
        for decorator in reversed((*arguments, *options, overwrite_option, INTERPOLATE, JSON)):
            function = decorator(function)
        return export.command(name)(function)

    return decorate


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


@_export_command(OUTPUT_FOLDER)
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


@_export_command(OUTPUT_FILE, "keras")
def keras_file(run_dir, out, overwrite, interpolate, json_path):
    """Write RUN's whole model as OUT (a .keras file) and its tokenizer beside it."""
    from tt_cli.export import from_run

    exported = from_run.keras(run_dir, out, overwrite, interpolate, status=_status)
    _print_files("Keras export", exported)
    _write_json(json_path, exported, "keras", files=exported.details)


@_export_command(OUTPUT_FOLDER)
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


QUANTIZE = click.option(
    "--quantize",
    type=click.Choice(["none", "dynamic"]),
    default="none",
    show_default=True,
    help="dynamic: int8 weights (dynamic-range quantization; a quarter of float32's bytes per weight).",
)


@_export_command(OUTPUT_FOLDER, options=(QUANTIZE,))
def litert(run_dir, out, quantize, overwrite, interpolate, json_path):
    """Write RUN's image and text encoders as LiteRT (.tflite) files in OUT: uint8 images at the
    model's size / token ids in, L2-normalised embeddings out; tokenizer.model and encoders.json beside."""
    from tt_cli.export import from_run

    exported = from_run.litert(run_dir, out, quantize, overwrite, interpolate, status=_status)
    _print_files(f"litert encoders {exported.out}", exported)
    _write_json(json_path, exported, "litert", files=exported.details, quantize=quantize)


@_export_command(OUTPUT_FOLDER)
def onnx(run_dir, out, overwrite, interpolate, json_path):
    """Write RUN's image and text encoders as ONNX models in OUT: uint8 images at the model's size /
    token ids in, L2-normalised embeddings out; tokenizer.model and encoders.json beside. Needs tt[export]."""
    from tt_cli.export import from_run

    exported = from_run.onnx(run_dir, out, overwrite, interpolate, status=_status)
    _print_files(f"onnx encoders {exported.out}", exported)
    _write_json(json_path, exported, "onnx", files=exported.details)
