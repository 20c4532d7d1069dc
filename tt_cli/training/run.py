"""What `tt train` does around `train()`: the demo when no data is given, and the
validation numbers during and after training."""

import os

from tt_cli.console import STDERR
from tt_cli.training.trainer import train


def validation_fn(val_data, tokenizer_of):
    """evaluate(model) -> zero-shot metrics (labelled sets) and retrieval recall."""
    from tt_cli.data import schema
    from tt_cli.eval.validation import validation_metrics

    _, info = schema.resolve_shards(val_data)
    class_names = info.class_names if info is not None else None
    return lambda model: validation_metrics(model, tokenizer_of(), val_data, class_names)


def run_training(config):
    if config.data is None:
        from tt_cli.demo.run import run_demo

        return run_demo(config)
    if config.out is None:
        config.out = "runs/tt"
    from tt_cli.ownership import glob_folders, refuse_overlap

    # Before anything is read. (The demo keeps its own data inside its run directory.)
    for data in (config.data, config.val_data):
        refuse_overlap(config.out, glob_folders(data) if data and not os.path.exists(data) else [data], "--out")
    refuse_overlap(config.out, [config.tokenizer], "--out")
    evaluate = None
    if config.val_data:
        from tt_cli.data.tokenizer import TextTokenizer
        from tt_cli.run_dir import TOKENIZER

        evaluate = validation_fn(
            config.val_data, lambda: TextTokenizer(os.path.join(config.out, TOKENIZER), config.max_text_len))
    logs = train(config, log=STDERR.print, evaluate=evaluate)
    if logs:
        STDERR.print("done: " + " ".join(f"{k} {v:.4g}" for k, v in logs.items()))
    if evaluate is not None:
        from tt_cli.run_dir import load_run

        run = load_run(config.out)
        results = evaluate(run.model)
        STDERR.print("validation: " + " ".join(f"{k} {v:.4f}" for k, v in results.items()))
    return logs
