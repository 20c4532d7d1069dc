"""Exporting a run directory, with tt's ownership rule: what `tt export savedmodel|keras|preset|litert|onnx`
call.

Each function checks OUT before the run is read (`interpolate`: WiSE-FT's weight of the
trained model, for runs started from a preset, `tt_cli.run_dir.load_run`): never the run, a folder inside it or one
around it; an existing folder may hold only an earlier export of the same kind (replaced
with `overwrite=True`, after its manifest proves every file in it is that export's,
`tt_cli.ownership`), an existing `.keras` file only one tt wrote. It then loads the run's
newest intact checkpoint, writes the export and records what it wrote. The modules beside
this one (`savedmodel`, `keras_file`, `preset`, `litert`, `onnx`) write each format from a loaded run, with no
such checks.

For example, `savedmodel("runs/demo", "exports/demo")` returns an `Exported` whose `run.step`
is the step of the checkpoint exported and whose `details` name the SavedModel's endpoints;
called again, it refuses (`ConflictError`, with the remedy `overwrite=True`) rather than
replace the earlier export, and with `overwrite=True` it replaces that export only while
every file of it is still as tt wrote it.
"""

import contextlib
import dataclasses
import os

from tt_cli import ownership


@dataclasses.dataclass(frozen=True)
class Exported:
    """What an export wrote: the loaded `run` (a `tt_cli.run_dir.Run`), `out`, and the
    format's own `details` (SavedModel endpoints, the files of a `.keras` export, a preset's
    `tt.json`)."""

    run: object
    out: str
    details: object


def _no_status(text):
    return contextlib.nullcontext()


def _load(run_dir, status, interpolate):
    from tt_cli.run_dir import load_run

    with status(f"loading {run_dir}"):
        return load_run(run_dir, interpolate)


def _whole_folder(run_dir, out, overwrite, kind, write, status, interpolate):
    """An export that is a folder whose file names a library chooses."""
    ownership.refuse_overlap(out, [run_dir])
    folder = ownership.prepare_whole_folder(out, f"tt export {kind}", overwrite, f"a {kind} export", [run_dir])
    run = _load(run_dir, status, interpolate)
    ownership.begin_whole_folder(folder)
    with status(f"writing {out}"):
        details = write(run, out)
    ownership.record_all(folder)
    return Exported(run, out, details)


def savedmodel(run_dir, out, overwrite=False, interpolate=None, status=_no_status):
    """Writes the run as a TensorFlow SavedModel folder `out`; `details` are its endpoints
    (name, input, output). `status(text)`: a context manager shown while a step runs."""

    def write(run, out):
        from tt_cli.export.savedmodel import export_savedmodel

        return export_savedmodel(run, out)

    return _whole_folder(run_dir, out, overwrite, "savedmodel", write, status, interpolate)


def preset(run_dir, out, overwrite=False, interpolate=None, status=_no_status):
    """Writes the run's image tower as a KerasHub preset folder `out`; `details` is its tt.json."""

    def write(run, out):
        from tt_cli.export.preset import export_preset

        return export_preset(run, out)

    return _whole_folder(run_dir, out, overwrite, "preset", write, status, interpolate)


def litert(run_dir, out, quantize="none", overwrite=False, interpolate=None, status=_no_status):
    """Writes the run's image and text encoders as LiteRT files into the folder `out` (`quantize`:
    `none` or `dynamic`, int8 weights); `details` are the files written."""

    def write(run, out):
        from tt_cli.export.litert import export_litert

        return export_litert(run, out, quantize=quantize)

    return _whole_folder(run_dir, out, overwrite, "litert", write, status, interpolate)


def onnx(run_dir, out, overwrite=False, interpolate=None, status=_no_status):
    """Writes the run's image and text encoders as ONNX models into the folder `out`; `details`
    are the files written. Needs the `tf2onnx` package (`tt[export]`), checked before anything else."""
    from tt_cli.optional import require

    require("tf2onnx", "export", "ONNX export")

    def write(run, out):
        from tt_cli.export.onnx import export_onnx

        return export_onnx(run, out)

    return _whole_folder(run_dir, out, overwrite, "onnx", write, status, interpolate)


def keras(run_dir, out, overwrite=False, interpolate=None, status=_no_status):
    """Writes the run's whole model as the file `out` (ending in .keras) and its tokenizer
    beside it; `details` are the two files."""
    from tt_cli.export.keras_file import check_keras_path, export_keras, tokenizer_path_for

    check_keras_path(out)
    command = "tt export keras"
    ownership.refuse_overlap(out, [run_dir])
    ownership.refuse_overlap(tokenizer_path_for(out), [run_dir])
    folder = ownership.prepare_file(out, command, overwrite, inputs=[run_dir])
    ownership.prepare_file(tokenizer_path_for(out), command, overwrite, inputs=[run_dir])
    run = _load(run_dir, status, interpolate)
    with status(f"writing {out}"):
        files = export_keras(run, out)
    folder.record([os.path.basename(f) for f in files])
    return Exported(run, out, files)
