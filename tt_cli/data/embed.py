"""`tt data embed`: precompute the frozen third tower's embeddings into the shards.

Reads each shard with `tf.data`, decodes and resizes every image to the tower's
input size exactly as the training pipeline does for h online
(`pipeline.decode_image`), runs `PretrainedTower` in batches and
writes a copy of the shard whose examples also carry `h_embedding`.
`dataset.json` records which preset and preprocessing produced them, so
training on these shards can skip h's forward pass. TensorFlow side only:
never import this module next to the `tfrecord` package.

Example:
>>> embed_shards("shards/", "imagenet21k", "shards_h/", scale="b16")   # doctest: +SKIP
{'num_examples': 998, 'dim': 768, 'pretrained': 'vit_base_patch16_224_imagenet21k', ...}
"""

import contextlib
import dataclasses
import os
import time

from tt_cli.data import schema
from tt_cli.errors import UserError


def _resolve_preset(name, scale, on_note):
    try:
        from models.pretrained_presets import resolve_pretrained
    except ImportError:  # an older models/ without aliases: names pass straight through
        return name
    preset, note = resolve_pretrained(name, scale)
    if note and on_note:
        on_note(note)
    return preset


def load_tower(pretrained, scale="b16", on_note=None):
    """The frozen tower for an alias, preset name or directory; UserError if unavailable."""
    from models.pretrained_presets import PresetUnavailableError
    from models.pretrained_tower import PretrainedTower

    preset = _resolve_preset(pretrained, scale, on_note)
    try:
        return PretrainedTower.from_preset(preset)
    except PresetUnavailableError as e:
        raise UserError(str(e)) from None


def image_dataset(path, tower, batch_size):
    """(serialized example, image resized to the tower's size) batches of one shard file."""
    import tensorflow as tf

    from tt_cli.data.pipeline import decode_image

    def decode(serialized):
        features = tf.io.parse_single_example(serialized, {schema.IMAGE: tf.io.FixedLenFeature([], tf.string)})
        # The training pipeline's own decoding, so that a precomputed embedding equals
        # the one h would compute online from the same record.
        return serialized, decode_image(features[schema.IMAGE], tower.image_size)

    return (
        tf.data.TFRecordDataset(path)
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(2)
    )


def _with_embedding(serialized, embedding):
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    feature = example.features.feature[schema.H_EMBEDDING]
    feature.float_list.value[:] = embedding.tolist()
    return example.SerializeToString()


def embed_shards(shards, pretrained, out_dir, scale="b16", batch_size=64, overwrite=False,
                 progress=None, on_note=None):
    """Writes `out_dir` = the shards of `shards` plus `h_embedding`; returns a summary dict."""
    import tensorflow as tf

    start = time.time()
    files, info = schema.resolve_shards(shards)
    if os.path.isdir(shards) and os.path.abspath(shards) == os.path.abspath(out_dir):
        raise UserError("--out must differ from the input shards' folder.")
    if os.path.isfile(os.path.join(out_dir, schema.DATASET_JSON)) and not overwrite:
        raise UserError(f"{out_dir} already holds a dataset; pass --overwrite to replace it.")
    tower = load_tower(pretrained, scale, on_note)
    run_tower = tf.function(lambda images: tower(images, training=False))
    os.makedirs(out_dir, exist_ok=True)

    total = info.num_examples if info else None
    bar = progress(total) if progress else contextlib.nullcontext(lambda n: None)
    names, count = [], 0
    with bar as advance:
        for file in files:
            name = os.path.basename(file)
            target = os.path.join(out_dir, name)
            try:
                with tf.io.TFRecordWriter(target + ".tmp") as writer:
                    for serialized, images in image_dataset(file, tower, batch_size):
                        embeddings = run_tower(images).numpy()
                        for raw, embedding in zip(serialized.numpy(), embeddings):
                            writer.write(_with_embedding(raw, embedding))
                        count += len(embeddings)
                        advance(len(embeddings))
            except tf.errors.OpError as e:
                if os.path.exists(target + ".tmp"):
                    os.remove(target + ".tmp")
                first = (e.message or str(e)).strip().splitlines()[0]
                raise UserError(f"{file}: cannot read or decode ({first[:200]}).") from None
            os.replace(target + ".tmp", target)
            names.append(name)

    h_info = {"pretrained": tower.preset, "preprocessing": tower.preprocessing, "dim": tower.output_dim}
    base = info if info else schema.DatasetInfo(num_examples=count, num_shards=len(names), source=shards)
    new_info = dataclasses.replace(
        base, num_examples=count, num_shards=len(names), shards=names, h_embedding=h_info,
    )
    schema.write_info(out_dir, new_info)
    return {
        "num_examples": count,
        "num_shards": len(names),
        "pretrained": tower.preset,
        "dim": tower.output_dim,
        "out": os.path.abspath(out_dir),
        "seconds": round(time.time() - start, 2),
    }
