"""The shard files of a dataset, checked before anything reads them.

Every reader of shards (training, evaluation, `tt pretrain`, `tt bench`, `tt data
inspect/tokenizer/embed`) takes its files from `schema.resolve_shards`, which calls
`check_shard_files`, and embedding folders are checked the same way
(`lockstep.embedding_files`):

- Each file must be a regular file, looked at without opening it: a FIFO named like a
  shard would block its reader forever, a device would never end.
- `dataset.json` records, per shard, the examples and bytes it was written with
  (`shard_examples`, `shard_bytes`). A shard whose size differs (truncated, emptied or
  replaced since) and a `num_examples` that is not the sum of the shards' examples (an
  edited `dataset.json`, which would drive `--epochs`) are refused, never read as a
  smaller or larger dataset. A `dataset.json` without those records (older tt, other
  writers) can only be checked for empty shards: a 0-byte shard holds no records, so its
  share of `num_examples` would be missing without a word.

Checking costs one stat per shard; reading the shards is what training does anyway.

Example:
>>> from tt_cli.data.schema import DatasetInfo
>>> info = DatasetInfo(num_examples=5, num_shards=1, shard_examples=[4], shard_bytes=[0])
>>> shard_problems([], info)
['dataset.json says num_examples 5, but its shards record 4 examples (edited, or damaged)']
"""

import os

from tt_cli import storage
from tt_cli.errors import UnreadableDataError


def shard_problems(files, info):
    """What is wrong with the shard `files` of a dataset (`info`: its `DatasetInfo`, or None
    for a glob), as sentences; [] when nothing is. Missing files raise `FileNotFoundError`."""
    problems = []
    recorded = info.shard_bytes if info and info.shard_bytes and len(info.shard_bytes) == len(files) else None
    for i, path in enumerate(files):
        try:
            storage.check_regular(path)
        except storage.NotARegularFile as e:
            problems.append(f"{os.path.basename(path)} is {e.kind}, not a shard file")
            continue
        if info is None:
            continue
        size = storage.getsize(path)
        if recorded is not None and size != recorded[i]:
            problems.append(
                f"{os.path.basename(path)} has {size:,} bytes, but was written with {recorded[i]:,} "
                "(truncated, emptied or replaced since)"
            )
        elif recorded is None and size == 0 and info.num_examples:
            problems.append(f"{os.path.basename(path)} is empty (0 bytes): it holds none of the dataset's examples")
    if info is not None and info.shard_examples is not None and sum(info.shard_examples) != info.num_examples:
        problems.append(
            f"dataset.json says num_examples {info.num_examples}, but its shards record "
            f"{sum(info.shard_examples)} examples (edited, or damaged)"
        )
    return problems


def check_shard_files(files, info, data, remedy="make the shards again with `tt data convert`"):
    """Raises `UnreadableDataError` (one line naming `data`, the first problem and `remedy`)
    unless the shard `files` of `data` are intact (`shard_problems`)."""
    problems = shard_problems(files, info)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise UnreadableDataError(f"{data}: {problems[0]}{more}; {remedy}.")
