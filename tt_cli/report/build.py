"""`tt report RUN` and `tt eval ... --report FILE`: assemble the sections and write the page.

A run report holds the run's settings (`run.json`), its training curves
(`metrics.jsonl`) and, given data, the retrieval galleries and the zero-shot
confusion of the latest checkpoint on it. An evaluation report holds the galleries
and confusion of the runs an evaluation scored, side by side.

The file follows tt's ownership rule (`tt_cli.ownership`): it may replace only a
report tt wrote (listed in its folder's manifest with the hash of its content),
never an input of the same command: a run file, the data, a class-name file.

In use (what `tt report runs/demo --data ...` runs, after a training run):

```python
summary = run_report("runs/demo", data="runs/demo/demo_data/val-200-s2-32px")
summary["path"], summary["images"]  # ('runs/demo/report.html', 102)
```
"""

import os

from tt_cli import ownership, storage
from tt_cli import run_dir as rd
from tt_cli.errors import InvalidValueError
from tt_cli.report import confusion, curves, gallery
from tt_cli.report.evaluation import from_encoded
from tt_cli.report.html import image_tag, name_values, page, section

COMMAND = "tt report"
DEFAULT_NAME = "report.html"
DEFAULT_SAMPLES = 16
DEFAULT_SEED = 0
RUN_FILES = (rd.RUN_JSON, rd.MODEL_JSON, rd.TOKENIZER, rd.CHECKPOINTS, rd.METRICS, rd.LOGS)


def default_path(run_dir):
    return os.path.join(run_dir, DEFAULT_NAME)


def _data_inputs(data):
    if not data:
        return []
    return [data] if storage.exists(data) else ownership.glob_folders(data)


def prepare_report_path(out, inputs, flag=None):
    """Checks, before any work, that `out` may be written; returns its folder's manifest."""
    ownership.refuse_overlap(out, inputs, flag or "report")
    return ownership.prepare_file(out, COMMAND, overwrite=None, flag=flag)


def report_inputs(run_dirs=(), data=None, other_files=()):
    """The paths a report's command reads: each run's own files, the data, e.g. a class-name file."""
    return (
        [os.path.join(r, name) for r in run_dirs if r for name in RUN_FILES]
        + _data_inputs(data)
        + [p for p in other_files if p]
    )


def write_report(out, text, folder):
    """Writes `text` atomically and lists the file as tt's in its folder's manifest."""
    try:
        storage.makedirs(storage.dirname(storage.abspath(out)))
        with storage.open(out + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        storage.replace(out + ".tmp", out)
    except OSError as e:
        raise InvalidValueError(f"{out}: cannot write ({e.strerror}).")
    folder.record([os.path.basename(out)])
    return {"path": out, "bytes": storage.getsize(out)}


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in _flatten(v, f"{prefix}{k}.")]
    if isinstance(value, list) and len(value) > 8:
        value = f"[{len(value)} items]"
    return [(prefix[:-1], value)]


def settings_section(record):
    """run.json (a `RunRecord`) as name/value rows: the settings as given, then what tt
    resolved from them, the data's fingerprint and the versions (`group.name`)."""
    groups = {"resolved": record.resolved, "dataset": record.dataset or {}, "versions": record.versions or {}}
    rows = _flatten(record.config) + [row for name, group in groups.items() for row in _flatten(group, f"{name}.")]
    return section("settings", "Settings (run.json)", name_values(rows, "settings"))


def curves_section(run_dir):
    path = os.path.join(run_dir, rd.METRICS)
    if not storage.isfile(path):
        return section("curves", "Training curves", "", f"{path}: not written yet (no step logged).")
    records, skipped = curves.read_metrics(path)
    panels = curves.curve_pngs(records)
    body = '<div class="curves">' + "".join(image_tag(png, title, "image/png") for title, png in panels) + "</div>"
    note = f"{len(records)} logged lines of {path}" + (f"; {skipped} unreadable lines skipped" if skipped else "")
    return section("curves", "Training curves", body, note)


def evaluation_sections(evaluations, samples=DEFAULT_SAMPLES, seed=DEFAULT_SEED):
    """Gallery and confusion `<section>`s of [(run name, RunEvaluation)] on one dataset, side by side.
    Runs evaluated several at a time (`tt eval ... RUN1 RUN2`) pass their whole list here."""
    sections = []
    if evaluations[0][1].similarity is not None:
        sections += gallery.gallery_sections(evaluations, samples, seed)
    if evaluations[0][1].probabilities is not None:
        sections.append(confusion.confusion_section(evaluations))
    return sections


def run_report(
    run_dir,
    data=None,
    out=None,
    classnames=None,
    templates=None,
    samples=DEFAULT_SAMPLES,
    seed=DEFAULT_SEED,
    batch_size=128,
    folder=None,
    run=None,
    tfds=None,
):
    """Writes the report of `run_dir` (to RUN/report.html by default); returns {"path", "bytes", ...}.

    `templates`: a template set's name, a file, or a list of prompts (zero-shot, labelled data only);
    None: the data's own (a TFDS benchmark's built-in prompts), else CLIP's 80.
    `tfds`: `tfds_catalog.TfdsOptions` when `data` is a TFDS dataset (tfds:NAME:SPLIT).
    `folder`: what `prepare_report_path` returned, when the caller checked the path already.
    `run`: the run already in memory (`tt_cli.run_dir.Run`; the demo's), else its latest checkpoint is loaded.
    """
    record = rd.read_run_record(run_dir)
    out = out or default_path(run_dir)
    folder = folder or prepare_report_path(out, report_inputs([run_dir], data, [classnames]))
    sections = [settings_section(record), curves_section(run_dir)]
    notes = []
    if data:
        from tt_cli.data import schema
        from tt_cli.eval import zero_shot
        from tt_cli.eval.templates import load_templates
        from tt_cli.report.evaluation import evaluate_run
        from tt_cli.run_dir import load_run

        _, info = schema.resolve_shards(data, tfds)
        names = None
        if classnames or (info is not None and info.class_names):
            names = zero_shot.class_names_for(info, classnames, data)
        templates = templates or zero_shot.default_templates(info)
        prompts = load_templates(templates) if isinstance(templates, str) else list(templates)
        run = run or load_run(run_dir)
        evaluation = evaluate_run(run, data, names, prompts, batch_size, tfds)
        sections += evaluation_sections([(f"{evaluation.name} (step {run.step})", evaluation)], samples, seed)
        if evaluation.similarity is None:
            notes.append("no galleries: the images have no captions")
        if evaluation.probabilities is None:
            notes.append("no zero-shot confusion: the data have no labels or no class names")
    subtitle = (
        f"{storage.abspath(run_dir)}" + (f" · evaluated on {data}" if data else "") + "".join(f" · {n}" for n in notes)
    )
    text = page(f"tt report: {os.path.basename(os.path.normpath(run_dir))}", sections, subtitle)
    return dict(write_report(out, text, folder), data=data, sections=len(sections))


def eval_report(out, result, collected, samples=DEFAULT_SAMPLES, seed=DEFAULT_SEED, folder=None):
    """Writes the gallery and confusion sections of one `tt eval` result, from what its
    evaluation `collect`ed: [(run name, encoded images with thumbnails, {scores})]."""
    folder = folder or ownership.prepare_file(out, COMMAND, overwrite=None)
    evaluations = [(name, from_encoded(name, images, **scores)) for name, images, scores in collected]
    runs = ", ".join(m["name"] for m in result["models"])
    text = page(
        f"tt eval {result['task']}: {runs}",
        evaluation_sections(evaluations, samples, seed),
        f"{result['data']} · {result['evaluated_on']}",
    )
    return write_report(out, text, folder)
