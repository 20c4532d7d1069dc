"""Does 3T help on my data? The paper's comparison on one dataset.

Trains CLIP (both towers from scratch), LiT (text tower against the locked pretrained
image model) and 3T (from scratch, plus alignment with the frozen pretrained model) with
the same data, steps, batch and learning rate; evaluates each on held-out data; evaluates
the 3T + LiT ensemble (alpha * p_3T + (1 - alpha) * p_LiT); prints one table.

Here the data is synthetic (coloured shapes written as images + captions.jsonl) and the
pretrained model is a small ViT made with `tt pretrain` on the labelled train split. For
your data: replace the convert step's source, and `--pretrained` with e.g. imagenet21k.

Run it:
    python examples/compare_modes.py --size smallest    # a smoke test (~1.5 minutes on 2 CPU cores)
    python examples/compare_modes.py --size small       # numbers worth reading (~5 minutes)
    python examples/compare_modes.py --dry-run          # only print the commands
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_utils import convert_shapes_splits, read_json, tt, write_templates  # noqa: E402

SIZES = {
    "smallest": dict(image_size=32, num_train=128, num_val=48, pretrain_steps=6, steps=6, batch_size=16),
    "small": dict(image_size=32, num_train=4000, num_val=300, pretrain_steps=400, steps=800, batch_size=64),
}
MODES = ("clip", "lit", "3t")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="smallest", help="How much data and training.")
    parser.add_argument("--workdir", default="runs/compare_modes", help="Where data, runs and results go.")
    parser.add_argument(
        "--alpha",
        default="0.5",
        help="Ensemble weight of 3T (0..1). 'auto' picks it on half of the val set and reports "
        "on the other half, which then differs from the single models' rows.",
    )
    parser.add_argument("--dry-run", action="store_true", help="Print the tt commands without running them.")
    return parser.parse_args()


def print_table(rows):
    """rows: (name, zero-shot top-1, image->text R@1, text->image R@1) as fractions."""
    header = f"{'mode':<16} {'zero-shot top-1':>16} {'R@1 image->text':>16} {'R@1 text->image':>16}"
    print(header)
    print("-" * len(header))
    for name, *values in rows:
        print(f"{name:<16}" + "".join(f"{100 * v:>15.1f}%" for v in values))


def main():
    args = parse_args()
    size, work, dry = SIZES[args.size], args.workdir, args.dry_run
    data, preset = os.path.join(work, "data"), os.path.join(work, "pretrained_vit")
    common = ["--scale", "tiny", "--batch-size", size["batch_size"]]

    # The data, as image files + captions.jsonl converted to shards.
    train, val = convert_shapes_splits(data, size["num_train"], size["num_val"], size["image_size"], dry)
    templates = os.path.join(data, "templates.txt")
    if not dry:
        write_templates(templates)

    # The pretrained image model that LiT locks and 3T learns from.
    tt(["pretrain", "--data", train, "--out", preset, "--overwrite", "--steps", size["pretrain_steps"], *common], dry)

    # One run per mode, identical budget. CLIP has no third tower, so it gets no --pretrained.
    runs = {mode: os.path.join(work, f"run_{mode}") for mode in MODES}
    for mode in MODES:
        tt(
            [
                "train",
                "--data",
                train,
                "--out",
                runs[mode],
                "--mode",
                mode,
                *(["--pretrained", preset] if mode != "clip" else []),
                "--steps",
                size["steps"],
                "--vocab-size",
                40,
                "--max-text-len",
                16,
                "--lr",
                1e-3,
                "--log-every",
                max(1, size["steps"] // 4),
                "--restart",
                *common,
            ],
            dry,
        )

    # Evaluations. With --ensemble, one command reports 3T, LiT and the ensemble side by side.
    results = os.path.join(work, "results")
    if not dry:
        os.makedirs(results, exist_ok=True)
    for task, flags in (("zero-shot", ["--templates", templates]), ("retrieval", [])):
        tt(
            ["eval", task, runs["clip"], "--data", val, *flags, "--json", os.path.join(results, f"{task}_clip.json")],
            dry,
        )
        tt(
            [
                "eval",
                task,
                runs["3t"],
                "--ensemble",
                runs["lit"],
                "--alpha",
                args.alpha,
                "--data",
                val,
                *flags,
                "--json",
                os.path.join(results, f"{task}_3t_lit.json"),
            ],
            dry,
        )
    if dry:
        return

    def load(task, which):
        return read_json(os.path.join(results, f"{task}_{which}.json"))

    zs = {"clip": load("zero-shot", "clip"), "pair": load("zero-shot", "3t_lit")}
    rt = {"clip": load("retrieval", "clip"), "pair": load("retrieval", "3t_lit")}
    # The ensemble results list [3T, LiT] as "models" and the combination as "ensemble".
    entries = {
        "clip": (zs["clip"]["models"][0], rt["clip"]["models"][0]),
        "3t": (zs["pair"]["models"][0], rt["pair"]["models"][0]),
        "lit": (zs["pair"]["models"][1], rt["pair"]["models"][1]),
        f"3t+lit (a={zs['pair']['ensemble']['alpha']:g})": (zs["pair"]["ensemble"], rt["pair"]["ensemble"]),
    }
    print(
        f"\n{size['steps']} steps x batch {size['batch_size']} per mode; "
        f"zero-shot on {zs['pair']['evaluated_on']}, retrieval on {rt['pair']['evaluated_on']}"
    )
    print_table([(name, z["top1"], r["image_to_text_R@1"], r["text_to_image_R@1"]) for name, (z, r) in entries.items()])
    print(f"chance: zero-shot {1 / len(read_json(os.path.join(val, 'dataset.json'))['class_names']):.1%}")


if __name__ == "__main__":
    main()
