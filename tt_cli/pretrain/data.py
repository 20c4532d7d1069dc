"""The labelled input of `tt pretrain`: which shards, which classes, and batches of
(uint8 images, labels) read as `tt train` reads its shards (`pipeline.positioned_records`).

A fixed fraction of the examples (chosen by a hash of each record, so it does not depend
on shard order) is held out for the accuracy report unless other shards are given for it.

Example:
>>> import tempfile
>>> from tt_cli.demo.shapes import write_demo_split
>>> shards = write_demo_split(tempfile.mkdtemp(), 12, seed=0, image_size=16, num_shards=1)
>>> files, info = resolve_labelled(shards, "training shards")
>>> len(class_names_of(files, info, shards))
18
>>> images, labels = next(iter(labelled_dataset(files, (16, 16), 4, training=True)))
>>> images.shape, images.dtype.name, labels.shape
(TensorShape([4, 16, 16, 3]), 'uint8', TensorShape([4]))
"""

import contextlib

from tt_cli import storage
from tt_cli.data import schema, shard_files
from tt_cli.errors import InvalidValueError, UnreadableDataError

HOLDOUT_BUCKETS = 1000  # the held-out fraction is resolved to 1/1000ths


def resolve_labelled(path, what):
    """(shard files, dataset.json info or None) of `path`, `what` naming it in errors."""
    if not path:
        raise InvalidValueError(f"no {what}: give labelled shards (a `tt data convert` directory or a glob).")
    if not storage.exists(path) and not any(c in path for c in "*?["):
        raise UnreadableDataError(f"{path}: no such file or directory (the {what}).")
    return shard_files.resolve_shards(path)


def _scan_labels(files):
    """Every label of the shards (one pass reading only the label feature)."""
    import numpy as np
    import tensorflow as tf

    from tt_cli.data.tf_schema import parse_example

    labels = (
        tf.data.TFRecordDataset(list(files), num_parallel_reads=tf.data.AUTOTUNE)
        .map(lambda s: parse_example(s, (schema.LABEL,))[schema.LABEL], num_parallel_calls=tf.data.AUTOTUNE)
        .batch(65536)
    )
    return np.concatenate([b for b in labels.as_numpy_iterator()] or [np.zeros([0], "int64")])


def class_names_of(files, info, data):
    """Class names from dataset.json, else `class_<i>` for 0..max label; TtError without labels."""
    from tt_cli.data.pipeline import first_record_features

    if schema.LABEL not in first_record_features(files):
        raise InvalidValueError(
            f"{data}: records have no '{schema.LABEL}'; tt pretrain needs a labelled (classification) set."
        )
    if info is not None and info.class_names:
        return list(info.class_names)
    labels = _scan_labels(files)
    if labels.size == 0 or labels.max() < 0:
        raise InvalidValueError(f"{data}: no labelled examples; tt pretrain needs a labelled (classification) set.")
    return [f"class_{i}" for i in range(int(labels.max()) + 1)]


def labelled_dataset(
    files,
    image_size,
    batch_size,
    training,
    holdout=0.0,
    heldout=False,
    augment=False,
    seed=0,
    shuffle_buffer=10_000,
    start_step=0,
    input_context=None,
):
    """Batches (uint8 images [B, H, W, 3], int64 labels [B]); endless and shuffled when training.

    `holdout` > 0 splits the records by a hash of their bytes: `heldout=True` keeps
    that fraction, `heldout=False` the rest. `batch_size` is the global batch; under
    `distribute_datasets_from_function` pass the `input_context`: each input pipeline
    (worker) reads its own shards and yields per-replica batches. `start_step`: a resumed
    run's first step; the records earlier steps consumed are skipped before decoding.
    """
    import tensorflow as tf

    from tt_cli.data.pipeline import decode_image, pipeline_share, positioned_records
    from tt_cli.data.tf_schema import parse_example

    cut = int(round(holdout * HOLDOUT_BUCKETS))

    def keep(serialized):
        in_holdout = tf.strings.to_hash_bucket_fast(serialized, HOLDOUT_BUCKETS) < cut
        return in_holdout if heldout else tf.logical_not(in_holdout)

    def parse(position, serialized):
        example = parse_example(serialized, (schema.IMAGE, schema.LABEL))
        image = decode_image(example[schema.IMAGE], image_size)
        if augment:
            flip = tf.random.stateless_uniform([], seed=[seed, position]) < 0.5
            image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
        return image, example[schema.LABEL]

    files_ds, per_pipeline_batch, records_per_step = pipeline_share(
        tf.data.Dataset.from_tensor_slices(list(files)), len(files), batch_size, input_context
    )
    records = positioned_records(
        files, seed, shuffle_buffer, training=training, keep=keep if cut else None, files_ds=files_ds
    ).skip(start_step * records_per_step)
    options = tf.data.Options()
    options.deterministic = True
    return (
        records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(per_pipeline_batch, drop_remainder=training)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )


@contextlib.contextmanager
def read_errors_named(files, data):
    """Turns a `tf.data` error reading `files` into one line naming the corrupt shard."""
    import tensorflow as tf

    from tt_cli.data.pipeline import is_read_error, shard_read_error

    try:
        yield
    except tf.errors.OpError as e:
        if not is_read_error(e):
            raise
        raise shard_read_error(e, files, data) from None
