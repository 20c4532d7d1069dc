"""Training shards read in lockstep with embedding folders of `tt data embed`.

An embedding folder holds, for each shard of a dataset, a shard of the same file name
with one `(key, h_embedding)` record per record of the data shard, in the same order.
`embedding_files` pairs a folder with the training shards (by file name, after
checking its `dataset.json` against the data and, with `check_tower`, against the run's
pretrained tower, matched by a fingerprint of its weights); `read_aligned` reads one
data shard and its embedding shards record by record, checking every key, so the
training pipeline shuffles whole pairs and a resumed run skips exactly what an
uninterrupted one consumed. A key that differs, or a
shard that ends before its partner, stops the read with one line naming the shard and
the record (`mismatch_message` finds it in TensorFlow's error).

In use (inside the training input, for an embeddings folder `shards_h/` beside the data):

```python
files_0, dim = embedding_files("shards_h/", files, info)
check_tower("shards_h/", tower)
records = read_aligned(tf.constant([files[0], files_0[0]]), 1)
```
"""

import hashlib
import os
import re
import weakref

from tt_cli import storage
from tt_cli.data import schema
from tt_cli.data.shard_files import check_shard_files
from tt_cli.errors import ConflictError, InvalidValueError, UnreadableDataError

WEIGHTS = "weights_sha256"  # the `h_embedding` entry of an embedding folder's dataset.json: `tower_fingerprint`
_MISMATCH = "tt: embeddings out of step: "
_ADVICE = "the embeddings were made for other or reordered data: embed these shards with `tt data embed`"
# TensorFlow prints the message inside its own error text: from the marker to the advice.
_MISMATCH_LINE = re.compile(re.escape(_MISMATCH) + "(.*?" + re.escape(_ADVICE) + ")", re.DOTALL)


def read_folder_info(folder):
    """The `dataset.json` of an embedding folder, or one line saying why `folder` is not one."""
    if not storage.exists(os.path.join(folder, schema.DATASET_JSON)):
        what = "no such folder" if not storage.exists(folder) else f"no {schema.DATASET_JSON} there"
        raise UnreadableDataError(f"{folder}: not an embedding folder ({what}); make one with `tt data embed`.")
    info = schema.read_info(folder)
    if not info.embeddings_of or not info.h_embedding:
        why = (
            "it holds whole shards with embeddings inside (an earlier `tt data embed`): train on them as the data"
            if info.h_embedding
            else "its dataset.json names no source dataset"
        )
        raise InvalidValueError(f"{folder}: not an embedding folder of `tt data embed`; {why}.")
    return info


def embedding_files(folder, files, info):
    """(the embedding shard of each of `files`, in order; the embedding width) of `folder`,
    after checking that it was made for these shards: the same shard names and, when the
    data has a dataset.json (`info`), the same number of examples."""

    made = read_folder_info(folder)
    names = [os.path.basename(f) for f in files]
    theirs = list(made.shards or [])
    if sorted(names) != sorted(theirs):
        other = next((n for n in names if n not in theirs), None) or next(n for n in theirs if n not in names)
        raise ConflictError(
            f"{folder} holds embeddings of other shards ({len(theirs)} shard(s), of "
            f"{made.embeddings_of.get('dataset')}) than the {len(names)} training shard(s): "
            f"{other} is not in both; embed these shards with `tt data embed`."
        )
    if info is not None and info.num_examples != made.embeddings_of.get("num_examples"):
        raise ConflictError(
            f"{folder} holds embeddings of {made.embeddings_of.get('num_examples')} examples, "
            f"but the training shards hold {info.num_examples}; embed these shards with "
            "`tt data embed`."
        )
    paths = [os.path.join(folder, n) for n in names]
    missing = next((p for p in paths if not storage.lexists(p)), None)
    if missing:
        raise UnreadableDataError(f"{folder}: shard {missing} listed in {schema.DATASET_JSON} is missing.")
    check_shard_files(paths, made, folder, remedy="embed the data again with `tt data embed`")
    return paths, int(made.h_embedding["dim"])


_fingerprints = weakref.WeakKeyDictionary()  # tower -> its fingerprint: each tower is hashed once


def tower_fingerprint(tower):
    """A SHA-256 (32 hex digits) of a frozen tower's weights: their shapes, dtypes and values,
    in the backbone's order. `tt data embed` records it with the embeddings, and
    `check_tower` matches by it, so a tower retrained in place (same path, new weights) is
    told from the one that made them. Computed once per tower (it is frozen): one pass
    over its weights, about a third of a second for a ViT-B/16's 86M parameters."""
    if tower not in _fingerprints:
        import numpy as np
        from keras import ops

        digest = hashlib.sha256()
        for variable in tower.backbone.weights:
            value = np.ascontiguousarray(ops.convert_to_numpy(variable))
            digest.update(f"{value.dtype.str}{value.shape};".encode())
            digest.update(value.data)
        _fingerprints[tower] = digest.hexdigest()[:32]
    return _fingerprints[tower]


def check_tower(folder, tower):
    """Refuses embeddings that another tower (other weights: `tower_fingerprint`), or other
    preprocessing, made. A folder whose `dataset.json` records no fingerprint (made before
    tt recorded one) is refused too: it cannot be told from embeddings of a tower retrained
    since, and training on those would be silently wrong for the whole run; embedding
    again costs one pass of the frozen tower."""
    made = read_folder_info(folder).h_embedding
    if not made.get(WEIGHTS):
        raise ConflictError(
            f"{folder} records no fingerprint of the weights of the tower that made it (an older tt "
            f"made it), so it cannot be matched to {tower.preset}; embed the data again with `tt data embed`."
        )
    if made[WEIGHTS] != tower_fingerprint(tower):
        raise ConflictError(
            f"{folder} holds embeddings of other weights than this run's pretrained tower {tower.preset} "
            f"has (made with {made.get('pretrained')}, weights {made[WEIGHTS]}, not {tower_fingerprint(tower)}: "
            "another tower, or this one retrained since); embed with this tower again, or train with the other."
        )
    if made.get("preprocessing") != tower.preprocessing:
        raise ConflictError(
            f"{folder} holds embeddings of {tower.preset} made with other preprocessing "
            f"({made.get('preprocessing')}); embed again with this version of the tower."
        )


def read_aligned(paths, count, fields=None):
    """The records of the data shard `paths[0]` (of a TFDS dataset with `fields`) with those
    of its `count` embedding shards `paths[1:]`, as (data record, (embedding record, ...)), in
    record order.

    Every key is compared: a different key, or one shard ending before the others (a
    sentinel is appended to each stream to see it), fails the read with a message that
    `mismatch_message` turns into one line.
    """
    import tensorflow as tf

    from tt_cli.data.tf_schema import parse_example

    def with_end(path):
        records = tf.data.TFRecordDataset(path, buffer_size=8 << 20).map(lambda r: (r, False))
        return records.concatenate(tf.data.Dataset.from_tensors((tf.constant(b""), True)))

    streams = tf.data.Dataset.zip(tuple(with_end(paths[i]) for i in range(count + 1))).enumerate()

    def check(position, pairs):
        records, ends = [p[0] for p in pairs], [p[1] for p in pairs]
        keys = [
            parse_example(r, (schema.KEY,), fields=fields if i == 0 else None)[schema.KEY]
            for i, r in enumerate(records)
        ]
        for i in range(1, count + 1):
            same = tf.logical_and(tf.equal(ends[0], ends[i]), tf.equal(keys[0], keys[i]))
            said = lambda end, key: tf.where(
                end, tf.constant("no record (the shard ends)"), tf.strings.join(["the key ", key])
            )
            message = tf.strings.join(
                [
                    _MISMATCH,
                    paths[0],
                    " record ",
                    tf.strings.as_string(position),
                    " has ",
                    said(ends[0], keys[0]),
                    ", but ",
                    paths[i],
                    " has ",
                    said(ends[i], keys[i]),
                    "; ",
                    _ADVICE,
                ]
            )
            with tf.control_dependencies([tf.debugging.Assert(same, [message])]):
                ends[0] = tf.identity(ends[0])
        return records[0], tuple(records[1:]), ends[0]

    return (
        streams.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .filter(lambda data, embeddings, end: tf.logical_not(end))
        .map(lambda data, embeddings, end: (data, embeddings))
    )


def mismatch_message(error):
    """The one line of a lockstep mismatch in a TensorFlow error's message, or None."""
    match = _MISMATCH_LINE.search(getattr(error, "message", "") or str(error))
    return match.group(1).strip() if match else None
