"""TFDS datasets as tt data: the `tfds:NAME[/CONFIG]:SPLIT` names, and the one table of how each
known dataset's features map onto tt's fields (image, captions, label, key).

TF-free: only names and tables live here; `tfds_source` (TensorFlow side) opens the datasets.
A record of a TFDS dataset is a `tf.train.Example` whose feature names are TFDS's, flattened
with "/" (`captions/text`); `RecordFields` says which of them hold tt's fields, and
`tf_schema.parse_example` reads them into the same parsed examples the shards give.

Example:
>>> parse_name("tfds:imagenet2012:validation")
TfdsName(name='imagenet2012', config=None, split='validation')
>>> str(parse_name("tfds:coco_captions/2014:test"))
'tfds:coco_captions/2014:test'
>>> parse_fields("image=img,caption=captions/text,label=y")
Fields(image='img', texts='captions/text', label='y', key=None)
>>> prepare_hint(parse_name("tfds:cifar10:test"), "/data/tfds")
'tfds build cifar10 --data_dir /data/tfds'
"""

import dataclasses
import re

from tt_cli.errors import InvalidValueError

PREFIX = "tfds:"
_NAME = re.compile(r"^[a-z0-9_]+$")
_CONFIG_OR_SPLIT = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclasses.dataclass(frozen=True)
class TfdsName:
    """A TFDS dataset, its builder config (None: TFDS's default) and one split."""

    name: str
    config: str = None
    split: str = None

    @property
    def builder_name(self):
        return self.name if self.config is None else f"{self.name}/{self.config}"

    def __str__(self):
        return f"{PREFIX}{self.builder_name}:{self.split}"


def is_tfds(data):
    """Whether `data` names a TFDS dataset (`tfds:...`) rather than shards."""
    return isinstance(data, str) and data.startswith(PREFIX)


def parse_name(text):
    """`tfds:NAME[/CONFIG]:SPLIT` -> `TfdsName`; one line naming the text when it is not one.
    Splits are whole splits (`validation`, not `validation[:10%]`)."""
    body = text[len(PREFIX) :] if is_tfds(text) else text
    builder, _, split = body.partition(":")
    name, _, config = builder.partition("/")
    if not _NAME.match(name) or (config and not _CONFIG_OR_SPLIT.match(config)):
        raise InvalidValueError(
            f"{text}: not a TFDS dataset name; write tfds:NAME[/CONFIG]:SPLIT, e.g. tfds:cifar10:test."
        )
    if not split:
        raise InvalidValueError(f"{text}: name a split, e.g. {PREFIX}{builder}:test.")
    if not _CONFIG_OR_SPLIT.match(split):
        raise InvalidValueError(
            f"{text}: split {split!r} is not a plain split name; tt reads whole splits (train, test, validation, ...)."
        )
    return TfdsName(name, config or None, split)


@dataclasses.dataclass(frozen=True)
class Fields:
    """The TFDS feature names (flattened with "/") that hold each of tt's fields; None: the
    dataset has no such field. `texts` may be one text or a sequence of them (captions)."""

    image: str = "image"
    texts: str = None
    label: str = None
    key: str = None


# `--tfds-fields` names -> Fields attribute.
FIELD_FLAGS = {"image": "image", "caption": "texts", "label": "label", "key": "key"}


def parse_fields(text):
    """`image=FEATURE,caption=FEATURE,label=FEATURE,key=FEATURE` (any subset; image defaults
    to `image`) -> `Fields`, or None for None/empty."""
    if not text:
        return None
    values = {}
    for part in text.split(","):
        field, eq, feature = (s.strip() for s in part.partition("="))
        if field not in FIELD_FLAGS or not eq or not feature:
            raise InvalidValueError(
                f"TFDS fields {text!r}: write FIELD=FEATURE pairs separated by commas, "
                f"FIELD one of {', '.join(FIELD_FLAGS)} (e.g. image=image,caption=captions/text)."
            )
        values[FIELD_FLAGS[field]] = feature
    return Fields(**values)


@dataclasses.dataclass(frozen=True)
class TfdsOptions:
    """Where TFDS datasets are (`data_dir`, None: TFDS's own default) and, for a dataset the
    catalog does not know, which features hold tt's fields."""

    data_dir: str = None
    fields: Fields = None

    @classmethod
    def from_text(cls, data_dir=None, fields=None):
        return cls(data_dir or None, parse_fields(fields))


@dataclasses.dataclass(frozen=True)
class RecordFields:
    """How the serialized records of one TFDS dataset map onto tt's fields, resolved against
    the dataset's own feature types: per tt field (`schema.IMAGE`, `TEXTS`, `LABEL`, `KEY`) the
    feature name and dtype ("string" or "int64"); `label_map[label]` renumbers labels (a
    200-class subset of ImageNet's 1,000: -1 for a class outside it)."""

    features: dict  # tt field -> (feature name, dtype)
    label_map: tuple = None

    def has(self, field):
        return field in self.features


@dataclasses.dataclass(frozen=True)
class Entry:
    """A dataset tt knows: its fields, the built-in class names and prompts
    (`tt_cli.eval.classnames`), the 200-class ImageNet subset its labels are evaluated on,
    how to prepare it, and its name in CLIP_benchmark's results."""

    fields: Fields
    classes: str = None
    templates: str = None
    label_subset: str = None
    manual: str = None
    benchmark: str = None


# What `tfds build` needs beforehand for datasets that cannot be downloaded for you.
_IMAGENET_MANUAL = "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org in DIR"
_LABELLED = Fields(label="label", key="file_name")

CATALOG = {
    "imagenet2012": Entry(_LABELLED, "imagenet1k", "imagenet1k", manual=_IMAGENET_MANUAL, benchmark="imagenet1k"),
    "imagenet_v2": Entry(_LABELLED, "imagenet1k", "imagenet1k", benchmark="imagenetv2"),
    "imagenet_a": Entry(_LABELLED, "imagenet1k", "imagenet1k", label_subset="imagenet_a", benchmark="imagenet-a"),
    "imagenet_r": Entry(_LABELLED, "imagenet1k", "imagenet1k", label_subset="imagenet_r", benchmark="imagenet-r"),
    "imagenet_sketch": Entry(_LABELLED, "imagenet1k", "imagenet1k", benchmark="imagenet_sketch"),
    "cifar10": Entry(Fields(label="label", key="id"), "cifar10", "cifar", benchmark="cifar10"),
    "cifar100": Entry(Fields(label="label", key="id"), "cifar100", "cifar", benchmark="cifar100"),
    "caltech101": Entry(
        Fields(label="label", key="image/file_name"), "caltech101", "caltech101", benchmark="vtab/caltech101"
    ),
    "oxford_iiit_pet": Entry(_LABELLED, "oxford_iiit_pet", "oxford_iiit_pet", benchmark="vtab/pets"),
    "oxford_flowers102": Entry(_LABELLED, "oxford_flowers102", "oxford_flowers102", benchmark="vtab/flowers"),
    "dtd": Entry(_LABELLED, "dtd", "dtd", benchmark="vtab/dtd"),
    "food101": Entry(Fields(label="label"), "food101", "food101", benchmark="food101"),
    # Karpathy's splits (train, val, test, restval); 5,000 test images.
    "coco_captions": Entry(Fields(texts="captions/text", key="image/id"), benchmark="mscoco_captions"),
}


def prepare_hint(name, data_dir=None):
    """The command that prepares `name` (a `TfdsName`) where tt looks for it."""
    entry = CATALOG.get(name.name)
    command = f"tfds build {name.builder_name}" + (f" --data_dir {data_dir}" if data_dir else "")
    if entry is not None and entry.manual:
        return f"{command} --manual_dir DIR (with {entry.manual})"
    return command
