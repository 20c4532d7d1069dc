"""`tt data tokenizer`: tt's SentencePiece model, trained on the captions of shards, without TensorFlow.

The output file may replace only a tokenizer this command wrote there before, never one
of its inputs (`tt_cli.ownership`); the captions are read by the TF-free `shard_reader`
(this module must never be imported next to TensorFlow) and the model is trained by
`tokenizer.train_sentencepiece`. `make_tokenizer("shards/", "tokenizer.model", 32000)`
returns what it made: `{"path": "tokenizer.model", "pieces": 32000, "captions": 120000}`.
"""

import os

from tt_cli import ownership
from tt_cli.data.schema import DATASET_JSON, resolve_shards
from tt_cli.data.shard_reader import read_captions
from tt_cli.data.tokenizer import train_sentencepiece

COMMAND = "tt data tokenizer"


def make_tokenizer(shards, out, vocab_size, on_warning=None):
    """Trains a tokenizer of (at most) `vocab_size` pieces on every caption of `shards` (a
    dataset folder or a glob) and writes it to `out`; returns {"path", "pieces", "captions"}.
    `on_warning(message)` hears when the captions cannot fill the vocabulary."""
    files, _ = resolve_shards(shards)
    ownership.refuse_overlap(out, files + [os.path.join(shards, DATASET_JSON)])
    folder = ownership.prepare_file(out, COMMAND, overwrite=None)
    captions = list(read_captions(files, limit=None, data=shards))
    pieces = train_sentencepiece(captions, out, vocab_size, on_warning=on_warning)
    folder.record([os.path.basename(out)])
    return {"path": out, "pieces": pieces, "captions": len(captions)}
