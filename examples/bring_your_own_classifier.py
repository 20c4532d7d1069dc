"""Bring your own classifier: your labelled images become the third tower of 3T.

The paper's point is that h need not be an ImageNet model: a classifier trained on your
own domain (its Places365 experiment) works too. This example

  1. writes a labelled image folder ROOT/<class name>/<image>.png and converts it;
  2. `tt pretrain`s a ViT classifier on it and saves its backbone as a KerasHub preset;
  3. converts a captioned dataset (images + captions.jsonl) for contrastive training;
  4. `tt data embed`s it with that preset: h's embeddings are computed once and stored
     beside the shards (keys and embeddings only, no copy of the images);
  5. `tt train --pretrained PRESET --embeddings FOLDER` a 3T model that never runs h, and evaluates it.

Run it:
    python examples/bring_your_own_classifier.py --size smallest
    python examples/bring_your_own_classifier.py --dry-run     # only print the commands
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_utils import convert_shapes_splits, read_json, tt, write_image_folder, write_templates  # noqa: E402

SIZES = {
    "smallest": dict(
        image_size=32, num_labelled=128, num_train=128, num_val=48, pretrain_steps=6, steps=6, batch_size=16
    ),
    "small": dict(
        image_size=32, num_labelled=4000, num_train=2000, num_val=200, pretrain_steps=400, steps=400, batch_size=64
    ),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="smallest", help="How much data and training.")
    parser.add_argument("--workdir", default="runs/bring_your_own_classifier", help="Where data and runs go.")
    parser.add_argument("--dry-run", action="store_true", help="Print the tt commands without running them.")
    return parser.parse_args()


def main():
    args = parse_args()
    size, work, dry = SIZES[args.size], args.workdir, args.dry_run
    data = os.path.join(work, "data")
    common = ["--scale", "tiny", "--batch-size", size["batch_size"]]

    # 1. The classifier's data: a folder per class (class names = folder names, sorted).
    folder = os.path.join(data, "labelled_images")
    if not dry:
        write_image_folder(folder, size["num_labelled"], seed=3, image_size=size["image_size"])
    labelled = os.path.join(data, "labelled_shards")
    tt(["data", "convert", folder, labelled, "--overwrite"], dry)

    # 2. The classifier -> a preset directory (backbone + its preprocessing + the head).
    preset = os.path.join(work, "my_vit")
    tt(
        [
            "pretrain",
            "--data",
            labelled,
            "--out",
            preset,
            "--overwrite",
            "--steps",
            size["pretrain_steps"],
            "--json",
            os.path.join(work, "pretrain.json"),
            *common,
        ],
        dry,
    )

    # 3. Captioned image-text data for the contrastive training.
    train, val = convert_shapes_splits(data, size["num_train"], size["num_val"], size["image_size"], dry)

    # 4. Precompute h once, beside the shards. The folder's dataset.json records the preset and
    #    its preprocessing; tt train refuses embeddings that do not match its --pretrained.
    embedded = os.path.join(data, "train_shards_h")
    tt(
        [
            "data",
            "embed",
            train,
            "--pretrained",
            preset,
            "--out",
            embedded,
            "--overwrite",
            "--batch-size",
            size["batch_size"],
        ],
        dry,
    )

    # 5. 3T with your classifier as the third tower.
    run = os.path.join(work, "run_3t")
    tt(
        [
            "train",
            "--data",
            train,
            "--embeddings",
            embedded,
            "--out",
            run,
            "--mode",
            "3t",
            "--pretrained",
            preset,
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
    templates = os.path.join(data, "templates.txt")
    if not dry:
        write_templates(templates)
    tt(
        [
            "eval",
            "zero-shot",
            run,
            "--data",
            val,
            "--templates",
            templates,
            "--json",
            os.path.join(work, "zero_shot.json"),
        ],
        dry,
    )
    if dry:
        return
    run_json = read_json(os.path.join(run, "run.json"))
    pretrain = read_json(os.path.join(work, "pretrain.json"))
    zero_shot = read_json(os.path.join(work, "zero_shot.json"))
    print(
        f"classifier held-out accuracy {pretrain['heldout_accuracy']:.1%} ({pretrain['num_classes']} classes); "
        f"3T trained on precomputed h embeddings: {run_json['resolved']['third_towers'][0]['source'] != 'online'}; "
        f"zero-shot top-1 {zero_shot['models'][0]['top1']:.1%}"
    )


if __name__ == "__main__":
    main()
