"""The `tf.data` input pipelines that feed training and evaluation from TFRecord shards.

Training: shard files shuffled and interleaved in parallel, records shuffled, one
caption sampled per image, images decoded and resized in parallel (also at the
pretrained tower's resolution when h runs online), batched, tokenized by
SentencePiece inside the pipeline, prefetched; with `augment`, the main image tower's
images are random resized crops (`random_crop`). Everything random is a function of
the seed and the record's position in the stream, so a run that resumes at step s
skips exactly the records the first s steps consumed (skipped before decoding,
which is what costs) and sees the same batches an uninterrupted run would.

Shards written by `tt data convert` hold only images it decoded and checked, so they
are safe to read. Shards from elsewhere may not be: an image over
`schema.MAX_IMAGE_PIXELS` (read from its header) is never decoded (training skips it,
`decode_image` returns it black) and training skips a record whose image fails to
decode, each with a warning on stderr, rather than stopping the run.

In use (inside `tt train`, with the shard files and the run's tokenizer):

```python
ds = train_dataset(files, batch_size=64, image_size=(224, 224), tokenizer=tok)
sorted(next(iter(ds)))  # ['image', 'tokens']
```
"""

import os
import re
import sys

import tensorflow as tf
from google.protobuf.message import DecodeError

from tt_cli.data import schema, tf_schema, tfds_catalog
from tt_cli.data.records import find_corrupt_record
from tt_cli.errors import InvalidValueError, UnreadableDataError

AUTOTUNE = tf.data.AUTOTUNE
# How TensorFlow's record reader reports a bad record: a byte offset, but not the file.
_BAD_RECORD_AT = re.compile(r"(?:corrupted|truncated) record at (\d+)")


def is_read_error(error):
    """Whether a TensorFlow error came from reading the shards, not from the model:
    a bad record, or a record the input pipeline could not parse or decode."""
    return isinstance(error, tf.errors.DataLossError) or (
        isinstance(error, tf.errors.InvalidArgumentError) and "IteratorGetNext" in error.message
    )


def shard_read_error(error, files, data, error_class=UnreadableDataError, then=""):
    """The one-line `TtError` (an `error_class`) for a `tf.data` error while reading `files`
    (what the caller gave as `data`): the corrupt shard and byte offset when TensorFlow's
    offset leads to one (it names no file), TensorFlow's own words otherwise, with how to
    check every shard; `then` continues the sentence (what became of the work)."""
    from tt_cli.data.lockstep import mismatch_message

    if mismatch_message(error):  # the data and an embedding folder disagree: not a corrupt shard
        return error_class(f"{mismatch_message(error)}{then}.")
    match = _BAD_RECORD_AT.search(error.message)
    corrupt = find_corrupt_record(files, int(match.group(1))) if match else None
    what = str(corrupt) if corrupt is not None else f"{data}: a shard cannot be read ({_tf_words(error.message)})"
    if tfds_catalog.is_tfds(data):  # TFDS's own files: `tt data inspect` reads shards only
        return error_class(f"{what}{then}")
    return error_class(f"{what}{then}", shards=data)


def _tf_words(message):
    """The line of a TensorFlow error message that says what went wrong, without the
    graph bookkeeping around it ("Graph execution error:", node names, op names)."""
    for line in message.strip().splitlines():
        line = re.sub(r"\{\{[^}]*\}\}|\[\[[^\]]*\]\]|\[Op:[^\]]*\]", "", line).strip()
        line = re.sub(r"^.*Iterator::[\w:]+: ", "", line)  # "Error in user-defined function ... Iterator::Root::X: "
        if line and not line.startswith(("Graph execution error", "Detected at node", "<stack traces")):
            return line
    return message.strip()[:200]


def resize(images, size, resizing=None):
    """Pixels [H, W, 3] or [B, H, W, 3] -> float32 in [0, 255] at `size`: area averaging
    when shrinking (alias-free, and twice as fast in the input pipeline as antialiased
    bilinear), bilinear when enlarging. Training, evaluation and exports all resize here.

    `resizing`: the `keras.layers.Resizing` arguments of a KerasHub preset's image converter
    (`models.PresetImageTower.resizing`: interpolation, antialias, crop or pad to the aspect
    ratio) to resize as the preset does instead, for the towers of a run started from it."""
    images = tf.cast(images, tf.float32)
    if resizing is not None:
        import keras

        return keras.layers.Resizing(size[0], size[1], dtype="float32", **resizing)(images)
    height, width = tf.shape(images)[-3], tf.shape(images)[-2]
    shrinking = tf.logical_and(height >= size[0], width >= size[1])
    return tf.cond(
        shrinking,
        lambda: tf.image.resize(images, size, method="area"),
        lambda: tf.image.resize(images, size, method="bilinear", antialias=True),
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_pixels(encoded):
    """Width x height (int64) from a PNG's or JPEG's header, without decoding; 0 for other formats."""

    def png():
        # IHDR: width and height as big-endian uint32 at bytes 16..23.
        header = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8), tf.int64)
        width = header[0] * 2**24 + header[1] * 2**16 + header[2] * 2**8 + header[3]
        height = header[4] * 2**24 + header[5] * 2**16 + header[6] * 2**8 + header[7]
        return width * height

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(encoded), tf.int64)
        return shape[0] * shape[1]

    is_png = tf.logical_and(
        tf.strings.length(encoded) >= 24, tf.equal(tf.strings.substr(encoded, 0, 8), _PNG_SIGNATURE)
    )
    return tf.case([(is_png, png), (tf.io.is_jpeg(encoded), jpeg)], default=lambda: tf.constant(0, tf.int64))


def fits_pixel_limit(encoded):
    """Whether an encoded image is small enough to decode (`tt data convert` rejects the others)."""
    return image_pixels(encoded) <= schema.MAX_IMAGE_PIXELS


# `--augment`: OpenCLIP's training crop (open_clip `image_transform(is_train=True)`: a
# torchvision `RandomResizedCrop` with `AugmentationCfg.scale` (0.9, 1.0) and torchvision's
# default aspect ratios (3/4, 4/3), width / height), drawn in up to 10 attempts as torchvision
# does. The crop is then resized by `resize` like every other image of tt (OpenCLIP: bicubic).
CROP_AREA = (0.9, 1.0)  # fraction of the image's area the crop keeps
CROP_ASPECT = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10  # then the whole image (torchvision: a centre crop at the nearest allowed aspect)
_CROP_STREAM = 1  # folded into (seed, position): crops independent of the caption choice


def random_crop(image, seed, position):
    """The random crop of a random resized crop (`CROP_AREA`, `CROP_ASPECT`) of a decoded
    image [H, W, 3], drawn from (`seed`, `position`) alone: the same record at the same
    stream position gets the same crop, whatever the parallelism, and after a resume.

    Example:
    >>> random_crop(tf.zeros([100, 100, 3], tf.uint8), seed=0, position=tf.constant(7, tf.int64)).shape[-1]
    3
    """
    key = tf.random.experimental.stateless_fold_in(
        tf.stack([tf.constant(seed, tf.int64), tf.cast(position, tf.int64)]), _CROP_STREAM
    )
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.zeros([1, 0, 4]),
        seed=key,
        min_object_covered=0.0,
        aspect_ratio_range=CROP_ASPECT,
        area_range=CROP_AREA,
        max_attempts=CROP_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.slice(image, begin, size)


def decode_image(encoded, size, fits=None, crop=None, resizing=None):
    """Encoded JPEG/PNG -> uint8 RGB [H, W, 3] at `size` (resized as `resize` says).

    An image over schema.MAX_IMAGE_PIXELS is not decoded (it could exhaust memory):
    it comes out black, with a warning on stderr, so evaluation keeps its row order.
    `fits`: `fits_pixel_limit(encoded)` when the caller has it already (its header is
    then read once per record). `crop(image)`: applied to the decoded image at its full
    resolution, before the resize (`random_crop` for augmentation).
    """
    return decode_image_sizes(encoded, [size], fits, crop, resizing)[0]


def decode_image_sizes(encoded, sizes, fits=None, crop=None, resizing=None):
    """`decode_image` at each of `sizes` (a list), decoding the image once: the image
    tower and every third tower that runs online each take it at their own size.
    `crop` applies to the first size's image only (the main tower's, with `--augment`);
    `resizing` (see `resize`) to every size."""

    def decode():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        sources = [crop(image) if crop is not None and i == 0 else image for i in range(len(sizes))]
        # A crop's shape is only known when it runs: say the resized one, which is fixed.
        return tuple(
            tf.ensure_shape(
                tf.cast(tf.clip_by_value(tf.round(resize(source, size, resizing)), 0, 255), tf.uint8), [*size, 3]
            )
            for source, size in zip(sources, sizes)
        )

    def blank():
        tf.print(
            f"warning: an image over {schema.MAX_IMAGE_PIXELS:,} pixels was not decoded (training skips it, "
            "evaluation sees it black); `tt data convert` rejects such images.",
            output_stream=sys.stderr,
        )
        return tuple(tf.zeros([size[0], size[1], 3], tf.uint8) for size in sizes)

    return list(tf.cond(fits_pixel_limit(encoded) if fits is None else fits, decode, blank))


def first_record_features(files):
    """The feature names of the shards' first record, or one clear line why there are none."""
    try:
        first = next(iter(tf.data.TFRecordDataset(files[:1]).take(1)), None)
    except tf.errors.OpError as e:
        raise UnreadableDataError(f"{files[0]}: not a readable TFRecord file ({e.message.splitlines()[0]}).")
    if first is None:
        raise UnreadableDataError(f"{files[0]}: the shard is empty.")
    try:
        return tf_schema.feature_names(first.numpy())
    except DecodeError:
        raise InvalidValueError(f"{files[0]}: records are not tf.train.Example protos.")


def check_features(files, need_h_embedding=False, fields=None):
    """Fails with one clear line when the first record lacks what training needs
    (`fields`: the records are a TFDS dataset's, whose mapped fields are what it has)."""
    present = first_record_features(files) if fields is None else set(fields.features)
    needed = set(schema.TRAINING_FEATURES) | ({schema.H_EMBEDDING} if need_h_embedding else set())
    missing = sorted(needed - present)
    if missing and fields is not None:
        raise InvalidValueError(
            f"{files[0]}: this TFDS dataset has no {', '.join(missing)} for training",
            remedy=("tfds_fields", "caption=FEATURE", "to name the feature that holds its captions"),
        )
    if missing:
        raise UnreadableDataError(
            f"{files[0]}: records lack the feature(s) {', '.join(missing)}; make shards with `tt data convert`."
        )


def positioned_records(files, seed=0, shuffle_buffer=10_000, training=True, keep=None, files_ds=None, read_file=None):
    """(stream position, serialized record) pairs of the shard `files`, read as training and
    `tt pretrain` read them: files interleaved 16 at a time; when `training`, endlessly, with
    the file order and the records shuffled by `seed`. `keep(serialized)` filters records
    before they are numbered; `files_ds` is the (sharded) dataset of the files to read;
    `read_file(element of files_ds)` reads one (default: its TFRecords), e.g. a data shard
    with its embedding shards in lockstep (`lockstep.read_aligned`): whole pairs are shuffled."""
    if files_ds is None:
        files_ds = tf.data.Dataset.from_tensor_slices(list(files))
    if read_file is None:
        read_file = lambda f: tf.data.TFRecordDataset(f, buffer_size=8 << 20)  # noqa: E731
    if training:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    records = files_ds.interleave(
        read_file,
        cycle_length=min(len(files), 16),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if keep is not None:
        records = records.filter(keep)
    records = records.enumerate()
    if training:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return records


def pipeline_share(files_ds, num_files, batch_size, input_context=None):
    """(this input pipeline's files, the batch it yields, the records it reads per step) of a
    global `batch_size`: under `distribute_datasets_from_function` each pipeline (worker)
    reads its own shards and yields per-replica batches; without `input_context`, all of it."""
    if input_context is None:
        return files_ds, batch_size, batch_size
    if input_context.num_input_pipelines > 1:
        if num_files < input_context.num_input_pipelines:
            raise InvalidValueError(
                f"{num_files} shard(s) cannot feed {input_context.num_input_pipelines} "
                "workers; convert with more shards."
            )
        files_ds = files_ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    per_replica = input_context.get_per_replica_batch_size(batch_size)
    replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
    return files_ds, per_replica, per_replica * replicas


def train_dataset(
    files,
    batch_size,
    image_size,
    tokenizer,
    third_towers=(),
    seed=0,
    start_step=0,
    shuffle_buffer=10_000,
    input_context=None,
    augment=False,
    fields=None,
    resizing=None,
):
    """Endless batches {"image", "tokens"[, each third tower's input]} for training.

    `third_towers`: a `third_towers.ThirdTower` per frozen third tower; each gets its input
    under its own key (`ThirdTower.input_key`): pixels at its size when it runs online,
    else its precomputed features, from the shards' own `h_embedding` or from its embeddings
    folder, read in lockstep with the shards (`lockstep.read_aligned`); a text third tower
    (`modality` "text") gets the caption the text tower reads, packed by its own preprocessor
    (made here: each input pipeline makes its own).

    `batch_size` is the global batch. Under `distribute_datasets_from_function`, pass
    the `input_context`: each input pipeline (worker) reads its own shards and yields
    per-replica batches.
    `augment`: "image" is a random resized crop (`random_crop`); a third tower's
    pixels stay the whole image. `resizing`: how images are resized (`resize`).
    `fields`: the records are a TFDS dataset's (`schema.record_fields`).
    """
    from models.pretrained_text_tower import text_preprocessor
    from tt_cli.data import lockstep
    from tt_cli.data.third_towers import FOLDER, ONLINE, SHARDS, TEXT

    text = [(tower.input_key, text_preprocessor(tower.preset)) for tower in third_towers if tower.modality == TEXT]
    third_towers = [tower for tower in third_towers if tower.modality != TEXT]
    online = [tower for tower in third_towers if tower.source == ONLINE]
    in_shards = [tower for tower in third_towers if tower.source == SHARDS]
    in_folders = [tower for tower in third_towers if tower.source == FOLDER]
    if any(tower.index != 0 for tower in in_shards):
        raise InvalidValueError(
            "the shards hold the first third tower's embeddings only; the others run online "
            "or read theirs from an embeddings folder."
        )
    paired = [list(files)] + [list(tower.embedding_files) for tower in in_folders]
    files_ds = tf.data.Dataset.from_tensor_slices(list(files) if not in_folders else list(zip(*paired)))
    read_file = (lambda paths: lockstep.read_aligned(paths, len(in_folders), fields)) if in_folders else None
    files_ds, per_pipeline_batch, records_per_step = pipeline_share(files_ds, len(files), batch_size, input_context)
    # The stream position seeds the caption choice. Resume: drop what earlier steps
    # consumed before paying for decoding it.
    records = positioned_records(
        files, seed, shuffle_buffer, training=True, files_ds=files_ds, read_file=read_file
    ).skip(start_step * records_per_step)
    h_embedding_dim = in_shards[0].embedding_dim if in_shards else None
    keys = (schema.IMAGE, schema.TEXTS, schema.KEY) + ((schema.H_EMBEDDING,) if in_shards else ())
    # Decoded once, resized for the image tower (cropped first with `augment`) and each
    # online third tower, which always sees the whole image.
    main = tuple(image_size)
    h_sizes = list(dict.fromkeys(tuple(tower.image_size) for tower in online))
    others = [size for size in h_sizes if augment or size != main]

    def parse(position, record):
        serialized, embedded = record if in_folders else (record, ())
        example = tf_schema.parse_example(serialized, keys, h_embedding_dim, fields)
        texts = example[schema.TEXTS]
        pick = tf.random.stateless_uniform([], seed=[seed, position], maxval=tf.shape(texts)[0], dtype=tf.int32)
        # Too large to decode (black below): dropped by the filter further down.
        fits = fits_pixel_limit(example[schema.IMAGE])
        crop = (lambda image: random_crop(image, seed, position)) if augment else None
        images = decode_image_sizes(example[schema.IMAGE], [main] + others, fits, crop, resizing)
        pixels = dict(zip(others, images[1:])) if augment else dict(zip([main] + others, images))
        out = {"image": images[0], "caption": texts[pick], "fits": fits}
        for tower in online:
            out[tower.input_key] = pixels[tuple(tower.image_size)]
        for tower in in_shards:
            out[tower.input_key] = example[schema.H_EMBEDDING]
        for tower, embedding_record in zip(in_folders, embedded):
            parsed = tf_schema.parse_example(embedding_record, (schema.H_EMBEDDING,), tower.embedding_dim)
            out[tower.input_key] = parsed[schema.H_EMBEDDING]
        return out

    def tokenize(batch):
        batch.pop("fits")
        caption = batch.pop("caption")
        batch["tokens"] = tokenizer.tokenize(caption)
        for key, preprocessor in text:
            batch[key] = preprocessor(caption)
        return batch

    options = tf.data.Options()
    options.deterministic = True
    return (
        records.map(parse, num_parallel_calls=AUTOTUNE)
        # An image too large to decode is dropped (never decoded). An image that cannot be
        # decoded, or a corrupt record (only in shards not made by convert), is not skipped:
        # it ends the run with one line naming the data (`is_read_error`), as `tt data inspect`
        # calls it unreadable. (`ignore_errors` would also hide corrupt records, silently.)
        .filter(lambda example: example["fits"])
        .batch(per_pipeline_batch, drop_remainder=True)
        .map(tokenize, num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)
        .with_options(options)
    )


def read_captions(files, limit=1_000_000, data=None, fields=None):
    """Up to `limit` (None: all) captions (str) of the shard `files` (`data`, as the user
    named them; `fields`: of a TFDS dataset), for training a tokenizer; one clear line naming
    the shard when one is corrupt.

    `shard_reader.read_captions` is its TF-free twin (same signature, same words) for
    `tt data tokenizer`: a TensorFlow process cannot import the `tfrecord` package.
    """
    texts = (
        tf.data.TFRecordDataset(list(files), num_parallel_reads=AUTOTUNE)
        .map(
            lambda s: tf_schema.parse_example(s, (schema.TEXTS,), fields=fields)[schema.TEXTS],
            num_parallel_calls=AUTOTUNE,
        )
        .unbatch()
        .take(-1 if limit is None else limit)
        .batch(4096)
    )
    try:
        for batch in texts.as_numpy_iterator():
            yield from (t.decode("utf-8", "replace") for t in batch)
    except tf.errors.OpError as e:  # everything in this pipeline reads the shards
        raise shard_read_error(e, files, data or os.path.dirname(files[0])) from None
