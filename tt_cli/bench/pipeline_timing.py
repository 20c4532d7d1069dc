"""Times the training input pipeline alone: read, parse, decode, resize, tokenize, batch.

It runs `tt_cli.data.pipeline.train_dataset`, the very pipeline `tt train` feeds from,
over the given shards (repeated endlessly), with no model consuming it, and reports
pairs per second as wall-clock throughput over `batches` consecutive batches after
`warmup` batches (the first ones also fill the shuffle buffer). The tokenizer is the
one given, or a SentencePiece model trained on the shards' captions into a
temporary file, as `tt train` does when it has none.

In use (inside `tt bench --data shards/`; its numbers are this machine's):

```python
time_pipeline("shards/", batch_size=64, image_size=(32, 32), max_text_len=32, vocab_size=1000, batches=20)
# {'available': True, 'pairs_per_second': 2150.3, ...}
```
"""

import os
import tempfile
import time

from tt_cli import storage
from tt_cli.errors import UnreadableDataError


def _time_batches(iterator, warmup, batches):
    """(seconds for the `warmup` first batches, seconds for the `batches` after them)."""
    start = time.perf_counter()
    for _ in range(warmup):
        next(iterator)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
    # Batches arrive fully materialised from tf.data; touching one is enough.
    int(batch["tokens"].shape[0])
    return warmup_seconds, time.perf_counter() - start


def time_pipeline(
    data,
    batch_size,
    image_size,
    max_text_len,
    vocab_size,
    tokenizer_path=None,
    batches=30,
    warmup=3,
    log=lambda message: None,
    embeddings=(),
    tfds=None,
):
    """Returns {"available", "pairs_per_second", "batches", ...} for shards at `data` (or the
    TFDS dataset `data` under the options `tfds`); `embeddings`: embedding folders of
    `tt data embed` read beside them, as `tt train` reads them."""
    import tensorflow as tf

    from tt_cli.data import pipeline, schema, tfds_catalog
    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.data.third_towers import folder_tower
    from tt_cli.data.tokenizer import train_sentencepiece

    if not tfds_catalog.is_tfds(data) and not storage.exists(data) and not any(c in data for c in "*?["):
        raise UnreadableDataError(f"{data}: no such file or directory.")
    files, info = schema.resolve_shards(data, tfds)
    fields = schema.record_fields(info)
    pipeline.check_features(files, fields=fields)
    towers = tuple(folder_tower(index, folder, files, info) for index, folder in enumerate(embeddings))
    with tempfile.TemporaryDirectory() as tmp:
        if tokenizer_path is None:
            tokenizer_path = os.path.join(tmp, "tokenizer.model")
            log(f"training a SentencePiece tokenizer (vocab {vocab_size}) on the shards' captions")
            vocab_size = train_sentencepiece(
                pipeline.read_captions(files, limit=200_000, data=data, fields=fields),
                tokenizer_path,
                vocab_size,
                on_warning=log,
            )
        tokenizer = TextTokenizer(tokenizer_path, max_text_len)
        dataset = pipeline.train_dataset(
            files, batch_size, tuple(image_size), tokenizer, third_towers=towers, fields=fields
        )
        try:
            warmup_seconds, seconds = _time_batches(iter(dataset), warmup, batches)
        except tf.errors.OpError as e:
            if not pipeline.is_read_error(e):
                raise
            raise pipeline.shard_read_error(e, files, data) from None
    return {
        "available": True,
        "pairs_per_second": batches * batch_size / seconds,
        "batches": batches,
        "batch_size": batch_size,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "files": len(files),
        "examples": info.num_examples if info else None,
        "image_size": list(image_size),
        "embeddings": list(embeddings),
        "note": "decode + resize + caption sampling + SentencePiece tokenization + batching; "
        "no model consuming it, measured after the training steps",
    }
