"""`tt eval`: zero-shot classification, retrieval and few-shot probes of one run, or of
several side by side (`tt eval retrieval RUN1 RUN2 ... --data D`: one table, a column per run).

Thin Click layer: parse, call `tt_cli.eval.evaluate`, print a table, write
`--json`. TensorFlow is imported inside the commands only.
"""

import click

from tt_cli.commands import option_types
from tt_cli.commands.json_output import json_option, write_result
from tt_cli.commands.option_types import COUNT
from tt_cli.errors import InvalidValueError

BATCH_SIZE = click.option("--batch-size", type=COUNT, default=128, show_default=True,
                          help="Images or texts per forward pass.")
JSON = json_option("Also write the results here as JSON.")
RUNS = click.argument("runs", nargs=-1, required=True, type=click.Path(), metavar="RUN...")
ENSEMBLE = click.option("--ensemble", "other_run", type=click.Path(),
                        help="A second run (e.g. LiT next to 3T): also report alpha·RUN + (1-alpha)·OTHER_RUN "
                             "(with one RUN only).")
ALPHA = click.option("--alpha", type=option_types.ALPHA,
                     help="Ensemble weight of RUN in [0, 1], or 'auto' (picked on a held-out half) "
                          "[default with --ensemble: auto].")


def _check_alpha_has_ensemble(runs, other_run, alpha):
    if alpha is not None and other_run is None:
        raise InvalidValueError("--alpha needs --ensemble OTHER_RUN.")
    if other_run is not None and len(runs) != 1:
        raise InvalidValueError(f"--ensemble combines one RUN with {other_run}, but {len(runs)} runs were given; "
                                "drop --ensemble to evaluate them side by side.")


def _finish(result, json_path):
    from tt_cli.eval.report import print_result

    print_result(result)
    write_result(json_path, result)


@click.group("eval")
def eval_group():
    """Evaluate runs: zero-shot, retrieval, fewshot (several runs: side by side)."""


@eval_group.command("zero-shot")
@RUNS
@click.option("--data", required=True, help="Labelled shards (a `tt data convert` folder or a glob).")
@click.option("--classnames", type=click.Path(dir_okay=False),
              help="One class name per line [default: class_names of the shards' dataset.json].")
@click.option("--templates", default="clip", show_default=True,
              help="Prompts: 'clip' (the CLIP paper's 80), 'simple' (one), or a file of one template per line with {}.")
@ENSEMBLE
@ALPHA
@BATCH_SIZE
@JSON
def zero_shot(runs, data, classnames, templates, other_run, alpha, batch_size, json_path):
    """Zero-shot classification of each RUN on --data: top-1, top-5, mean per-class recall."""
    from tt_cli.eval.evaluate import zero_shot_report

    _check_alpha_has_ensemble(runs, other_run, alpha)

    _finish(zero_shot_report(runs, data, classnames, templates, other_run, alpha, batch_size), json_path)


@eval_group.command()
@RUNS
@click.option("--data", required=True, help="Captioned shards (a `tt data convert` folder or a glob).")
@ENSEMBLE
@ALPHA
@BATCH_SIZE
@JSON
def retrieval(runs, data, other_run, alpha, batch_size, json_path):
    """Image<->text retrieval of each RUN on --data: Recall@1/5/10 both ways, all images vs all captions."""
    from tt_cli.eval.evaluate import retrieval_report

    _check_alpha_has_ensemble(runs, other_run, alpha)

    _finish(retrieval_report(runs, data, other_run, alpha, batch_size), json_path)


@eval_group.command()
@RUNS
@click.option("--train-data", required=True, help="Labelled shards to draw the shots from.")
@click.option("--data", required=True, help="Labelled shards to test the probes on.")
@click.option("--shots", type=option_types.SHOTS, default="1,5,10,25", show_default=True,
              help="Images per class, comma-separated.")
@click.option("--seeds", type=COUNT, default=3, show_default=True,
              help="Random draws of the shots to average over.")
@click.option("--l2-reg", type=option_types.L2_REG, default="auto", show_default=True,
              help="Ridge strength, or 'auto': leave-one-out on the shots over 2^-10..2^10.")
@BATCH_SIZE
@JSON
def fewshot(runs, train_data, data, shots, seeds, l2_reg, batch_size, json_path):
    """Few-shot linear probes (closed-form ridge) on each RUN's frozen image embeddings."""
    from tt_cli.eval.evaluate import fewshot_report

    _finish(fewshot_report(runs, train_data, data, shots, seeds, l2_reg, batch_size),
            json_path)
