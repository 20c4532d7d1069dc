"""`tt data embed`: the frozen third tower's embeddings, written beside the data.

For each source shard the output folder gets a shard of the same file name holding,
in the same record order, only what is new: one `(key, h_embedding)` record per
source record. Its `dataset.json` names the source dataset (`embeddings_of`), the
tower, a fingerprint of its weights (`lockstep.tower_fingerprint`) and its
preprocessing (`h_embedding`). `tt train --data SHARDS --embeddings OUT` reads the
two in lockstep (`tt_cli.data.lockstep`), so images are never decoded at h's
resolution and never copied. Several folders for one dataset (one per
tower) are normal.

Images are decoded and resized to the tower's input exactly as the training pipeline
does for h online (`pipeline.decode_image`). The tower runs under the run's
distribution strategy (`tt_cli.strategy.make_strategy`): each batch is split over
the local replicas (all GPUs, TPU cores); with `TF_CONFIG` workers, worker i of n
takes the shards j with j % n == i. Each shard is written as `NAME.tmp` and renamed
into place when complete, so a rerun of the same command after an interruption skips
the shards that are finished (in place and listed in tt's manifest) and writes the
same files an uninterrupted run would. `dataset.json` is written last. TensorFlow
side only: never import this module next to the `tfrecord` package.

In use (what `tt data embed shards/ --pretrained imagenet21k --out shards_h/` runs):

```python
embed_shards("shards/", "imagenet21k", "shards_h/", scale="b16")
# {'num_examples': 998, 'dim': 768, 'pretrained': 'vit_base_patch16_224_imagenet21k', ...}
```
"""

import contextlib
import json
import os
import time

from tt_cli import ownership, storage
from tt_cli.data import lockstep, schema
from tt_cli.errors import ConflictError, InvalidValueError, UnreadableDataError
from tt_cli.jsonfile import write_json
from tt_cli.presets import load_pretrained_tower

COMMAND = "tt data embed"
# What is being made (source shards, tower, preprocessing): a rerun with the same plan resumes.
PLAN = ".embed-plan.json"


def image_dataset(path, tower, batch_size, fields=None):
    """(keys, images resized to the tower's size) batches of one shard file (of a TFDS dataset
    with `fields`), in record order."""
    import tensorflow as tf

    from tt_cli.data.pipeline import decode_image
    from tt_cli.data.tf_schema import parse_example

    def decode(serialized):
        features = parse_example(serialized, (schema.IMAGE, schema.KEY), fields=fields)
        # The training pipeline's own decoding, so that a precomputed embedding equals
        # the one h would compute online from the same record.
        return features[schema.KEY], decode_image(features[schema.IMAGE], tower.image_size)

    return (
        tf.data.TFRecordDataset(path)
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(2)
    )


def _check_out_dir(shards, out_dir, names, files):
    """Refuses an `out_dir` that is, lies in or holds the input shards' folder(s), or whose
    names (shards, dataset.json, the plan) hold files tt did not write (before anything is read)."""
    # The folders of the input shards (a single file too: OUT writes its very name; a TFDS split's).
    inputs = [shards] if storage.isdir(shards) else sorted({storage.dirname(f) for f in files})
    ownership.refuse_overlap(out_dir, inputs, "output folder")
    folder = ownership.OutputFolder(out_dir, COMMAND)
    folder.check_free(names + [schema.DATASET_JSON, PLAN], "choose another output folder")
    return folder


def _output_names(files):
    """Each input shard is written under its own file name: two with one name would collide."""
    seen = {}
    for path in files:
        name = os.path.basename(path)
        if name in seen:
            raise InvalidValueError(
                f"{seen[name]} and {path} have the same file name, which would be one file "
                "in the output folder; embed each folder into its own output folder."
            )
        seen[name] = path
    return list(seen)


def _read_plan(out_dir):
    try:
        with storage.open(os.path.join(out_dir, PLAN)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _prepare(folder, plan, names, overwrite):
    """The chief's decision before any shard is written: resume an unfinished (or finished)
    embed of the same plan, start fresh, or refuse another plan's output without `overwrite`."""
    out_dir = folder.path
    owned = folder.owned()
    entries = names + [schema.DATASET_JSON, PLAN]
    if PLAN in owned and _read_plan(out_dir) == plan and not overwrite:
        folder.claim(entries, "choose another output folder")
        return
    if not overwrite and any(storage.lexists(os.path.join(out_dir, n)) for n in owned):
        raise ConflictError(
            f"{out_dir} already holds embeddings of another dataset or tower", ("overwrite", True, "to replace them")
        )
    folder.remove_owned()  # an earlier embed's output (with --overwrite)
    folder.claim(entries, "choose another output folder")
    write_json(os.path.join(out_dir, PLAN), plan)


def _finished(out_dir, names):
    """The shards renamed into place by tt data embed (in place and listed in its manifest)."""
    owned = ownership.OutputFolder(out_dir, COMMAND).owned()
    return {n for n in names if n in owned and storage.exists(os.path.join(out_dir, n))}


def _barrier(strategy, workers):
    """Waits for every worker of a multi-worker cluster (a cross-worker sum); nothing on one machine."""
    if workers > 1:
        import tensorflow as tf

        @tf.function  # collectives run eagerly are slow, and TensorFlow warns about it
        def meet():
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

        meet()


def _local_replicas(strategy):
    try:
        return len(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: one device
        return 1


def make_embedder(strategy, tower):
    """`embed(images) -> embeddings` (float32 [B, dim], in image order) running `tower` on
    every local replica of `strategy`, each on its own contiguous slice of the batch."""
    import tensorflow as tf

    local = _local_replicas(strategy)

    @tf.function(reduce_retracing=True)
    def run(values):
        return strategy.run(lambda images: tower(images, training=False), args=(values,))

    def embed(images):
        def slice_for(context):
            # Global replica ids number each worker's replicas consecutively.
            i, size = context.replica_id_in_sync_group % local, tf.shape(images)[0]
            return images[i * size // local : (i + 1) * size // local]

        out = run(strategy.experimental_distribute_values_from_function(slice_for))
        return tf.concat(strategy.experimental_local_results(out), axis=0)

    return embed


def _embed_file(file, target, tower, embed, batch_size, advance, fields=None):
    """Writes the (key, embedding) records of `file` to `target` (via `target.tmp`); returns their count."""
    import tensorflow as tf

    from tt_cli.data.shard_writer import ShardWriter
    from tt_cli.data.tf_schema import embedding_example_bytes

    try:
        with ShardWriter(target) as writer:  # a failed read leaves no `target.tmp` behind
            for keys, images in image_dataset(file, tower, batch_size, fields):
                embeddings = embed(images).numpy()
                for key, embedding in zip(keys.numpy(), embeddings):
                    writer.write(embedding_example_bytes(key, embedding))
                advance(len(embeddings))
    except tf.errors.OpError as e:
        first = (e.message or str(e)).strip().splitlines()[0]
        raise UnreadableDataError(f"{file}: cannot read or decode ({first[:200]}).") from None
    return writer.count


def _count_records(files):
    import tensorflow as tf

    return int(tf.data.TFRecordDataset(files).reduce(0, lambda n, _: n + 1))


def embed_shards(
    shards,
    pretrained,
    out_dir,
    scale="b16",
    batch_size=64,
    overwrite=False,
    strategy="auto",
    progress=None,
    on_note=None,
    tfds=None,
):
    """Writes the embedding folder `out_dir` for the dataset `shards` (or the TFDS split
    `shards`, tfds:NAME:SPLIT, under the options `tfds`: one embedding shard per TFDS file);
    returns a summary dict.

    `strategy`: a name for `tt_cli.strategy.make_strategy` (made before any other
    TensorFlow op) or a `tf.distribute.Strategy`. `progress(total)` is a context manager
    yielding `advance(n)` (e.g. `progress.progress_bar`).
    """
    from tt_cli.strategy import make_strategy, worker_position

    start = time.time()
    made = make_strategy(strategy) if isinstance(strategy, str) else strategy  # before any other TF op
    files, info = schema.resolve_shards(shards, tfds)
    names = _output_names(files)
    folder = _check_out_dir(shards, out_dir, names, files)
    worker, workers = worker_position(made)
    with made.scope():
        tower = load_pretrained_tower(pretrained, scale, on_note)
    h_info = {
        "pretrained": tower.preset,
        "preprocessing": tower.preprocessing,
        "dim": tower.output_dim,
        lockstep.WEIGHTS: lockstep.tower_fingerprint(tower),  # what `tt train --embeddings` matches
    }
    source = storage.abspath(shards) if storage.exists(shards) else shards
    plan = {"source": source, "shards": names, **h_info}
    if worker == 0:
        _prepare(folder, plan, names, overwrite)
    _barrier(made, workers)  # the others start once the chief has claimed the folder

    finished = _finished(out_dir, names)
    mine = [(f, n) for i, (f, n) in enumerate(zip(files, names)) if i % workers == worker and n not in finished]
    per_shard = info.num_examples / len(files) if info else None
    total = round(per_shard * len(mine)) if per_shard is not None else None
    bar = progress(total) if progress and mine else contextlib.nullcontext(lambda n: None)
    embed = make_embedder(made, tower)
    count, embed_start = 0, time.time()
    with bar as advance:
        for file, name in mine:
            count += _embed_file(
                file, os.path.join(out_dir, name), tower, embed, batch_size, advance, schema.record_fields(info)
            )
    seconds = time.time() - embed_start
    _barrier(made, workers)  # every shard is in place

    if worker == 0:
        num_examples = info.num_examples if info else _count_records([os.path.join(out_dir, n) for n in names])
        schema.write_info(
            out_dir,
            schema.DatasetInfo(
                num_examples=num_examples,
                num_shards=len(names),
                source=source,
                shards=names,
                shard_examples=info.shard_examples if info else None,  # as many records as the data's
                shard_bytes=[storage.getsize(os.path.join(out_dir, n)) for n in names],
                h_embedding=h_info,
                embeddings_of={"dataset": source, "num_examples": num_examples, "num_shards": len(names)},
            ),
        )
        folder.record(names + [schema.DATASET_JSON, PLAN])  # hashed: what a later overwrite may prove and remove
    return {
        "embedded_now": count,
        "num_shards": len(names),
        "shards_embedded_now": len(mine),
        "shards_already_finished": len(finished),
        "worker": worker,
        "workers": workers,
        "replicas": made.num_replicas_in_sync,
        "pretrained": tower.preset,
        "dim": tower.output_dim,
        "out": storage.abspath(out_dir),
        "images_per_second": round(count / seconds, 1) if count and seconds > 0 else None,
        "seconds": round(time.time() - start, 2),
    }
