"""Class names and prompt templates of the standard zero-shot benchmarks, built in.

The lists are data files beside this module (`classnames_data/`, package data; TF-free), in the label
order of the TFDS datasets they belong to:

- `imagenet1k.tsv`: ImageNet-1k's 1,000 WordNet ids with the class names OpenAI published with
  CLIP (notebooks/Prompt_Engineering_for_ImageNet.ipynb in openai/CLIP), which OpenCLIP and
  CLIP_benchmark (clip_benchmark/datasets/en_classnames.json, "imagenet1k") use, and its 80
  templates (the same notebook; `tt eval --templates clip`). ImageNet-V2 and -Sketch use all 1,000.
- `imagenet_a_wnids.txt`, `imagenet_r_wnids.txt`: the 200 classes of ImageNet-A and ImageNet-R
  (Hendrycks et al.; the lists their evaluation code publishes). TFDS labels their images with
  ImageNet-1k ids; evaluated as they are published, on their own 200 classes (`subset_label_map`).
- `cifar10.txt`, `cifar100.txt`, `caltech101.txt`, `oxford_iiit_pet.txt`, `oxford_flowers102.txt`,
  `dtd.txt`, `food101.txt` and `templates.json`: the names and templates of the CLIP paper
  (data/prompts.md in openai/CLIP; for Caltech-101 in TFDS's label order, with its background
  class, as CLIP_benchmark's "caltech101_vtab").

Example:
>>> names = class_names("imagenet1k")
>>> len(names), names[0], names[-1]
(1000, 'tench', 'toilet paper')
>>> len(templates_for("cifar")), templates_for("food101")
(18, ['a photo of {}, a type of food.'])
>>> len(class_names("imagenet1k", subset="imagenet_r"))
200
"""

import functools
import json
import os

from tt_cli import storage

DATA = os.path.join(os.path.dirname(__file__), "classnames_data")
IMAGENET = "imagenet1k"


def _lines(name):
    with storage.open(os.path.join(DATA, name), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


@functools.cache
def imagenet_wnids_and_names():
    """(1,000 WordNet ids, 1,000 class names), in ImageNet-1k's label order."""
    rows = [line.split("\t") for line in _lines(f"{IMAGENET}.tsv")]
    return tuple(r[0] for r in rows), tuple(r[1] for r in rows)


@functools.cache
def subset_wnids(subset):
    """The sorted WordNet ids of a 200-class ImageNet subset ("imagenet_a", "imagenet_r")."""
    return tuple(_lines(f"{subset}_wnids.txt"))


def subset_label_map(subset):
    """ImageNet-1k label -> label among the subset's classes (their sorted order), -1 outside it."""
    wnids, _ = imagenet_wnids_and_names()
    position = {wnid: i for i, wnid in enumerate(subset_wnids(subset))}
    return tuple(position.get(wnid, -1) for wnid in wnids)


def class_names(classes, subset=None):
    """The built-in class names of `classes` (a file stem of `classnames_data`), restricted to
    the ImageNet `subset`'s classes when given."""
    if classes == IMAGENET:
        _, names = imagenet_wnids_and_names()
        if subset is None:
            return list(names)
        label_map = subset_label_map(subset)
        return [name for name, new in zip(names, label_map) if new >= 0]
    return _lines(f"{classes}.txt")


@functools.cache
def _templates():
    with storage.open(os.path.join(DATA, "templates.json"), encoding="utf-8") as f:
        return json.load(f)


def templates_for(templates):
    """The built-in prompt templates called `templates` ("imagenet1k": CLIP's 80)."""
    return list(_templates()[templates])
