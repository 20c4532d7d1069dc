"""Prints `tt bench` results as rich tables and writes them as JSON.

Example:
>>> human_bytes(3 * 2**30)
'3.0 GiB'
>>> human_flops(2.5e12)
'2.5T'
"""

from rich.table import Table

from tt_cli.console import STDOUT


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def human_flops(n):
    if n is None:
        return "n/a"
    for unit, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def add_pipeline_ratios(result):
    """Pipeline rate / training rate per mode (>1: the pipeline keeps up)."""
    pipeline = result.get("pipeline") or {}
    for r in result["modes"]:
        rate = pipeline.get("pairs_per_second")
        r["pipeline_over_training"] = rate / r["pairs_per_second"] if rate else None
    return result


def print_header(header, console=STDOUT):
    accum = header.get("accum_steps", 1)
    console.print(
        f"[bold]tt bench[/bold]  scale {header['scale']}, batch {header['batch_size']}"
        f"{f' in {accum} micro-batches' if accum > 1 else ''}"
        f"{', blocks rematerialised' if header.get('remat') else ''}, "
        f"{header['steps']} timed steps after {header['warmup']} warm-up (median)\n"
        f"device {header['device']} | strategy {header['strategy']} ({header['replicas']} replica(s)) | "
        f"precision {header['precision']} | jit {'on' if header['jit'] else 'off'}\n"
        f"TensorFlow {header['tensorflow']}, Keras {header['keras']}, KerasHub {header['keras_hub']}, "
        f"Python {header['python']} | third tower: {header['pretrained'] or 'none (clip only)'}"
    )


def print_results(result, console=STDOUT):
    header = result["header"]
    print_header(header, console)
    table = Table(title="training step, per mode (pipe/train: input pipeline rate / training rate)")
    for column in (
        "mode",
        "pairs/s",
        "ms/step",
        "min-max",
        "peak mem",
        "FLOPs/step",
        "FLOP/s",
        "vs clip",
        "pipe/train",
    ):
        table.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for r in result["modes"]:
        ratio = r.get("pipeline_over_training")
        table.add_row(
            r["mode"],
            f"{r['pairs_per_second']:,.1f}",
            f"{r['step_ms']:,.1f}",
            f"{r['step_ms_min']:,.0f}-{r['step_ms_max']:,.0f}",
            human_bytes(r["peak_memory_bytes"]),
            human_flops(r["flops_per_step"]),
            human_flops(r["achieved_flops_per_second"]),
            "n/a" if r["time_vs_clip"] is None else f"{r['time_vs_clip']:.2f}x",
            "n/a" if ratio is None else f"{ratio:.1f}x",
        )
    console.print(table)
    pipeline = result.get("pipeline")
    if pipeline is not None:
        console.print(
            f"input pipeline: {pipeline['pairs_per_second']:,.1f} pairs/s over "
            f"{pipeline['batches']} batches of {pipeline['batch_size']} ({pipeline['note']})"
        )
    console.print(
        f"peak memory: {result['modes'][0]['peak_memory_source']} "
        f"(process at start: {human_bytes(header['baseline_memory_bytes'])}); load average "
        f"{header['load_average_start']:.2f} at start, {header['load_average_end']:.2f} at end "
        f"(other processes on the machine slow every number)"
    )
