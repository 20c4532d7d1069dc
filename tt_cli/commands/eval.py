"""`tt eval`: zero-shot classification, retrieval and few-shot probes of one run, or of
several side by side (`tt eval retrieval RUN1 RUN2 ... --data D`: one table, a column per run).

Thin Click layer: parse, call `tt_cli.eval.evaluate`, print a table, write
`--json`. TensorFlow is imported inside the commands only.
"""

import click

from tt_cli.commands import option_types
from tt_cli.commands.eval_options import BATCH_SIZE, CLASSNAMES, INTERPOLATE, SAMPLE_SEED, SAMPLES, TEMPLATES
from tt_cli.commands.json_output import json_option, write_result
from tt_cli.commands.option_types import COUNT
from tt_cli.commands.tfds_options import tfds_options
from tt_cli.errors import InvalidValueError

RUNS = click.argument("runs", nargs=-1, required=True, type=click.Path(), metavar="RUN...")
JSON = json_option("Also write the results here as JSON.")
ENSEMBLE = click.option(
    "--ensemble",
    "other_run",
    type=click.Path(),
    help="A second run (e.g. LiT next to 3T): also report alpha·RUN + (1-alpha)·OTHER_RUN (with one RUN only).",
)
ALPHA = click.option(
    "--alpha",
    type=option_types.ALPHA,
    help="Ensemble weight of RUN in [0, 1], or 'auto' (picked on a held-out half) [default with --ensemble: auto].",
)

REPORT = click.option(
    "--report",
    "report_path",
    type=option_types.OUTPUT_FILE,
    help="Also write an HTML page of this evaluation (see `tt report`).",
)


def _check_alpha_has_ensemble(runs, other_run, alpha):
    if alpha is not None and other_run is None:
        raise InvalidValueError("--alpha needs --ensemble OTHER_RUN.")
    if other_run is not None and len(runs) != 1:
        raise InvalidValueError(
            f"--ensemble combines one RUN with {other_run}, but {len(runs)} runs were given; "
            "drop --ensemble to evaluate them side by side."
        )


def _report_folder(report_path, runs, data, *files):
    """Checks `--report FILE` before any work (None without one); `_finish` writes it."""
    if not report_path:
        return None
    from tt_cli.report import build

    return build.prepare_report_path(report_path, build.report_inputs(runs, data, files), "--report")


def _finish(result, json_path, report=None, samples=None, seed=None):
    """Prints the result, writes --json, and --report from `report` = (path, folder, what the evaluation collected)."""
    from tt_cli.eval.report import print_result

    print_result(result)
    write_result(json_path, result)
    if report and report[0]:
        from tt_cli.console import STDOUT
        from tt_cli.report.build import DEFAULT_SAMPLES, DEFAULT_SEED, eval_report

        path, folder, collected = report
        written = eval_report(
            path, result, collected, samples or DEFAULT_SAMPLES, DEFAULT_SEED if seed is None else seed, folder
        )
        STDOUT.print(f"report: {written['path']} ({written['bytes'] / 1e3:,.0f} kB)")


@click.group("eval")
def eval_group():
    """Evaluate runs: zero-shot, retrieval, fewshot (several runs: side by side)."""


@eval_group.command("zero-shot")
@RUNS
@click.option(
    "--data", required=True, help="Labelled shards (a `tt data convert` folder or a glob), or tfds:NAME:SPLIT."
)
@CLASSNAMES
@TEMPLATES
@ENSEMBLE
@ALPHA
@BATCH_SIZE
@INTERPOLATE
@JSON
@REPORT
@tfds_options
def zero_shot(
    runs,
    data,
    classnames,
    templates,
    other_run,
    alpha,
    batch_size,
    interpolate,
    json_path,
    report_path,
    tfds_data_dir,
    tfds_fields,
):
    """Zero-shot classification of each RUN on --data: top-1, top-5, mean per-class recall."""
    from tt_cli.data.tfds_catalog import TfdsOptions
    from tt_cli.eval.evaluate import zero_shot_report

    _check_alpha_has_ensemble(runs, other_run, alpha)
    folder = _report_folder(report_path, [*runs, other_run], data, classnames)
    collected = [] if report_path else None
    tfds = TfdsOptions.from_text(tfds_data_dir, tfds_fields)
    result = zero_shot_report(
        runs,
        data,
        classnames,
        templates,
        other_run,
        alpha,
        batch_size,
        collect=collected,
        tfds=tfds,
        interpolate=interpolate,
    )
    _finish(result, json_path, (report_path, folder, collected))


@eval_group.command()
@RUNS
@click.option(
    "--data", required=True, help="Captioned shards (a `tt data convert` folder or a glob), or tfds:NAME:SPLIT."
)
@ENSEMBLE
@ALPHA
@BATCH_SIZE
@INTERPOLATE
@JSON
@REPORT
@SAMPLES
@SAMPLE_SEED
@tfds_options
def retrieval(
    runs,
    data,
    other_run,
    alpha,
    batch_size,
    interpolate,
    json_path,
    report_path,
    samples,
    seed,
    tfds_data_dir,
    tfds_fields,
):
    """Image<->text retrieval of each RUN on --data: Recall@1/5/10 both ways, all images vs their first 5 captions."""
    from tt_cli.data.tfds_catalog import TfdsOptions
    from tt_cli.eval.evaluate import retrieval_report

    _check_alpha_has_ensemble(runs, other_run, alpha)
    folder = _report_folder(report_path, [*runs, other_run], data)
    collected = [] if report_path else None
    tfds = TfdsOptions.from_text(tfds_data_dir, tfds_fields)
    result = retrieval_report(
        runs, data, other_run, alpha, batch_size, collect=collected, tfds=tfds, interpolate=interpolate
    )
    _finish(result, json_path, (report_path, folder, collected), samples, seed)


@eval_group.command()
@RUNS
@click.option("--train-data", required=True, help="Labelled shards to draw the shots from.")
@click.option("--data", required=True, help="Labelled shards to test the probes on.")
@click.option(
    "--shots",
    type=option_types.SHOTS,
    default="1,5,10,25",
    show_default=True,
    help="Images per class, comma-separated.",
)
@click.option("--seeds", type=COUNT, default=3, show_default=True, help="Random draws of the shots to average over.")
@click.option(
    "--l2-reg",
    type=option_types.L2_REG,
    default="auto",
    show_default=True,
    help="Ridge strength, or 'auto': leave-one-out on the shots over 2^-10..2^10.",
)
@BATCH_SIZE
@INTERPOLATE
@JSON
@tfds_options
def fewshot(
    runs, train_data, data, shots, seeds, l2_reg, batch_size, interpolate, json_path, tfds_data_dir, tfds_fields
):
    """Few-shot linear probes (closed-form ridge) on each RUN's frozen image embeddings."""
    from tt_cli.data.tfds_catalog import TfdsOptions
    from tt_cli.eval.evaluate import fewshot_report

    tfds = TfdsOptions.from_text(tfds_data_dir, tfds_fields)
    _finish(
        fewshot_report(runs, train_data, data, shots, seeds, l2_reg, batch_size, tfds=tfds, interpolate=interpolate),
        json_path,
    )


@eval_group.command()
@RUNS
@click.option(
    "--tasks",
    default="all",
    show_default=True,
    help="Comma-separated benchmarks (imagenet1k, imagenet_v2, imagenet_a, imagenet_r, imagenet_sketch, cifar10, "
    "cifar100, caltech101, pets, flowers102, dtd, food101, coco_retrieval) or zeroshot=DATA / retrieval=DATA; "
    "'all' is every benchmark. Those whose data is not prepared are skipped.",
)
@BATCH_SIZE
@json_option("Also write the results here: a JSON list of rows in CLIP_benchmark's format.")
@tfds_options
def suite(runs, tasks, batch_size, json_path, tfds_data_dir, tfds_fields):
    """Every benchmark task once per RUN, one table (a column per run), CLIP_benchmark's rows with --json."""
    from tt_cli.data.progress import progress_bar
    from tt_cli.data.tfds_catalog import TfdsOptions
    from tt_cli.eval.report import print_suite
    from tt_cli.eval.suite import DEFAULT_TASKS, run_suite

    result = run_suite(
        runs,
        DEFAULT_TASKS if tasks == "all" else tasks,
        TfdsOptions.from_text(tfds_data_dir, tfds_fields),
        batch_size,
        progress=lambda total: progress_bar(total, "suite", unit="images"),
    )
    print_suite(result)
    write_result(json_path, result["rows"])
