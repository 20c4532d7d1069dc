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

from tt_cli import ownership
from tt_cli.data import schema
from tt_cli.errors import ConflictError, InvalidValueError, UnreadableDataError
from tt_cli.presets import load_pretrained_tower


def image_dataset(path, tower, batch_size):
    """(serialized example, image resized to the tower's size) batches of one shard file."""
    import tensorflow as tf

    from tt_cli.data.pipeline import decode_image
    from tt_cli.data.tf_schema import parse_example

    def decode(serialized):
        features = parse_example(serialized, (schema.IMAGE,))
        # The training pipeline's own decoding, so that a precomputed embedding equals
        # the one h would compute online from the same record.
        return serialized, decode_image(features[schema.IMAGE], tower.image_size)

    return (
        tf.data.TFRecordDataset(path)
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(2)
    )


COMMAND = "tt data embed"


def _prepare_out_dir(shards, out_dir, overwrite):
    """Refuses an `out_dir` that is, lies in or holds the input shards' folder(s), or that
    holds an earlier embed unless `overwrite` (before anything is read)."""
    # The folders of the input shards (a single file too: OUT writes its very name).
    inputs = [shards] if os.path.isdir(shards) else ownership.glob_folders(shards)
    ownership.refuse_overlap(out_dir, inputs, "output folder")
    folder = ownership.OutputFolder(out_dir, COMMAND)
    if not overwrite and any(os.path.lexists(os.path.join(out_dir, n)) for n in folder.owned()):
        raise ConflictError(f"{out_dir} already holds a dataset", ("overwrite", True, "to replace it"))
    return folder


def _output_names(files):
    """Each input shard is written under its own file name: two with one name would collide."""
    seen = {}
    for path in files:
        name = os.path.basename(path)
        if name in seen:
            raise InvalidValueError(f"{seen[name]} and {path} have the same file name, which would be one file "
                                    "in the output folder; embed each folder into its own output folder.")
        seen[name] = path
    return list(seen)


def embed_shards(shards, pretrained, out_dir, scale="b16", batch_size=64, overwrite=False,
                 progress=None, on_note=None):
    """Writes `out_dir` = the shards of `shards` plus `h_embedding`; returns a summary dict."""
    import tensorflow as tf

    from tt_cli.data.tf_schema import with_h_embedding

    start = time.time()
    folder = _prepare_out_dir(shards, out_dir, overwrite)
    files, info = schema.resolve_shards(shards)
    out_names = _output_names(files) + [schema.DATASET_JSON]
    folder.check_free(out_names, "choose another output folder")
    tower = load_pretrained_tower(pretrained, scale, on_note)
    run_tower = tf.function(lambda images: tower(images, training=False))
    folder.remove_owned()  # an earlier embed's shards (with --overwrite)
    folder.claim(out_names)

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
                            writer.write(with_h_embedding(raw, embedding))
                        count += len(embeddings)
                        advance(len(embeddings))
            except tf.errors.OpError as e:
                if os.path.exists(target + ".tmp"):
                    os.remove(target + ".tmp")
                first = (e.message or str(e)).strip().splitlines()[0]
                raise UnreadableDataError(f"{file}: cannot read or decode ({first[:200]}).") from None
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
