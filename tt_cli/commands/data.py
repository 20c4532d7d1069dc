"""`tt data`: convert sources to shards, inspect them, train a tokenizer, embed with h.

`convert`, `inspect` and `tokenizer` never import TensorFlow (the `tfrecord`
package reads and writes their shards), so their URLs go through fsspec; `embed`
imports TensorFlow inside the command and reads URLs through tf.io.gfile.
"""

import os

import click

from tt_cli.commands.json_output import json_option, write_result
from tt_cli.commands.option_types import BATCH, COUNT, COUNT_OR_ZERO, OUTPUT_FILE, OUTPUT_FOLDER, SCALE, VOCAB_SIZE
from tt_cli.commands.tfds_options import tfds_options
from tt_cli.errors import InvalidValueError, UnreadableDataError

TF_FREE_COMMANDS = ("convert", "inspect", "tokenizer")


@click.group()
@click.pass_context
def data(ctx):
    """Prepare datasets: convert, inspect, tokenizer, embed."""
    if ctx.invoked_subcommand in TF_FREE_COMMANDS:  # before their flags are parsed (--json checks its path)
        from tt_cli import storage

        storage.use_fsspec()


@data.command()
@click.argument("src")
@click.argument("out", type=OUTPUT_FOLDER)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "csv", "tsv", "jsonl", "folder", "wds"]),
    default="auto",
    show_default=True,
    help="Source format; auto guesses from the path.",
)
@click.option("--image-column", help="CSV/TSV column of image paths (default: image, filepath, path, ...).")
@click.option("--caption-column", help="CSV/TSV column of captions (default: caption, title, text, ...).")
@click.option("--key-column", help="CSV/TSV column of row ids (default: the image path; rows of one image merge).")
@click.option("--label-column", help="CSV/TSV column of class labels (integers or names).")
@click.option("--num-shards", type=COUNT, help="Number of shards [default: one per 1000 rows].")
@click.option(
    "--workers",
    type=COUNT,
    default=os.cpu_count() or 1,
    show_default=True,
    help="Worker processes (one shard each at a time).",
)
@click.option("--max-size", type=COUNT, help="Re-encode images whose longer side exceeds this as JPEG of this size.")
@click.option("--overwrite", is_flag=True, help="Replace shards of a different source or settings in OUT.")
@json_option("Also write the summary here as JSON.")
@tfds_options
def convert(
    src,
    out,
    fmt,
    image_column,
    caption_column,
    key_column,
    label_column,
    num_shards,
    workers,
    max_size,
    overwrite,
    json_path,
    tfds_data_dir,
    tfds_fields,
):
    """Convert SRC (CSV/TSV, JSON Lines, image folder tree, WebDataset tars, or a TFDS split
    tfds:NAME[/CONFIG]:SPLIT) into TFRecord shards in OUT.

    Every image is decoded once; bad rows go to OUT/rejected.jsonl with their
    reason. Run it again after an interruption to finish only the missing shards.
    A TFDS split is read through TensorFlow, in one process.
    """
    from tt_cli.data.progress import progress_bar
    from tt_cli.data.summary import print_convert_report
    from tt_cli.data.tfds_catalog import TfdsOptions, is_tfds

    if is_tfds(src):
        from tt_cli.data.tfds_convert import convert_tfds

        tfds = TfdsOptions.from_text(tfds_data_dir, tfds_fields)
        report = convert_tfds(src, out, tfds, num_shards, max_size, overwrite, lambda n: progress_bar(n, "converting"))
        print_convert_report(report)
        write_result(json_path, report)
        return
    from tt_cli.data.convert import convert as run_convert

    report = run_convert(
        src,
        out,
        fmt,
        image_column,
        caption_column,
        key_column,
        label_column,
        num_shards,
        workers,
        max_size,
        overwrite,
        progress=lambda total: progress_bar(total, "converting"),
        result_path=json_path,
    )
    print_convert_report(report)
    write_result(json_path, report)


def _refuse_tfds(shards, command):
    """The TF-free commands read shards only: TFDS reads through TensorFlow, which cannot share
    their process with the `tfrecord` package."""
    from tt_cli.data.tfds_catalog import is_tfds

    if is_tfds(shards):
        raise InvalidValueError(
            f"{shards}: `tt data {command}` reads shards, without TensorFlow; convert the TFDS split first: "
            f"tt data convert {shards} OUT."
        )


@data.command()
@click.argument("shards")
@click.option(
    "--verify",
    is_flag=True,
    help="Check every record's CRC and decode every image as training does; name what is broken.",
)
@click.option("--samples", type=COUNT_OR_ZERO, default=3, show_default=True, help="Sample rows to show.")
@json_option("Also write the summary here as JSON.")
def inspect(shards, verify, samples, json_path):
    """Summarise SHARDS (a dataset folder or a glob): counts, features, captions, labels."""
    from tt_cli.data.inspect import inspect_shards
    from tt_cli.data.summary import print_inspect_summary

    _refuse_tfds(shards, "inspect")

    summary = inspect_shards(shards, verify=verify, samples=samples)
    print_inspect_summary(summary)
    write_result(json_path, summary)
    advice = "" if verify else f"; run `tt data inspect --verify {shards}` to check every record and image"
    if summary["damaged"]:
        more = f" (and {len(summary['damaged']) - 1} more)" if len(summary["damaged"]) > 1 else ""
        raise UnreadableDataError(f"{shards}: {summary['damaged'][0]}{more}; make the shards again.")
    if summary["corrupt"]:
        first = summary["corrupt"][0]
        raise UnreadableDataError(
            f"{len(summary['corrupt'])} corrupt file(s); first: {first['file']} at byte offset {first['offset']} "
            f"({first['why']}){advice}."
        )
    if summary["undecodable"]:
        first = summary["undecodable"][0]
        raise UnreadableDataError(
            f"{summary['images_unreadable']} image(s) that training cannot decode; first: key {first['key']!r} "
            f"in {first['file']} ({first['why']})."
        )


@data.command()
@click.argument("shards")
@click.argument("out", type=OUTPUT_FILE)
@click.option(
    "--vocab-size",
    type=VOCAB_SIZE,
    default=32_000,
    show_default=True,
    help="Vocabulary size (capped, with a warning, when the captions cannot fill it).",
)
def tokenizer(shards, out, vocab_size):
    """Train a SentencePiece tokenizer on the captions of SHARDS; write it to OUT.

    OUT may replace only a tokenizer this command wrote there earlier, never an input."""
    from tt_cli.console import STDERR, STDOUT
    from tt_cli.data.make_tokenizer import make_tokenizer

    _refuse_tfds(shards, "tokenizer")
    made = make_tokenizer(shards, out, vocab_size, on_warning=lambda m: STDERR.print(f"[yellow]warning:[/] {m}"))
    STDOUT.print(f"tokenizer: {out} ({made['pieces']:,} pieces, trained on {made['captions']:,} captions)")


@data.command()
@click.argument("shards")
@click.option(
    "--pretrained", required=True, help="Third-tower model: alias (imagenet21k, imagenet), preset name or directory."
)
@click.option("--scale", type=SCALE, default="b16", show_default=True, help="Scale that picks the preset for an alias.")
@click.option(
    "--out",
    required=True,
    type=OUTPUT_FOLDER,
    help="Folder for the embedding shards (one per shard of SHARDS, same names).",
)
@click.option("--batch-size", type=BATCH, default=64, show_default=True, help="Global batch (split over replicas).")
@click.option("--strategy", default="auto", show_default=True, help="auto | default | mirrored | multiworker | tpu")
@click.option("--overwrite", is_flag=True, help="Replace embeddings of another dataset or tower in OUT.")
@json_option("Also write the summary here as JSON.")
@tfds_options
def embed(shards, pretrained, scale, out, batch_size, strategy, overwrite, json_path, tfds_data_dir, tfds_fields):
    """Run the frozen pretrained tower once over SHARDS (or a TFDS split tfds:NAME:SPLIT); write
    only (key, h_embedding) shards to OUT, one per shard (TFDS file) of SHARDS.

    Train with `tt train --data SHARDS --embeddings OUT`. Run it again after an
    interruption to embed only the unfinished shards."""
    from tt_cli.console import STDERR, STDOUT
    from tt_cli.data.embed import embed_shards
    from tt_cli.data.progress import progress_bar
    from tt_cli.data.tfds_catalog import TfdsOptions

    result = embed_shards(
        shards,
        pretrained,
        out,
        scale=scale,
        batch_size=batch_size,
        overwrite=overwrite,
        strategy=strategy,
        progress=lambda total: progress_bar(total, "embedding", unit="images"),
        on_note=lambda m: STDERR.print(f"[yellow]note:[/] {m}"),
        tfds=TfdsOptions.from_text(tfds_data_dir, tfds_fields),
    )
    rate = f", {result['images_per_second']:,.0f} images/s" if result["images_per_second"] else ""
    STDOUT.print(
        f"embedded {result['embedded_now']:,} images in {result['shards_embedded_now']} shard(s) "
        f"({result['shards_already_finished']} already finished) with {result['pretrained']} "
        f"(dim {result['dim']}, {result['replicas']} replica(s)) -> {out} in {result['seconds']:.1f} s{rate}"
    )
    write_result(json_path, result)
