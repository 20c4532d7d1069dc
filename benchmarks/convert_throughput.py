"""Measures `tt data convert` rows/s at several `--workers` on realistic JPEG sources.

Writes `--rows` JPEGs of about 400x300 (smooth colour gradients with a little noise, so
they compress like photographs, Pillow quality 90) with a `captions.jsonl`, then runs
`tt data convert` (the installed executable, a fresh output folder each time) with each
worker count and prints, per count, rows/s from the command's own report (listing,
decoding and checking every image, writing the shards), the wall time of the whole
process, and rows per CPU-second (user + system time of tt and its worker processes,
start-up included), which other work on the machine changes far less. The load average
before and after is printed too: other work on the machine slows every wall-clock number.

Usage:
    python benchmarks/convert_throughput.py --rows 2000 --workers 1 2 --work /tmp/convert_speed
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image


def write_source(folder, rows, seed=0):
    """`rows` JPEGs of 360-440 x 270-330 pixels and captions.jsonl in `folder`; returns the JSONL path."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    lines = []
    for i in range(rows):
        width, height = int(rng.integers(360, 441)), int(rng.integers(270, 331))
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        start, slope = rng.uniform(0, 255, 3), rng.uniform(-0.6, 0.6, (2, 3))
        image = start + x[..., None] * slope[0] + y[..., None] * slope[1]
        image += 12 * np.sin(x[..., None] / rng.uniform(8, 40) + rng.uniform(0, 6, 3))  # some texture
        image += rng.normal(0, 6, image.shape)
        path = os.path.join("images", f"{i:06d}.jpg")
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(os.path.join(folder, path), quality=90)
        lines.append(json.dumps({"image": path, "caption": f"a smooth gradient, number {i}"}))
    jsonl = os.path.join(folder, "captions.jsonl")
    with open(jsonl, "w") as f:
        f.write("\n".join(lines) + "\n")
    return jsonl


def tt_executable():
    return shutil.which("tt") or os.path.join(os.path.dirname(sys.executable), "tt")


def measure(jsonl, out, workers, num_shards):
    shutil.rmtree(out, ignore_errors=True)
    report = out + ".json"
    start, cpu_start = time.perf_counter(), _children_cpu_seconds()
    subprocess.run(
        [
            tt_executable(),
            "data",
            "convert",
            jsonl,
            out,
            "--workers",
            str(workers),
            "--num-shards",
            str(num_shards),
            "--json",
            report,
        ],
        check=True,
        capture_output=True,
    )
    wall, cpu = time.perf_counter() - start, _children_cpu_seconds() - cpu_start
    with open(report) as f:
        result = json.load(f)
    return {
        "workers": workers,
        "rows": result["written"],
        "seconds": result["seconds"],
        "rows_per_second": round(result["written"] / result["seconds"], 1),
        "wall_seconds": round(wall, 2),
        # CPU time of tt and its worker processes: what the rows cost whatever else runs on the machine.
        "cpu_seconds": round(cpu, 2),
        "rows_per_cpu_second": round(result["written"] / cpu, 1),
    }


def _children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--num-shards", type=int, default=8)
    parser.add_argument("--work", default="/tmp/convert_speed")
    args = parser.parse_args()
    jsonl = os.path.join(args.work, "source", "captions.jsonl")
    if not os.path.isfile(jsonl):
        jsonl = write_source(os.path.join(args.work, "source"), args.rows)
    sizes = [
        os.path.getsize(os.path.join(args.work, "source", "images", n))
        for n in os.listdir(os.path.join(args.work, "source", "images"))
    ]
    print(
        f"{len(sizes)} JPEGs, mean {np.mean(sizes) / 1024:.1f} KiB; {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for workers in args.workers:
        print(json.dumps(measure(jsonl, os.path.join(args.work, f"out_{workers}"), workers, args.num_shards)))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
