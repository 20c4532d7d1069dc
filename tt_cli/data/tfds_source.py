"""Opens a TFDS dataset where it is prepared, as the files and `DatasetInfo` that shards give.

`schema.resolve_shards("tfds:NAME[/CONFIG]:SPLIT")` comes here. A prepared TFDS split is a set
of TFRecord files of `tf.train.Example`s (TFDS's own features, flattened with "/"), so every
reader of tt takes them as it takes shards: the same `tf.data` pipelines, the same position
bookkeeping of training (and so the same exact resume), the same evaluation. Only the parse
differs: `DatasetInfo.fields` (`tfds_catalog.RecordFields`) tells `tf_schema.parse_example`
which features hold the image, the captions, the label and the key.

Nothing is downloaded, and nothing is asked of Google Cloud Storage (`try_gcs=False`; TFDS
4.9 keeps GCS off by default): a dataset that is not prepared in the data directory is one
line saying how to prepare it (`tfds build ...`). TensorFlow side: imports
`tensorflow_datasets`, which imports TensorFlow; never next to the `tfrecord` package.

In use (it needs the prepared TFDS dataset):

```python
files, info = resolve("tfds:cifar10:test", TfdsOptions("/data/tfds"))
info.num_examples, info.class_names[:2], info.tfds["version"]  # (10000, ['airplane', 'automobile'], '3.0.2')
```
"""

import contextlib
import logging

from tt_cli.data import classnames, schema
from tt_cli.data.tfds_catalog import CATALOG, Fields, RecordFields, TfdsOptions, parse_name, prepare_hint
from tt_cli.errors import InvalidValueError, UnreadableDataError


@contextlib.contextmanager
def _quiet_absl():
    """TFDS logs a warning through absl for every version folder it finds unprepared."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _builder(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name.builder_name, data_dir=data_dir, try_gcs=False)
    except tfds.core.registered.DatasetNotFoundError:
        raise InvalidValueError(f"{name}: TFDS has no dataset {name.name!r} (and none is prepared under that name).")
    except ValueError as e:  # an unknown config
        if name.config is None:
            raise InvalidValueError(f"{name}: {str(e).splitlines()[0]}")
        configs = sorted(getattr(tfds.builder_cls(name.name), "builder_configs", None) or ())
        raise InvalidValueError(
            f"{name}: {name.name} has no config {name.config!r}"
            + (f"; it has {', '.join(configs)}." if configs else ".")
        )


def _serialized_features(info):
    """{feature name flattened with "/": (dtype name, rank)} of a TFDS dataset's records."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}/")
            else:
                dtype = value.tf_dtype if hasattr(value, "tf_dtype") else value.dtype  # TFDS >= 4.9.3 / older
                flat[f"{prefix}{key}"] = (dtype.name, len(value.shape))

    walk(info.features.get_serialized_info(), "")
    return flat


def _record_fields(name, fields, features, label_map):
    """`RecordFields` of `fields` against the dataset's own features; one line for a field
    that names no feature, or one of a kind tt cannot read (an image not stored encoded)."""
    mapped = {}
    wanted = {
        schema.IMAGE: fields.image,
        schema.TEXTS: fields.texts,
        schema.LABEL: fields.label,
        schema.KEY: fields.key,
    }
    for key, feature in wanted.items():
        if feature is None:
            continue
        if feature not in features:
            raise InvalidValueError(
                f"{name}: no feature {feature!r} for the {key}; its features are {', '.join(sorted(features))}.",
                remedy=("tfds_fields", f"{key}=FEATURE", "to name another"),
            )
        dtype, rank = features[feature]
        readable = {
            schema.IMAGE: dtype == "string" and rank == 0,
            schema.TEXTS: dtype == "string" and rank <= 1,
            schema.LABEL: dtype == "int64" and rank == 0,
            schema.KEY: dtype in ("string", "int64") and rank == 0,
        }[key]
        if not readable:
            raise InvalidValueError(
                f"{name}: feature {feature!r} ({dtype}, rank {rank}) cannot be the {key}; tt reads an encoded image, "
                "one text or a list of texts, an integer label and a one-value key."
            )
        mapped[key] = (feature, dtype)
    return RecordFields(mapped, label_map)


# For a dataset the catalog does not know, the first of these features it has, of the right kind.
_USUAL_TEXTS = ("captions/text", "captions", "caption", "texts", "text")
_USUAL_KEYS = ("id", "image/id", "file_name", "image/file_name", "filename", "image/filename")


def _default_fields(features):
    """For a dataset the catalog does not know: `image`, `label` (an integer), the usual
    names of captions (strings) and of an id, where it has them."""

    def first(names, kinds):
        return next((n for n in names if features.get(n) in kinds), None)

    return Fields(
        texts=first(_USUAL_TEXTS, {("string", 0), ("string", 1)}),
        label=first(("label",), {("int64", 0)}),
        key=first(_USUAL_KEYS, {("string", 0), ("int64", 0)}),
    )


def _class_names(entry, builder, fields):
    if entry is not None and entry.classes:
        return classnames.class_names(entry.classes, entry.label_subset)
    try:
        label = builder.info.features[fields.label]
    except (KeyError, TypeError):  # nested deeper than TFDS indexes by "a/b"
        label = None
    names = getattr(label, "names", None)
    return [n.replace("_", " ") for n in names] if names else None


def resolve(data, options=None):
    """(the split's TFRecord files, `schema.DatasetInfo`) of the TFDS dataset `data`
    (`tfds:NAME[/CONFIG]:SPLIT`) under `options.data_dir`."""
    options = options or TfdsOptions()
    name = parse_name(data)
    with _quiet_absl():
        builder = _builder(name, options.data_dir)
        prepared = builder.is_prepared()
    if not prepared:
        where = options.data_dir or str(builder.data_dir).split(f"/{name.name}/")[0]
        raise UnreadableDataError(
            f"{name}: not prepared in {where}; prepare it with: {prepare_hint(name, options.data_dir)}."
        )
    splits = builder.info.splits
    if name.split not in splits:
        raise InvalidValueError(
            f"{name}: no split {name.split!r}; {name.builder_name} has {', '.join(sorted(splits))}."
        )
    if str(builder.info.file_format.value) != "tfrecord":
        raise InvalidValueError(
            f"{name}: stored as {builder.info.file_format.value}; tt reads TFDS datasets stored as TFRecord "
            f"(`tfds build {name.builder_name} --file_format tfrecord`)."
        )
    entry = CATALOG.get(name.name)
    features = _serialized_features(builder.info)
    fields = options.fields or (entry.fields if entry else _default_fields(features))
    label_map = classnames.subset_label_map(entry.label_subset) if entry and entry.label_subset else None
    record_fields = _record_fields(name, fields, features, label_map)
    files = [str(instruction.filename) for instruction in splits[name.split].file_instructions]
    info = schema.DatasetInfo(
        num_examples=splits[name.split].num_examples,
        num_shards=len(files),
        source=str(name),
        class_names=_class_names(entry, builder, fields) if record_fields.has(schema.LABEL) else None,
        shards=[f.rsplit("/", 1)[-1] for f in files],
        tfds={
            "name": name.name,
            "config": builder.builder_config.name if builder.builder_config else None,
            "split": name.split,
            "version": str(builder.version),
            "path": str(builder.data_dir),
        },
        fields=record_fields,
    )
    return files, info
