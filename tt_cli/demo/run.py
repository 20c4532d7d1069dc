"""The built-in demo: what `tt train` does when no `--data` is given. No network.

1. Writes deterministic synthetic splits (coloured shapes whose captions name
   colour, shape, size and position) under `OUT/demo_data/`.
2. Makes a small pretrained third tower with `tt pretrain` on a labelled split of
   its own (first use only; cached, see `prepare.py`).
3. Trains 3T at the `tiny` scale (settings in `settings.py`; the flags the user gave win).
4. Prints zero-shot accuracy and retrieval recall on the held-out split beside
   chance, and writes them to `OUT/demo_results.json`.
5. Writes the run's HTML report (`tt report`: settings, curves, galleries and the
   zero-shot confusion on the held-out split) to `OUT/report.html` and says where.

In use (what `tt train --scale b16` without `--data` runs; it trains, so it is not run here):

```python
from tt_cli.training.config import TrainConfig

run_demo(TrainConfig(out=None, scale="b16"), explicit={"scale"})
```
"""

import dataclasses
import os
import time

from tt_cli import storage
from tt_cli.console import STDERR
from tt_cli.demo.settings import DEMO, DEMO_TEMPLATES, demo_settings
from tt_cli.errors import InvalidValueError
from tt_cli.training.trainer import train

RESULTS_JSON = "demo_results.json"


def _quiet_tensorflow():
    # Evaluation builds a tf.function per call; TensorFlow's retracing warnings are noise here.
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def run_demo(config, explicit=frozenset()):
    """Runs the demo for `config` (a `TrainConfig` without data); `explicit` names the
    fields the user set, which keep their values (see `settings.py`)."""
    from tt_cli.data import schema
    from tt_cli.demo.prepare import demo_split, demo_tower
    from tt_cli.demo.report import print_demo_table
    from tt_cli.eval.validation import ValidationEvaluator
    from tt_cli.jsonfile import write_json

    if config.out and storage.is_url(config.out):  # its data and cached tower are local folders
        raise InvalidValueError(
            f"{config.out}: the demo writes its synthetic data on local disk; give a local "
            "output folder, or train on shards of your own there."
        )
    started = time.perf_counter()
    settings = demo_settings(config, explicit)
    config = settings.config
    log = STDERR.print
    log(
        f"[bold]tt demo[/]: no training data given, so training {config.mode} at scale {config.scale} on synthetic "
        f"coloured shapes ({settings.num_train} training images, {settings.num_val} held out) in {config.out}"
    )
    _quiet_tensorflow()
    _check_report_path(config.out)
    data_dir = os.path.join(config.out, "demo_data")
    train_data = demo_split(data_dir, "train", settings.num_train, DEMO.train_seed, settings.image_size)
    val_data = demo_split(data_dir, "val", settings.num_val, DEMO.val_seed, settings.image_size)
    pretrained = config.pretrained
    if config.mode != "clip" and "pretrained" not in explicit:
        pretrained = demo_tower(settings, data_dir, log)
    config = dataclasses.replace(config, data=train_data, val_data=val_data, pretrained=pretrained)
    _, info = schema.resolve_shards(val_data)
    # The held-out numbers, with prompts in the captions' own wording; mid-run, three of them.
    final = ValidationEvaluator(val_data, info.class_names, templates=DEMO_TEMPLATES)
    mid_run = ValidationEvaluator(
        val_data, info.class_names, templates=DEMO_TEMPLATES, keys=("top1", "image_to_text_R@1", "text_to_image_R@1")
    )

    result = train(config, log=log, evaluator=mid_run)
    if result.logs:
        log("done: " + " ".join(f"{k} {v:.4g}" for k, v in result.logs.items()))
    results = final.evaluate(result.model, result.tokenizer)
    seconds = time.perf_counter() - started
    print_demo_table(
        results,
        len(info.class_names),
        info.num_examples,
        title=f"tt demo: {config.mode} after {config.steps} steps, held-out split "
        f"({info.num_examples} images, {len(info.class_names)} classes), {seconds:.0f} s",
    )
    write_json(
        os.path.join(config.out, RESULTS_JSON),
        {
            "results": results,
            "num_classes": len(info.class_names),
            "num_images": info.num_examples,
            "seconds": seconds,
            "mode": config.mode,
            "scale": config.scale,
            "steps": config.steps,
            "pretrained": config.pretrained if config.mode != "clip" else None,
            "templates": DEMO_TEMPLATES,
        },
    )
    _write_report(config, result, val_data, log)
    return result.logs


def _check_report_path(out):
    """Before training: OUT/report.html must be free or an earlier report of tt's."""
    from tt_cli.report.build import default_path, prepare_report_path

    prepare_report_path(default_path(out), [])


def _write_report(config, result, val_data, log):
    """The run's report on the held-out split, from the model in memory."""
    from tt_cli.checkpoints import RunCheckpoints
    from tt_cli.report.build import default_path, run_report
    from tt_cli.run_dir import Run, read_run_record

    step = RunCheckpoints(None, config.out).steps()[0]  # the one the model in memory was saved as
    run = Run(config.out, read_run_record(config.out), result.model, result.tokenizer, step)
    written = run_report(config.out, val_data, default_path(config.out), templates=DEMO_TEMPLATES, run=run)
    log(
        f"[bold]report[/]: {written['path']} ({written['bytes'] / 1e3:,.0f} kB; settings, training curves, "
        "retrieval galleries and zero-shot confusion on the held-out split): open it in a browser"
    )
