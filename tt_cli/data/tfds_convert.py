"""`tt data convert tfds:NAME[/CONFIG]:SPLIT OUT`: a TFDS split copied into tt's shards.

The one conversion that needs TensorFlow: TFDS datasets are read through it (`tfds_source`,
`tf_schema.parse_example` with the dataset's feature map). So this process never imports the
`tfrecord` package (the two cannot share a process): records are built by
`tf_schema.example_bytes` and written by tt's one `ShardWriter` (framed by `records.frame`), each
shard under `NAME.tmp` and renamed when complete. Everything else is `tt data convert`'s: the plan in
`OUT/.convert/` (a rerun converts only the missing shards), what OUT may hold
(`convert.prepare_out_dir`), every image decoded and checked once (`validate`), rejections in
`rejected.jsonl`, `dataset.json` with the class names, `report.json`. Row i goes to shard
i mod N in TFDS's record order, so one shard keeps that order exactly.

In use (what `tt data convert tfds:cifar10:test shards/cifar10_test` runs; it needs the prepared TFDS dataset):

```python
report = convert_tfds("tfds:cifar10:test", "shards/cifar10_test", TfdsOptions("/data/tfds"))
report["written"], report["num_classes"]  # (10000, 10)
```
"""

import collections
import contextlib
import hashlib
import json
import math
import os
import time

from tt_cli import ownership, storage
from tt_cli.data import convert, schema, sources, validate
from tt_cli.data.shard_writer import ShardWriter
from tt_cli.errors import InvalidValueError
from tt_cli.jsonfile import write_json, write_json_lines


def _fingerprint(info, num_shards, max_size):
    """The plan: the same TFDS split (name, config, split, version) and settings -> the same shards."""
    source = {k: info.tfds[k] for k in ("name", "config", "split", "version")}
    head = [schema.SCHEMA_VERSION, "tfds", source, num_shards, max_size, info.class_names]
    return hashlib.sha256(json.dumps(head).encode()).hexdigest()


def _files_fingerprint(files):
    """The split's files as they are now (names and sizes): a rebuilt split converts again."""
    stats = [[os.path.basename(f), storage.getsize(f)] for f in files]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()


def _records(files, fields):
    """(image bytes, captions, key, label or None) of every record, in TFDS's order."""
    import tensorflow as tf

    from tt_cli.data.tf_schema import parse_example

    keys = (schema.IMAGE, schema.TEXTS, schema.KEY, schema.LABEL)
    dataset = tf.data.TFRecordDataset(files).map(
        lambda record: parse_example(record, keys, fields=fields), num_parallel_calls=tf.data.AUTOTUNE
    )
    for example in dataset.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        label = int(example[schema.LABEL])
        yield (
            example[schema.IMAGE],
            [t.decode("utf-8", "surrogateescape") for t in example[schema.TEXTS]],
            example[schema.KEY].decode("utf-8", "surrogateescape"),
            None if label == schema.NO_LABEL else label,
        )


class _Shard:
    """One shard being written: its records (tt's one `ShardWriter`), rejections and conversions."""

    def __init__(self, out_dir, name):
        self.path, self.name = os.path.join(out_dir, name), name
        self.writer = ShardWriter(self.path)
        self.rejects, self.conversions, self.written = [], collections.Counter(), 0

    def finish(self, work):
        """Stats and rejections first, then the shard renamed into place (as `convert_shard`)."""
        write_json_lines(os.path.join(work, f"{self.name}.rejected.jsonl"), self.rejects)
        stats = {"shard": self.name, "written": self.written, "conversions": dict(self.conversions)}
        write_json(os.path.join(work, f"{self.name}.json"), stats)
        self.writer.close()  # renames the shard into place

    def abort(self):
        self.writer.abort()


def convert_tfds(source, out_dir, tfds=None, num_shards=None, max_size=None, overwrite=False, progress=None):
    """Converts the TFDS split `source` into shards in `out_dir`; returns the report dict
    (the keys of `convert.convert`'s). `tfds`: its `tfds_catalog.TfdsOptions`."""
    from tt_cli.data.tf_schema import example_bytes

    start = time.time()
    files, info = schema.resolve_shards(source, tfds)
    ownership.refuse_overlap(out_dir, sorted({storage.dirname(f) for f in files}))
    total = info.num_examples
    num_shards = max(1, min(num_shards or math.ceil(total / convert.ROWS_PER_SHARD), total))
    fingerprint = _fingerprint(info, num_shards, max_size)
    # Every output shard draws on every file of the split: one fingerprint of them all, per shard.
    sources_now = [_files_fingerprint(files)] * num_shards
    folder = ownership.OutputFolder(out_dir, convert.COMMAND, files)  # the split's files are inputs
    state, _ = convert.prepare_out_dir(folder, fingerprint, overwrite, num_shards, sources_now)
    if state == "complete":
        with storage.open(os.path.join(out_dir, convert.REPORT)) as f:
            return dict(json.load(f), already_complete=True)
    work = os.path.join(out_dir, convert.WORK_DIR)
    names = [schema.shard_name(i, num_shards) for i in range(num_shards)]
    done = [storage.isfile(os.path.join(out_dir, n)) and storage.isfile(os.path.join(work, f"{n}.json")) for n in names]
    shards = {i: _Shard(out_dir, n) for i, n in enumerate(names) if not done[i]}
    bar = progress(total) if progress and shards else contextlib.nullcontext(lambda n: None)
    try:
        with bar as advance:
            for position, (image, texts, key, label) in enumerate(_records(files, info.fields) if shards else ()):
                advance(1)
                shard = shards.get(position % num_shards)
                if shard is None:  # finished by an earlier run
                    continue
                checked = validate.check_image_bytes(image, max_size)
                if isinstance(checked, validate.Rejection):
                    shard.rejects.append(sources.reject_record(position, key, source, checked))
                    continue
                shard.writer.write(example_bytes(checked.data, texts, key, label))
                shard.conversions.update(checked.conversions)
                shard.written += 1
            for shard in shards.values():
                shard.finish(work)
    except KeyboardInterrupt:
        for shard in shards.values():
            shard.abort()
        raise InvalidValueError("interrupted; run the same command again to resume.") from None

    written, conversions, rejects, per_shard = convert.merge_shards(out_dir, names)
    labelled = info.fields.has(schema.LABEL)
    schema.write_info(
        out_dir,
        schema.DatasetInfo(
            num_examples=written,
            num_shards=num_shards,
            source=source,
            class_names=info.class_names if labelled else None,
            shards=names,
            shard_examples=per_shard,
            shard_bytes=[storage.getsize(os.path.join(out_dir, n)) for n in names],
        ),
    )
    report = {
        "source": source,
        "format": "tfds",
        "read": written + len(rejects),
        "written": written,
        "rejected": dict(sorted(collections.Counter(r["reason"] for r in rejects).items())),
        "converted": dict(sorted(conversions.items())),
        "ignored_files": 0,
        "num_shards": num_shards,
        "shards_converted_now": len(shards),
        "shards_resumed": num_shards - len(shards),
        "labelled": labelled,
        "num_classes": len(info.class_names) if labelled and info.class_names else None,
        "seconds": round(time.time() - start, 2),
        "out": storage.abspath(out_dir),
        "fingerprint": fingerprint,
        "source_fingerprints": sources_now,
        "tfds": info.tfds,
    }
    write_json(os.path.join(out_dir, convert.REPORT), report)
    convert.finish_out_dir(folder, names)
    if written == 0:
        raise convert.nothing_converted(out_dir)
    return report
