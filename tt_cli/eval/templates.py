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
from tt_cli.data import classnames
from tt_cli.errors import InvalidValueError, UnreadableDataError

SIMPLE_TEMPLATES = ["a photo of a {}."]

CLIP_IMAGENET_TEMPLATES = classnames.templates_for("imagenet1k")

BUILTIN = {"clip": CLIP_IMAGENET_TEMPLATES, "simple": SIMPLE_TEMPLATES}
BENCHMARK_PREFIX = "builtin:"  # the prompts of a benchmark tt knows: builtin:cifar, builtin:dtd, ...


def _non_blank_lines(path):
    with storage.open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def is_builtin(name):
    """Whether `name` names built-in prompts rather than a file of them."""
    return name in BUILTIN or name.startswith(BENCHMARK_PREFIX)


def load_templates(name_or_path):
    """`clip`, `simple`, `builtin:NAME` (a benchmark's own, `classnames.templates_for`), or a
    file of one template per line (blank lines ignored)."""
    if name_or_path in BUILTIN:
        return list(BUILTIN[name_or_path])
    if name_or_path.startswith(BENCHMARK_PREFIX):
        try:
            return classnames.templates_for(name_or_path[len(BENCHMARK_PREFIX) :])
        except KeyError:
            raise InvalidValueError(f"templates {name_or_path}: no such built-in prompts.") from None
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
