"""What `tt train --data` does around `train()`: the folder checks before anything is
read, and the validation numbers during and after training.

(`tt train` without `--data` runs the demo, `tt_cli.demo.run`, which calls `train()` too.)
"""

import dataclasses
import functools

from tt_cli import storage
from tt_cli.console import STDERR
from tt_cli.training.trainer import train

DEFAULT_OUT = "runs/tt"


def run_training(config):
    """Trains `config` (a `TrainConfig`; `out` None means `runs/tt`); prints the final
    logs and, with `val_data`, the validation numbers of the trained model."""
    from tt_cli.ownership import glob_folders, refuse_overlap

    config = dataclasses.replace(config, out=config.out or DEFAULT_OUT)
    # Before anything is read. (The demo keeps its own data inside its run directory.)
    for data in (config.data, config.val_data, *config.embeddings):
        refuse_overlap(config.out, glob_folders(data) if data and not storage.exists(data) else [data], "run directory")
    refuse_overlap(config.out, [config.tokenizer], "run directory")
    evaluator = None
    if config.val_data:
        from tt_cli.eval.validation import ValidationEvaluator

        evaluator = ValidationEvaluator.for_shards(config.val_data, tfds=config.tfds)
    # Plain text: a path such as runs/clip[a*] is no rich markup.
    result = train(config, log=functools.partial(STDERR.print, markup=False), evaluator=evaluator)
    if result.logs:
        STDERR.print("done: " + " ".join(f"{k} {v:.4g}" for k, v in result.logs.items()))
    if evaluator is not None:
        results = evaluator.evaluate(result.model, result.tokenizer)
        STDERR.print("validation: " + " ".join(f"{k} {v:.4f}" for k, v in results.items()))
    return result.logs
