"""The shard schema on the TensorFlow side: feature specs, the one parse function,
the one Example builder.

Every `tf.data` reader of shards (training, evaluation, `tt pretrain`, `tt data
embed`, the tokenizer's caption reader) maps `parse_example` over the records,
asking only for the features it uses, so that a feature it ignores can never
fail its read. Keys, kinds and defaults come from `schema`; the TF-free side's
counterpart is `example_codec`. Never import this next to the `tfrecord` package.

Example:
>>> serialized = example_bytes(b"<PNG bytes>", ["a red circle"], key="0", label=3)
>>> parsed = parse_example(serialized, (schema.IMAGE, schema.LABEL))
>>> parsed["image"].numpy(), int(parsed["label"])
(b'<PNG bytes>', 3)
"""

import tensorflow as tf

from tt_cli.data import schema


def feature_spec(keys, h_embedding_dim=None):
    """The `tf.io.parse_single_example` spec of the features `keys`: texts variable-length,
    key "" and label `schema.NO_LABEL` when absent, h_embedding `h_embedding_dim` floats."""
    specs = {
        schema.IMAGE: tf.io.FixedLenFeature([], tf.string),
        schema.TEXTS: tf.io.VarLenFeature(tf.string),
        schema.KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        schema.LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=schema.NO_LABEL),
    }
    if schema.H_EMBEDDING in keys:
        if not h_embedding_dim:
            raise ValueError("parsing h_embedding needs its dimension")
        specs[schema.H_EMBEDDING] = tf.io.FixedLenFeature([h_embedding_dim], tf.float32)
    return {key: specs[key] for key in keys}


def parse_example(serialized, keys, h_embedding_dim=None, fields=None):
    """One serialized Example -> {key: tensor} for `keys`: "image" the encoded bytes,
    "texts" a 1-D string tensor of the captions, "key" a string, "label" an int64,
    "h_embedding" float32 [h_embedding_dim].

    `fields` (a `tfds_catalog.RecordFields`): the record is a TFDS dataset's, whose features
    hold tt's fields under their own names and types; it parses to the same tensors."""
    if fields is not None:
        return _parse_mapped(serialized, keys, fields)
    parsed = tf.io.parse_single_example(serialized, feature_spec(keys, h_embedding_dim))
    if schema.TEXTS in parsed:
        parsed[schema.TEXTS] = parsed[schema.TEXTS].values
    return parsed


_DTYPES = {"string": tf.string, "int64": tf.int64}


def _parse_mapped(serialized, keys, fields):
    """`parse_example` of a record whose features `fields` maps onto tt's keys. A field the
    source lacks reads as absent would from a shard: no texts, label NO_LABEL, key ""."""
    if schema.H_EMBEDDING in keys:
        raise ValueError("a TFDS record holds no h_embedding; embeddings come from an embeddings folder")
    specs = {}
    for key in keys:
        if fields.has(key):
            name, dtype = fields.features[key]
            # Texts: one text or a sequence of them; the others one value (a default when missing).
            specs[name] = (
                tf.io.VarLenFeature(tf.string)
                if key == schema.TEXTS
                else tf.io.FixedLenFeature([], _DTYPES[dtype], default_value="" if dtype == "string" else -1)
            )
    parsed = tf.io.parse_single_example(serialized, specs)
    out = {}
    for key in keys:
        if not fields.has(key):
            empty = {schema.TEXTS: tf.constant([], tf.string), schema.LABEL: tf.constant(schema.NO_LABEL, tf.int64)}
            out[key] = empty.get(key, tf.constant(""))
            continue
        value = parsed[fields.features[key][0]]
        if key == schema.TEXTS:
            value = value.values
        elif key == schema.KEY and value.dtype != tf.string:
            value = tf.strings.as_string(value)
        elif key == schema.LABEL and fields.label_map is not None:
            label_map = tf.constant(fields.label_map, tf.int64)
            inside = tf.logical_and(value >= 0, value < len(fields.label_map))
            value = tf.where(inside, tf.gather(label_map, tf.clip_by_value(value, 0, len(fields.label_map) - 1)), -1)
        out[key] = value
    return out


def example_bytes(image, texts, key, label=None, h_embedding=None):
    """One serialized Example, byte for byte what the TF-free `example_codec.encode_example` writes."""
    return schema.build_example(tf.train, image, texts, key, label, h_embedding)


def with_h_embedding(serialized, embedding):
    """The serialized Example with `h_embedding` set to `embedding`; every other feature,
    including ones tt does not know, is kept as it was."""
    example = tf.train.Example.FromString(serialized)
    example.features.feature[schema.H_EMBEDDING].float_list.value[:] = list(map(float, embedding))
    return schema.serialize(example)


def embedding_example_bytes(key, embedding):
    """One record of an embedding folder: the source record's `key` (bytes) and `embedding`."""
    return schema.build_embedding_example(tf.train, key, embedding)


def feature_names(serialized):
    """The names of the features of one serialized Example; raises
    `google.protobuf.message.DecodeError` when it is not one."""
    return set(tf.train.Example.FromString(serialized).features.feature)
