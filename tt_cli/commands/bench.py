"""`tt bench`: flags in, `BenchSettings` out, `run_bench` and `time_pipeline` called. No ML logic here."""

import click

from tt_cli.bench.runner import DEFAULT_MODES, BenchSettings, check_pipeline_inputs, parse_modes
from tt_cli.commands.json_output import json_option, write_result
from tt_cli.commands.option_types import BATCH, COUNT, SCALE, TEXT_LEN, VOCAB_SIZE, tokenizer_file
from tt_cli.commands.tfds_options import tfds_options
from tt_cli.errors import InvalidValueError

D = BenchSettings()


@click.command(context_settings={"show_default": True})
@click.option(
    "--scale", type=SCALE, default=D.scale, help="Model size (as `tt train`). On a CPU, `tiny` or `small` is sensible."
)
@click.option(
    "--image-size",
    type=COUNT,
    default=None,
    help="The trained image tower at NxN (as `tt train`; the third tower keeps its own).  [default: the scale's]",
)
@click.option("--batch-size", type=BATCH, default=D.batch_size, help="Global batch size.")
@click.option(
    "--accum-steps",
    type=COUNT,
    default=D.accum_steps,
    help="Micro-batches per step, as `tt train --accum-steps` (the global batch stays --batch-size).",
)
@click.option(
    "--remat",
    is_flag=True,
    help="Rematerialise the towers' transformer blocks, as `tt train --remat` (compare peak memory and time).",
)
@click.option("--steps", type=COUNT, default=D.steps, help="Timed steps per mode (the median is reported).")
@click.option("--warmup", type=COUNT, default=D.warmup, help="Untimed steps first (tracing, compilation).")
@click.option(
    "--modes",
    default=None,
    help="Comma-separated: clip, lit, 3t, 3t-precomputed, lit-precomputed.  "
    f"[default: {','.join(DEFAULT_MODES)}; without lit for several --pretrained]",
)
@click.option(
    "--precision", default=D.precision, help="auto | float32 | bfloat16 | float16 (auto: bfloat16 on GPU/TPU)."
)
@click.option(
    "--jit/--no-jit",
    default=None,
    help="XLA compilation.  [default: as `tt train`: on, except with several CPU replicas]",
)
@click.option("--strategy", default=D.strategy, help="auto | default | mirrored | multiworker | tpu")
@click.option(
    "--pretrained",
    multiple=True,
    help="Third tower preset to load; repeat it for several (3T learns from each).  "
    "[default: a random ViT of the scale's size; timing needs no weights]",
)
@click.option("--max-text-len", type=TEXT_LEN, default=D.max_text_len)
@click.option("--vocab-size", type=VOCAB_SIZE, default=D.vocab_size)
@click.option(
    "--data", help="Shards to time the input pipeline on (a `tt data convert` directory or a glob, or tfds:NAME:SPLIT)."
)
@click.option(
    "--embeddings",
    multiple=True,
    help="Embedding folder(s) of `tt data embed` for --data, read beside the shards as `tt train` does.",
)
@click.option(
    "--tokenizer",
    callback=tokenizer_file,
    help="SentencePiece .model for the pipeline.  [default: trained on the shards' captions]",
)
@click.option("--pipeline-batches", type=COUNT, default=30, help="Batches timed through the input pipeline.")
@json_option("Also write the results as JSON to this file.")
@tfds_options
def bench(modes, data, embeddings, tokenizer, pipeline_batches, json_path, tfds_data_dir, tfds_fields, **flags):
    """Measure training throughput of CLIP, LiT, 3T and 3T with precomputed embeddings."""
    from tt_cli.bench.report import add_pipeline_ratios, print_results
    from tt_cli.bench.runner import run_bench
    from tt_cli.console import STDERR
    from tt_cli.data.progress import progress_bar
    from tt_cli.data.tfds_catalog import TfdsOptions

    if tokenizer is not None and data is None:
        raise InvalidValueError("--tokenizer is for timing the input pipeline; give the shards with --data too.")
    if embeddings and data is None:
        raise InvalidValueError("--embeddings are read beside --data; give the shards with --data too.")
    settings = BenchSettings(modes=parse_modes(modes) if modes is not None else None, **flags)
    tfds = TfdsOptions.from_text(tfds_data_dir, tfds_fields)
    check_pipeline_inputs(data, tokenizer, tfds)
    total = len(settings.modes) * (settings.warmup + settings.steps)
    with progress_bar(total, "benchmarking", unit="steps") as advance:
        result = run_bench(settings, log=STDERR.print, on_step=advance, embeddings=embeddings)
    if data:
        from tt_cli.bench.pipeline_timing import time_pipeline

        STDERR.print(f"timing the input pipeline on {data}")
        size = result["header"]["image_size"]
        result["pipeline"] = time_pipeline(
            data,
            settings.batch_size,
            (size, size),
            settings.max_text_len,
            settings.vocab_size,
            tokenizer_path=tokenizer,
            batches=pipeline_batches,
            log=STDERR.print,
            embeddings=embeddings,
            tfds=tfds,
        )
    add_pipeline_ratios(result)
    print_results(result)
    write_result(json_path, result)
