"""Reads evaluation shards with `tf.data` and embeds them with a run's model.

Images are decoded to RGB and resized exactly as the training pipeline does
(`tt_cli.data.pipeline.decode_image`: area when shrinking, bilinear when enlarging, uint8; a
preset's own way for a model started from one) to `model.image_size` — in `lit` mode that
is the locked pretrained tower's size.
Batches run through a `tf.function` of `model.encode_image`; captions are
tokenized with the run's tokenizer and embedded with `model.encode_text`. Both
show a rich progress bar on stderr.

With `thumbnails=True` the same `tf.data` map also JPEG-encodes each image as the
model saw it, shrunk to at most `THUMBNAIL_SIZE` pixels (`tt report`'s galleries):
no image is decoded twice. They cost about 1-3 KB of memory per image.

Equal inputs get one embedding: each distinct caption string is embedded once,
and an image whose pixels (as the model sees them, after decoding and resizing)
equal an earlier one's gets that image's embedding. A second forward pass of the
same input at another batch position, batch size or CPU can differ in the last
bit, and the pessimistic tie rule of the metrics needs equal inputs to tie exactly.

TensorFlow side only: never import this next to the `tfrecord` package.

In use (what `tt eval` runs for each model, after a training run):

```python
run = load_run("runs/demo")
images = encode_images(run.model, "shards/val")
images.embeddings.shape, images.labels[:3], images.captions[0]  # ((200, 64), array([0, 2, 1]), ['a red circle'])
```
"""

import contextlib
import dataclasses
import hashlib
import weakref

import numpy as np

from tt_cli.data import schema
from tt_cli.data.progress import progress_bar
from tt_cli.errors import InvalidValueError, UnreadableDataError

DEFAULT_BATCH_SIZE = 128
NO_LABEL = schema.NO_LABEL
THUMBNAIL_SIZE = 96
THUMBNAIL_QUALITY = 90


@dataclasses.dataclass
class EncodedImages:
    """Image embeddings of a dataset, in shard order, with what came with them."""

    embeddings: np.ndarray  # float32 [N, D], L2-normalised; identical images share one (bit-identical) row
    labels: np.ndarray  # int64 [N]; NO_LABEL where a row has none
    captions: list  # N lists of caption strings
    keys: list  # N source ids
    info: object = None  # schema.DatasetInfo, when the shards came from a dataset directory
    thumbnails: list = None  # N JPEG byte strings, when asked for


def parse_example(serialized, image_size, thumbnails=False, fields=None, resizing=None):
    """One serialized tf.train.Example -> {"image": uint8 [H, W, 3] at image_size, "texts", "label", "key"}
    (and "thumbnail", JPEG bytes of that image, with `thumbnails`; `fields`: of a TFDS dataset);
    `resizing`: as the model's (`pipeline.resize`)."""
    # The training pipeline's own decode + resize, so that evaluation sees what training saw.
    from tt_cli.data.pipeline import decode_image
    from tt_cli.data.tf_schema import parse_example as parse_features

    features = parse_features(serialized, (schema.IMAGE, schema.TEXTS, schema.LABEL, schema.KEY), fields=fields)
    example = {
        "image": decode_image(features[schema.IMAGE], image_size, resizing=resizing),
        "texts": features[schema.TEXTS],
        "label": features[schema.LABEL],
        "key": features[schema.KEY],
    }
    if thumbnails:
        example["thumbnail"] = thumbnail_jpeg(example["image"], image_size)
    return example


def thumbnail_jpeg(image, image_size):
    """JPEG bytes of a decoded uint8 image, shrunk (never enlarged) to fit THUMBNAIL_SIZE."""
    import tensorflow as tf

    from tt_cli.data.pipeline import resize

    scale = min(1.0, THUMBNAIL_SIZE / max(image_size))
    if scale < 1.0:
        size = tuple(max(1, round(s * scale)) for s in image_size)
        image = tf.cast(tf.clip_by_value(tf.round(resize(image, size)), 0, 255), tf.uint8)
    # Full-resolution colour: small thumbnails lose too much of it to chroma subsampling.
    return tf.io.encode_jpeg(image, quality=THUMBNAIL_QUALITY, chroma_downsampling=False)


def eval_dataset(files, image_size, batch_size=DEFAULT_BATCH_SIZE, thumbnails=False, fields=None, resizing=None):
    """Batches of {"image": uint8 [B, H, W, 3], "texts": string [B, n] padded
    with b"", "label": int64 [B], "key": string [B]} (and "thumbnail": string [B]
    with `thumbnails`), in file order, prefetched (`fields`: the files are a TFDS dataset's)."""
    import tensorflow as tf

    size = tuple(int(s) for s in image_size)

    def parse(serialized):
        return parse_example(serialized, size, thumbnails, fields, resizing)

    return (
        tf.data.TFRecordDataset(list(files))
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .padded_batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


_ENCODERS = weakref.WeakKeyDictionary()


def _encoder(model, kind):
    """One `tf.function` per model and kind, reused across calls (validation during
    `tt train` encodes with the same model often)."""
    import tensorflow as tf

    functions = _ENCODERS.setdefault(model, {})
    if kind not in functions:
        # A weak reference: the cached function must not keep the model alive.
        ref, method = weakref.ref(model), "encode_image" if kind == "image" else "encode_text"
        functions[kind] = tf.function(lambda x: getattr(ref(), method)(x, training=False), reduce_retracing=True)
    return functions[kind]


def _bar(total, description, show_progress):
    if not show_progress:
        return contextlib.nullcontext(lambda n=1: None)
    return progress_bar(total, description, unit="images" if "image" in description else "texts")


def _resolve(data, image_size, batch_size, thumbnails=False, tfds=None, resizing=None):
    """(tf.data.Dataset, DatasetInfo or None, total or None) for a path (or a TFDS dataset
    under the options `tfds`), a file list or a dataset."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        return data, None, None
    if isinstance(data, (list, tuple)):
        files, info = list(data), None
    else:
        files, info = schema.resolve_shards(str(data), tfds)
    total = info.num_examples if info else None
    return eval_dataset(files, image_size, batch_size, thumbnails, schema.record_fields(info), resizing), info, total


def encode_images(
    model,
    data,
    batch_size=DEFAULT_BATCH_SIZE,
    show_progress=True,
    description="encoding images",
    thumbnails=False,
    tfds=None,
    advance=None,
):
    """Embeds every image of `data` with `model.encode_image`.

    Args:
      model: a `models.ThreeTowers` (any mode).
      data: a dataset directory or shard glob, a list of shard files, or a
        `tf.data.Dataset` of batches shaped like `eval_dataset`'s (at least "image").
      batch_size: images per forward pass (ignored for a ready dataset).
      thumbnails: also keep a small JPEG of each image (`EncodedImages.thumbnails`);
        a ready dataset must then carry "thumbnail".
      tfds: `tfds_catalog.TfdsOptions` for a TFDS dataset `data` (`tfds:NAME:SPLIT`).
      advance: called with the number of images after each batch, in place of a bar of its own
        (one display for several evaluations).
    """
    import tensorflow as tf

    dataset, info, total = _resolve(data, model.image_size, batch_size, thumbnails, tfds, model.image_resizing)
    encode = _encoder(model, "image")
    embeddings, labels, captions, keys, fingerprints, jpegs = [], [], [], [], [], []
    try:
        bar = contextlib.nullcontext(advance) if advance else _bar(total, description, show_progress)
        with bar as step:
            for batch in dataset:
                fingerprints += [hashlib.sha256(image.tobytes()).digest() for image in batch["image"].numpy()]
                embeddings.append(encode(tf.cast(batch["image"], tf.float32)).numpy())
                n = len(embeddings[-1])
                labels.append(batch["label"].numpy() if "label" in batch else np.full(n, NO_LABEL))
                if "texts" in batch:
                    captions += [[t.decode("utf-8") for t in row if t] for row in batch["texts"].numpy()]
                else:
                    captions += [[] for _ in range(n)]
                keys += [k.decode("utf-8") for k in batch["key"].numpy()] if "key" in batch else [""] * n
                if thumbnails:
                    jpegs += list(batch["thumbnail"].numpy())
                step(n)
    except tf.errors.OpError as e:
        if isinstance(data, str):  # shards the user named: find the corrupt one
            from tt_cli.data.pipeline import shard_read_error

            raise shard_read_error(e, schema.resolve_shards(data, tfds)[0], data) from None
        first = (e.message or str(e)).strip().splitlines()[0]
        raise UnreadableDataError(f"{data}: cannot read or decode the shards ({first[:200]}).") from None
    if not embeddings:
        raise UnreadableDataError(f"{data}: no examples to evaluate.")
    return EncodedImages(
        share_duplicates(np.concatenate(embeddings).astype(np.float32), fingerprints),
        np.concatenate(labels).astype(np.int64),
        captions,
        keys,
        info,
        jpegs if thumbnails else None,
    )


def share_duplicates(embeddings, fingerprints):
    """Rows with the fingerprint of an earlier row get a copy of that row's embedding.

    Fingerprints are SHA-256 digests of the pixels the model saw, so only identical
    inputs are merged, and they then tie exactly however they were batched.
    """
    first_row = {}
    source = np.array([first_row.setdefault(f, row) for row, f in enumerate(fingerprints)], dtype=np.int64)
    return embeddings[source]


def encode_texts(
    model, tokenizer, texts, batch_size=DEFAULT_BATCH_SIZE, show_progress=True, description="encoding texts"
):
    """Embeds a list of strings with the run's tokenizer and `model.encode_text`: float32 [T, D].

    Each distinct string is embedded once and its row copied to every repeat, so
    repeated texts (a caption shared by several images) are bit-identical.
    """
    import tensorflow as tf

    texts = list(texts)
    if not texts:
        raise InvalidValueError("no texts to encode.")
    row_of = {}
    source = np.array([row_of.setdefault(t, len(row_of)) for t in texts], dtype=np.int64)
    distinct = list(row_of)  # first-occurrence order
    dataset = (
        tf.data.Dataset.from_tensor_slices(tf.constant(distinct, dtype=tf.string))
        .batch(batch_size)
        .map(tokenizer.tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    encode = _encoder(model, "text")
    out = []
    with _bar(len(distinct), description, show_progress) as advance:
        for tokens in dataset:
            out.append(encode(tokens).numpy())
            advance(len(out[-1]))
    return np.concatenate(out).astype(np.float32)[source]
