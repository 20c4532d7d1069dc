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

Example:
>>> ds = train_dataset(files, batch_size=64, image_size=(224, 224), tokenizer=tok)  # doctest: +SKIP
>>> sorted(next(iter(ds)))                                                      # doctest: +SKIP
['image', 'tokens']
"""

import os
import re
import sys

import tensorflow as tf
from google.protobuf.message import DecodeError

from tt_cli.data import schema, tf_schema
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


def describe_read_error(error, files, data):
    """One line for a `tf.data` error while reading `files` (what the user gave as
    `data`): the corrupt shard and byte offset when TensorFlow's offset leads to one
    (it names no file), TensorFlow's own words otherwise, and what to run next."""
    from tt_cli.data.lockstep import mismatch_message

    if mismatch_message(error):  # the data and an embedding folder disagree: not a corrupt shard
        return mismatch_message(error)
    match = _BAD_RECORD_AT.search(error.message)
    corrupt = find_corrupt_record(files, int(match.group(1))) if match else None
    what = str(corrupt) if corrupt is not None else f"{data}: a shard cannot be read ({_tf_words(error.message)})"
    return f"{what}; run `tt data inspect --verify {data}` to check every shard"


def _tf_words(message):
    """The line of a TensorFlow error message that says what went wrong, without the
    graph bookkeeping around it ("Graph execution error:", node names, op names)."""
    for line in message.strip().splitlines():
        line = re.sub(r"\{\{[^}]*\}\}|\[\[[^\]]*\]\]|\[Op:[^\]]*\]", "", line).strip()
        line = re.sub(r"^.*Iterator::[\w:]+: ", "", line)  # "Error in user-defined function ... Iterator::Root::X: "
        if line and not line.startswith(("Graph execution error", "Detected at node", "<stack traces")):
            return line
    return message.strip()[:200]


def resize(images, size):
    """Pixels [H, W, 3] or [B, H, W, 3] -> float32 in [0, 255] at `size`: area averaging
    when shrinking (alias-free, and twice as fast in the input pipeline as antialiased
    bilinear), bilinear when enlarging. Training, evaluation and exports all resize here."""
    images = tf.cast(images, tf.float32)
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


def decode_image(encoded, size, fits=None, crop=None):
    """Encoded JPEG/PNG -> uint8 RGB [H, W, 3] at `size`.

    An image over schema.MAX_IMAGE_PIXELS is not decoded (it could exhaust memory):
    it comes out black, with a warning on stderr, so evaluation keeps its row order.
    `fits`: `fits_pixel_limit(encoded)` when the caller has it already (its header is
    then read once per record). `crop(image)`: applied to the decoded image at its full
    resolution, before the resize (`random_crop` for augmentation).
    """
    return decode_image_sizes(encoded, [size], fits, crop)[0]


def decode_image_sizes(encoded, sizes, fits=None, crop=None):
    """`decode_image` at each of `sizes` (a list), decoding the image once: the image
    tower and every third tower that runs online each take it at their own size.
    `crop` applies to the first size's image only (the main tower's, with `--augment`)."""

    def decode():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        sources = [crop(image) if crop is not None and i == 0 else image for i in range(len(sizes))]
        # A crop's shape is only known when it runs: say the resized one, which is fixed.
        return tuple(
            tf.ensure_shape(tf.cast(tf.clip_by_value(tf.round(resize(source, size)), 0, 255), tf.uint8), [*size, 3])
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


def check_features(files, need_h_embedding=False):
    """Fails with one clear line when the first record lacks what training needs."""
    present = first_record_features(files)
    needed = set(schema.TRAINING_FEATURES) | ({schema.H_EMBEDDING} if need_h_embedding else set())
    missing = sorted(needed - present)
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
    h_image_size=None,
    h_embedding_dim=None,
    seed=0,
    start_step=0,
    shuffle_buffer=10_000,
    input_context=None,
    embeddings=(),
    augment=False,
):
    """Endless batches {"image", "tokens"[, "h_image" | "h_embedding"...]} for training.

    Third towers: `h_image_size` (pixels decoded at that size) or `h_embedding_dim` (the
    shards' own precomputed `h_embedding`, of that width; the first tower's only); either
    may be a list with one entry per tower (None where the tower's input comes otherwise):
    tower k >= 1's input is `h_image_{k}` (`models.three_towers.tower_input_key`).
    `embeddings`: (embedding shard of each of `files`, width) per embedding folder
    (`lockstep.embedding_files`), read in lockstep with the shards; folder i is tower i's
    input `h_embedding` / `h_embedding_{i}` (`schema.embedding_key`).

    `batch_size` is the global batch. Under `distribute_datasets_from_function`, pass
    the `input_context`: each input pipeline (worker) reads its own shards and yields
    per-replica batches.
    `augment`: "image" is a random resized crop (`random_crop`); "h_image", the frozen
    tower's input, stays the whole image.
    """
    from models.three_towers import tower_input_key
    from tt_cli.data import lockstep

    towers = _tower_inputs(h_image_size, h_embedding_dim)
    h_embedding_dim = towers[0][1] if towers else None
    if any(dim for _, dim in towers[1:]):
        raise InvalidValueError(
            "the shards hold the first third tower's embeddings only; the others run online "
            "or read theirs from an embeddings folder."
        )
    paired = [list(files)] + [list(paths) for paths, _ in embeddings]
    files_ds = tf.data.Dataset.from_tensor_slices(list(files) if not embeddings else list(zip(*paired)))
    read_file = (lambda paths: lockstep.read_aligned(paths, len(embeddings))) if embeddings else None
    files_ds, per_pipeline_batch, records_per_step = pipeline_share(files_ds, len(files), batch_size, input_context)
    # The stream position seeds the caption choice. Resume: drop what earlier steps
    # consumed before paying for decoding it.
    records = positioned_records(
        files, seed, shuffle_buffer, training=True, files_ds=files_ds, read_file=read_file
    ).skip(start_step * records_per_step)
    keys = (schema.IMAGE, schema.TEXTS, schema.KEY) + ((schema.H_EMBEDDING,) if h_embedding_dim else ())

    def parse(position, record):
        serialized, embedded = record if embeddings else (record, ())
        example = tf_schema.parse_example(serialized, keys, h_embedding_dim)
        texts = example[schema.TEXTS]
        pick = tf.random.stateless_uniform([], seed=[seed, position], maxval=tf.shape(texts)[0], dtype=tf.int32)
        # Too large to decode (black below): dropped by the filter further down.
        fits = fits_pixel_limit(example[schema.IMAGE])
        # Decoded once, resized for the image tower (cropped first with `augment`) and each
        # online third tower, which always sees the whole image.
        main = tuple(image_size)
        h_sizes = list(dict.fromkeys(tuple(size) for size, dim in towers if size is not None and not dim))
        others = [size for size in h_sizes if augment or size != main]
        crop = (lambda image: random_crop(image, seed, position)) if augment else None
        images = decode_image_sizes(example[schema.IMAGE], [main] + others, fits, crop)
        pixels = dict(zip(others, images[1:])) if augment else dict(zip([main] + others, images))
        out = {"image": images[0], "caption": texts[pick], "fits": fits}
        for k, (size, dim) in enumerate(towers):
            if dim:
                out[tower_input_key("h_embedding", k)] = example[schema.H_EMBEDDING]
            elif size is not None:
                out[tower_input_key("h_image", k)] = pixels[tuple(size)]
        for i, (embedding_record, (_, dim)) in enumerate(zip(embedded, embeddings)):
            parsed = tf_schema.parse_example(embedding_record, (schema.H_EMBEDDING,), dim)
            out[schema.embedding_key(i)] = parsed[schema.H_EMBEDDING]
        return out

    def tokenize(batch):
        batch.pop("fits")
        batch["tokens"] = tokenizer.tokenize(batch.pop("caption"))
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


def _tower_inputs(h_image_size, h_embedding_dim):
    """[(image size or None, embedding width or None)] per third tower, from one value
    (the first tower's) or a list of them per tower.

    >>> _tower_inputs((224, 224), None), _tower_inputs([None, (32, 32)], [16, None])
    ([((224, 224), None)], [(None, 16), ((32, 32), None)])
    """
    sizes = h_image_size if isinstance(h_image_size, list) else [h_image_size]
    dims = h_embedding_dim if isinstance(h_embedding_dim, list) else [h_embedding_dim]
    count = max(len(sizes), len(dims))
    sizes, dims = sizes + [None] * (count - len(sizes)), dims + [None] * (count - len(dims))
    towers = list(zip(sizes, dims))
    return towers if any(size is not None or dim for size, dim in towers) else []


def read_captions(files, limit=1_000_000, data=None):
    """Up to `limit` (None: all) captions (str) of the shard `files` (`data`, as the user
    named them), for training a tokenizer; one clear line naming the shard when one is corrupt.

    `shard_reader.read_captions` is its TF-free twin (same signature, same words) for
    `tt data tokenizer`: a TensorFlow process cannot import the `tfrecord` package.
    """
    texts = (
        tf.data.TFRecordDataset(list(files), num_parallel_reads=AUTOTUNE)
        .map(lambda s: tf_schema.parse_example(s, (schema.TEXTS,))[schema.TEXTS], num_parallel_calls=AUTOTUNE)
        .unbatch()
        .take(-1 if limit is None else limit)
        .batch(4096)
    )
    try:
        for batch in texts.as_numpy_iterator():
            yield from (t.decode("utf-8", "replace") for t in batch)
    except tf.errors.OpError as e:  # everything in this pipeline reads the shards
        raise UnreadableDataError(describe_read_error(e, files, data or os.path.dirname(files[0])) + ".") from None
