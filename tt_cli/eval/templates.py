"""Prompt templates for zero-shot classification.

`clip` is the CLIP paper's ensemble of 80 ImageNet prompts (Radford et al., 2021;
openai/CLIP, notebooks/Prompt_Engineering_for_ImageNet.ipynb). `simple` is one
prompt. Anything else is read as a file with one template per line, each
holding `{}` where the class name goes.

Example:
>>> len(load_templates("clip")), load_templates("simple")
(80, ['a photo of a {}.'])
>>> fill("a photo of a {}.", "red circle")
'a photo of a red circle.'
"""

from tt_cli import storage
from tt_cli.errors import InvalidValueError, UnreadableDataError

SIMPLE_TEMPLATES = ["a photo of a {}."]

CLIP_IMAGENET_TEMPLATES = [
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
]

BUILTIN = {"clip": CLIP_IMAGENET_TEMPLATES, "simple": SIMPLE_TEMPLATES}


def _non_blank_lines(path):
    with storage.open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def load_templates(name_or_path):
    """`clip`, `simple`, or a file of one template per line (blank lines ignored)."""
    if name_or_path in BUILTIN:
        return list(BUILTIN[name_or_path])
    if not storage.isfile(name_or_path):
        raise InvalidValueError(f"templates {name_or_path}: not 'clip', 'simple' or a file of templates.")
    templates = _non_blank_lines(name_or_path)
    if not templates:
        raise InvalidValueError(f"{name_or_path}: no templates in this file.")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise InvalidValueError(f"{name_or_path}: template {bad[0]!r} has no '{{}}' for the class name.")
    return templates


def fill(template, class_name):
    # str.replace, not str.format: user templates may hold other braces.
    return template.replace("{}", class_name)


def load_class_names(path):
    """One class name per line, in label order."""
    if not storage.isfile(path):
        raise UnreadableDataError(f"{path}: no such file (class names).")
    names = _non_blank_lines(path)
    if not names:
        raise InvalidValueError(f"{path}: no class names in this file.")
    return names
