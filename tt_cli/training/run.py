"""What `tt train` does around `train()`: the demo when no data is given, and the
validation numbers during and after training."""

import os

from rich.console import Console

from tt_cli.training.trainer import train

STDERR = Console(stderr=True)


def validation_fn(val_data, tokenizer_of, log):
    """evaluate(model) -> {zero-shot top-1 (labelled sets), retrieval R@1 both ways}."""
    from tt_cli.data import schema
    from tt_cli.eval import retrieval, zero_shot

    files, info = schema.resolve_shards(val_data)

    def evaluate(model):
        tokenizer = tokenizer_of()
        results = {}
        if info is not None and info.class_names:
            results.update(zero_shot.zero_shot_accuracy(model, tokenizer, val_data, info.class_names,
                                                        show_progress=False))
        results.update(retrieval.retrieval_recall(model, tokenizer, val_data, show_progress=False))
        return results

    return evaluate


def run_training(config):
    if config.data is None:
        from tt_cli.demo.run import run_demo

        return run_demo(config)
    if config.out is None:
        config.out = "runs/tt"
    evaluate = None
    if config.val_data:
        from tt_cli.data.tokenizer import TextTokenizer
        from tt_cli.run_dir import TOKENIZER

        evaluate = validation_fn(
            config.val_data, lambda: TextTokenizer(os.path.join(config.out, TOKENIZER), config.max_text_len), STDERR.print)
    logs = train(config, log=STDERR.print, evaluate=evaluate)
    if logs:
        STDERR.print("done: " + " ".join(f"{k} {v:.4g}" for k, v in logs.items()))
    if evaluate is not None:
        from tt_cli.run_dir import load_run

        run = load_run(config.out)
        results = evaluate(run.model)
        STDERR.print("validation: " + " ".join(f"{k} {v:.4f}" for k, v in results.items()))
    return logs
