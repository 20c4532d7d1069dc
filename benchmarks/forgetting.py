"""Forgetting when fine-tuning a pretrained CLIP, and what 3T's frozen copy, LiT and WiSE-FT
do about it, on synthetic data (coloured shapes, `tt_cli.demo.shapes`).

1. Split A: shapes in red, green and blue; split B, the shift: the same shapes in
   yellow, purple and orange. Each has a training set and a held-out set.
2. "Pretraining": a small KerasHub CLIP preset (random weights, a byte-pair tokenizer
   trained on the captions, `tt_cli.demo.clip_preset`) trained by `tt train --init` on A,
   then exported with `tt export preset`: the CLIP a user would start from.
3. Fine-tuning that export on B with the same budget (steps, batch, learning rate, seed):
   `--mode clip` (plain fine-tuning), `--mode 3t` (its third tower a frozen copy of the
   starting image tower), `--mode lit` (image tower locked, text tower tuned).
4. Zero-shot top-1 on A's held-out set (what was kept) and on B's (what was gained), for
   the starting model, each fine-tuned run, and each run with `--interpolate 0.5`
   (WiSE-FT halfway back to the starting model). The classes of a split are its own
   nine colour-shape pairs; prompts are the captions' own wording.

Every step is the `tt` command a user runs (called in this process, to load TensorFlow
once); the commands are printed as they run. Numbers are as measured: the table goes to
stdout (Markdown) and OUT/forgetting.json, with the machine's load average.

Usage:
    python benchmarks/forgetting.py --out /tmp/forgetting
"""

import argparse
import json
import os
import shlex
import time

from tt_cli.demo import shapes

SPLIT_COLORS = {"A": ("red", "green", "blue"), "B": ("yellow", "purple", "orange")}
TEMPLATES = ("a {}", "{}", "a picture of a {}")  # the demo's: the captions' own wording


def split_rows(colors, count, seed, image_size):
    """Rows like `shapes.shape_rows`, every shape in one of `colors`, labelled among their classes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    classes = [f"{c} {s}" for c in colors for s in shapes.SHAPES]
    for i in range(count):
        words = {
            "color": colors[rng.integers(len(colors))],
            "shape": shapes.SHAPES[rng.integers(len(shapes.SHAPES))],
            "position": list(shapes.POSITIONS)[rng.integers(len(shapes.POSITIONS))],
            "size": list(shapes.SIZES)[rng.integers(len(shapes.SIZES))],
        }
        yield {
            "image": shapes._draw(words["color"], words["shape"], words["position"], words["size"], rng, image_size),
            "texts": [t.format(**words) for t in rng.permutation(shapes.TEMPLATES)[:2]],
            "label": classes.index(f"{words['color']} {words['shape']}"),
            "key": f"{seed}-{i:06d}",
        }


def write_split(out, name, colors, count, seed, image_size):
    from tt_cli.data.tf_shards import write_shards

    classes = [f"{c} {s}" for c in colors for s in shapes.SHAPES]
    rows = split_rows(colors, count, seed, image_size)
    return write_shards(os.path.join(out, name), rows, 2, source=f"forgetting split {name}", class_names=classes)


def tt(*args):
    """Runs one `tt` command in this process, as a user would type it; stops on failure."""
    from tt_cli.main import cli

    print("$ tt " + " ".join(shlex.quote(str(a)) for a in args), flush=True)
    try:
        cli.main([str(a) for a in args], standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise


def zero_shot(model, data, templates, out, interpolate=None):
    """Zero-shot top-1 of `model` (a run, or a preset directory) on the held-out split `data`."""
    name = f"{os.path.basename(model)}_{os.path.basename(data)}_{interpolate or 'trained'}"
    path = os.path.join(out, "zero_shot", f"{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    args = ["eval", "zero-shot", model, "--data", data, "--templates", templates, "--json", path]
    tt(*args, *(["--interpolate", interpolate] if interpolate is not None else []))
    with open(path) as f:
        return json.load(f)["models"][0]["top1"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="/tmp/forgetting")
    parser.add_argument("--train-size", type=int, default=3000, help="Training images per split.")
    parser.add_argument("--val-size", type=int, default=300, help="Held-out images per split.")
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--finetune-lr", type=float, default=3e-4)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()

    from tt_cli.demo.clip_preset import write_clip_preset

    data = {}
    for split, colors in SPLIT_COLORS.items():
        seed = 10 * (split == "B")
        data[split] = write_split(args.out, f"{split}_train", colors, args.train_size, seed + 1, 32)
        data[f"{split}_val"] = write_split(args.out, f"{split}_val", colors, args.val_size, seed + 2, 32)
    templates = os.path.join(args.out, "templates.txt")
    with open(templates, "w") as f:
        f.write("\n".join(TEMPLATES) + "\n")
    texts = [t for colors in SPLIT_COLORS.values() for row in split_rows(colors, 500, 0, 8) for t in row["texts"]]
    preset = write_clip_preset(
        os.path.join(args.out, "clip_random"), texts, image_size=32, patch_size=4, width=64, depth=2, heads=4,
        projection_dim=64, max_len=16,
    )  # fmt: skip
    common = ["--batch-size", args.batch_size, "--no-jit", "--log-every", 100, "--checkpoint-every", 500]

    pretrained_run = os.path.join(args.out, "run_A")
    tt("train", "--data", data["A"], "--out", pretrained_run, "--init", preset, "--mode", "clip",
       "--steps", args.pretrain_steps, "--lr", args.lr, *common)  # fmt: skip
    start = os.path.join(args.out, "clip_A")
    tt("export", "preset", pretrained_run, start, "--overwrite")

    rows = {"start (CLIP trained on A)": {"A": zero_shot(start, data["A_val"], templates, args.out)}}
    rows["start (CLIP trained on A)"]["B"] = zero_shot(start, data["B_val"], templates, args.out)
    for mode in ("clip", "3t", "lit"):
        run = os.path.join(args.out, f"run_B_{mode}")
        tt("train", "--data", data["B"], "--out", run, "--init", start, "--mode", mode,
           "--steps", args.finetune_steps, "--lr", args.finetune_lr, *common)  # fmt: skip
        for interpolate in (None, "0.5"):
            name = f"{mode} on B" + (" + WiSE-FT 0.5" if interpolate else "")
            rows[name] = {s: zero_shot(run, data[f"{s}_val"], templates, args.out, interpolate) for s in ("A", "B")}

    seconds = time.perf_counter() - started
    result = {
        "zero_shot_top1": rows,
        "settings": vars(args),
        "seconds": round(seconds),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    with open(os.path.join(args.out, "forgetting.json"), "w") as f:
        json.dump(result, f, indent=2)
    print("\n| model | zero-shot A (kept) | zero-shot B (gained) |\n| --- | --- | --- |")
    for name, top1 in rows.items():
        print(f"| {name} | {100 * top1['A']:.1f}% | {100 * top1['B']:.1f}% |")
    print(f"\n{seconds:.0f} s; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
