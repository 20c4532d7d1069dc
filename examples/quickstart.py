"""Quickstart: the whole tt path on a dataset of your own, offline, in about a minute.

  1. make a user-style dataset: image files plus a `captions.jsonl` (train and val);
  2. `tt data convert` each split into TFRecord shards;
  3. `tt pretrain` a small ViT classifier on the labelled train split: the frozen
     third tower (in real use you would pass `--pretrained imagenet21k`);
  4. `tt train` a Three Towers (3T) model on the captions;
  5. `tt eval zero-shot` and `tt eval retrieval` on the val split;
  6. `tt export savedmodel`, then one query through the exported model from Python.

Run it:
    python examples/quickstart.py --size smallest     # ~1 minute: checks that everything works
    python examples/quickstart.py --size small        # ~2 minutes: numbers worth reading
    python examples/quickstart.py --dry-run           # only print the commands

Every `tt` command is printed before it runs (`$ tt ...`): copy them for your data.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_utils import read_json, tt, write_jsonl_dataset, write_templates  # noqa: E402

# smallest: a smoke test (seconds per step); small: enough steps that the numbers beat chance.
SIZES = {
    "smallest": dict(image_size=32, num_train=128, num_val=48, pretrain_steps=6, steps=6, batch_size=16),
    "small": dict(image_size=32, num_train=2000, num_val=200, pretrain_steps=300, steps=400, batch_size=64),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="smallest", help="How much data and training.")
    parser.add_argument("--workdir", default="runs/quickstart", help="Where data, runs and exports go.")
    parser.add_argument("--dry-run", action="store_true", help="Print the tt commands without running them.")
    return parser.parse_args()


def query_savedmodel(export_dir, image_path, class_names, true_caption):
    """Loads the SavedModel and ranks the class prompts for one image file."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the SavedModel uses)

    model = tf.saved_model.load(export_dir)
    with open(image_path, "rb") as f:
        image = model.encode_image_bytes(tf.constant([f.read()]))  # [1, d], unit norm
    prompts = [f"a {name}" for name in class_names]
    texts = model.encode_text(tf.constant(prompts))  # [C, d], unit norm
    similarity = tf.linalg.matmul(image, texts, transpose_b=True)[0].numpy()  # cosine
    ranked = similarity.argsort()[::-1]
    print(f"query image: {image_path} (its own caption: {true_caption!r})")
    for i in ranked[:3]:
        print(f"  {similarity[i]:+.3f}  {prompts[i]}")
    print(f"best-matching caption: {prompts[ranked[0]]!r}")


def main():
    args = parse_args()
    size, work, dry = SIZES[args.size], args.workdir, args.dry_run
    data, run, preset, export = (os.path.join(work, d) for d in ("data", "run_3t", "pretrained_vit", "export_3t"))
    common = ["--scale", "tiny", "--batch-size", size["batch_size"]]

    # 1. A dataset as a user has it: images/*.png|jpg and captions.jsonl lines like
    #    {"image": "images/1-000001.jpg", "captions": ["a red circle ..."], "label": "red circle"}.
    if not dry:
        write_jsonl_dataset(os.path.join(data, "train"), size["num_train"], seed=1, image_size=size["image_size"])
        write_jsonl_dataset(os.path.join(data, "val"), size["num_val"], seed=2, image_size=size["image_size"])
    templates = os.path.join(data, "templates.txt")  # zero-shot prompts in the captions' own wording
    if not dry:
        write_templates(templates)

    # 2. JSON Lines -> TFRecord shards (string labels become class ids; dataset.json keeps the names).
    #    --overwrite lets the example be run again over its own previous output.
    for split in ("train", "val"):
        tt(
            [
                "data",
                "convert",
                os.path.join(data, split, "captions.jsonl"),
                os.path.join(data, f"{split}_shards"),
                "--overwrite",
            ],
            dry,
        )

    # 3. The third tower h: a ViT classifier pretrained on the labelled train split, saved as a
    #    KerasHub preset directory. With a network you would skip this and use --pretrained imagenet21k.
    tt(
        [
            "pretrain",
            "--data",
            os.path.join(data, "train_shards"),
            "--out",
            preset,
            "--overwrite",
            "--steps",
            size["pretrain_steps"],
            *common,
        ],
        dry,
    )

    # 4. Three Towers: f (image) and g (text) from scratch, aligned with each other and with frozen h.
    tt(
        [
            "train",
            "--data",
            os.path.join(data, "train_shards"),
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

    # 5. Evaluate on the held-out split: zero-shot classification and image<->text retrieval.
    val = os.path.join(data, "val_shards")
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
    tt(["eval", "retrieval", run, "--data", val, "--json", os.path.join(work, "retrieval.json")], dry)

    # 6. A SavedModel that takes JPEG/PNG bytes and raw text (tokenizer inside), then one query.
    tt(["export", "savedmodel", run, export, "--overwrite"], dry)
    if dry:
        return
    zero_shot = read_json(os.path.join(work, "zero_shot.json"))
    retrieval = read_json(os.path.join(work, "retrieval.json"))
    print(
        f"zero-shot top-1: {zero_shot['models'][0]['top1']:.1%}   "
        f"retrieval R@1 image->text: {retrieval['models'][0]['image_to_text_R@1']:.1%}, "
        f"text->image: {retrieval['models'][0]['text_to_image_R@1']:.1%}"
    )
    with open(os.path.join(val, "dataset.json")) as f:
        class_names = json.load(f)["class_names"]
    with open(os.path.join(data, "val", "captions.jsonl")) as f:
        first = json.loads(f.readline())  # the first val image, which the model never trained on
    query_savedmodel(export, os.path.join(data, "val", first["image"]), class_names, first["captions"][0])


if __name__ == "__main__":
    main()
