"""Rich tables for the `tt data` commands' results (stdout).

Example:
>>> print_convert_report({"source": "captions.jsonl", "read": 3, "written": 2, "rejected": {"empty_file": 1},
...     "converted": {}, "num_shards": 1, "out": "shards/", "seconds": 0.1})
tt data convert captions.jsonl -> shards/
┏━━━━━━━━━━━━━━┳━━━━━━━┓
┃ rows         ┃ count ┃
┡━━━━━━━━━━━━━━╇━━━━━━━┩
│ read         │     3 │
│ written      │     2 │
│ rejected     │     1 │
│   empty_file │     1 │
└──────────────┴───────┘
1 shard(s), 0.1 s. Rejected rows and reasons: rejected.jsonl.
"""

from rich.table import Table

from tt_cli.console import STDOUT


def print_convert_report(report):
    if report.get("already_complete"):
        STDOUT.print(f"[green]{report['out']} is already complete[/]: nothing to redo.")
    STDOUT.print(f"[bold]tt data convert[/] {report['source']} -> {report['out']}")
    table = Table(show_header=True)
    table.add_column("rows")
    table.add_column("count", justify="right")
    table.add_row("read", f"{report['read']:,}")
    table.add_row("[green]written", f"{report['written']:,}")
    rejected = report["rejected"]
    table.add_row("[red]rejected", f"{sum(rejected.values()):,}")
    for reason, n in rejected.items():
        table.add_row(f"  {reason}", f"{n:,}")
    if report["converted"]:
        table.add_row("converted (kept)", f"{sum(report['converted'].values()):,}")
        for kind, n in report["converted"].items():
            table.add_row(f"  {kind}", f"{n:,}")
    if report.get("ignored_files"):
        table.add_row("non-image files ignored", f"{report['ignored_files']:,}")
    STDOUT.print(table)
    if report.get("labels_ignored"):
        STDOUT.print(
            f"[yellow]note:[/] {report['labels_ignored']:,} label(s) ignored: at most half of the rows carry "
            "one, so the source is not a labelled set."
        )
    if report.get("source_changed") and not report.get("already_complete"):
        STDOUT.print(
            f"[yellow]note:[/] {report['source_changed']} shard(s) converted again: their image files changed "
            "(size or modification time) since the earlier conversion."
        )
    resumed = report.get("shards_resumed", 0)
    STDOUT.print(
        f"{report['num_shards']} shard(s)"
        + (f" ({resumed} already finished by an earlier run)" if resumed and not report.get("already_complete") else "")
        + f", {report['seconds']:.1f} s."
        + (" Rejected rows and reasons: rejected.jsonl." if rejected else "")
    )


def _stats_row(table, name, stats):
    if stats:
        table.add_row(name, *(f"{stats[k]:g}" for k in ("min", "mean", "median", "p95", "max")))


def print_inspect_summary(summary):
    STDOUT.print(
        f"[bold]{summary['path']}[/]: {summary['num_examples']:,} examples in "
        f"{summary['num_shards']} shard(s), {summary['bytes'] / 1e6:,.1f} MB"
    )
    shards = Table(title="shards")
    for column in ("file", "examples", "MB"):
        shards.add_column(column, justify="left" if column == "file" else "right")
    listed = summary["shards"]
    for shard in listed[:10]:
        shards.add_row(shard["file"], f"{shard['examples']:,}", f"{shard['bytes'] / 1e6:.2f}")
    if len(listed) > 10:
        shards.add_row(f"... {len(listed) - 10} more", "", "")
    STDOUT.print(shards)

    features = Table(title="features")
    for column in ("feature", "type", "examples"):
        features.add_column(column)
    for name, entry in sorted(summary["features"].items()):
        features.add_row(name, entry["type"], f"{entry['examples']:,}")
    STDOUT.print(features)

    captions = Table(title="captions")
    for column in ("", "min", "mean", "median", "p95", "max"):
        captions.add_column(column, justify="right")
    _stats_row(captions, "per example", summary["captions_per_example"])
    _stats_row(captions, "characters", summary["caption_chars"])
    _stats_row(captions, "words", summary["caption_words"])
    STDOUT.print(captions)

    if summary["labels"]:
        labels = Table(title=f"labels ({len(summary['labels'])} classes)")
        for column in ("label", "class", "count"):
            labels.add_column(column)
        for row in summary["labels"][:20]:
            labels.add_row(str(row["label"]), row["name"] or "", f"{row['count']:,}")
        if len(summary["labels"]) > 20:
            labels.add_row("...", f"{len(summary['labels']) - 20} more", "")
        STDOUT.print(labels)
    if summary["h_embedding"]:
        STDOUT.print(f"h_embedding: {summary['h_embedding']}")

    if summary["samples"]:
        samples = Table(title="sample rows")
        for column in ("key", "image", "label", "texts"):
            samples.add_column(column, overflow="fold")
        for row in summary["samples"]:
            texts = " | ".join(row["texts"])
            samples.add_row(row["key"], row.get("image", ""), row.get("label", ""), texts[:120])
        STDOUT.print(samples)
    for warning in summary["warnings"]:
        STDOUT.print(f"[yellow]warning:[/] {warning}")
    for problem in summary["damaged"]:
        STDOUT.print(f"[red]damaged:[/] {problem}")
    if summary["verified"] and not summary["corrupt"] and not summary["undecodable"]:
        STDOUT.print("[green]verified[/]: every record's CRC checks out and every image decodes.")
    if summary["undecodable"]:
        table = Table(title="[red]images training cannot decode")
        for column in ("file", "key", "problem"):
            table.add_column(column, overflow="fold")
        for row in summary["undecodable"][:20]:
            table.add_row(row["file"], row["key"], row["why"])
        STDOUT.print(table)
    if summary["corrupt"]:
        corrupt = Table(title="[red]corrupt records")
        for column in ("file", "byte offset", "problem"):
            corrupt.add_column(column)
        for c in summary["corrupt"]:
            corrupt.add_row(c["file"], str(c["offset"]), c["why"])
        STDOUT.print(corrupt)
