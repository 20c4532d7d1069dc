"""SentencePiece training: tt's tokenizer model, trained on captions, without TensorFlow.

`train_sentencepiece` needs only the `sentencepiece` package, so the TF-free `tt data
tokenizer` and `tt train` share it; `check_sentencepiece_file` refuses a file that is not
a model before TensorFlow meets it. `text_tokenizer.TextTokenizer` runs the trained
model in TensorFlow.

Ids follow the text tower's convention (`models.tokens`: 0 = padding, 1 = unknown,
2 = end of sequence (EOS); no BOS).

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "tokenizer.model")
>>> train_sentencepiece(["a photo of a cat", "a dog"] * 50, path, 64, on_warning=print)
vocabulary size 64 is too large for 100 captions; capped at 14.
14
"""

import importlib.util
import io
import os
import re
import sys
import warnings

from tt_cli import storage
from tt_cli.errors import InvalidValueError, UnreadableDataError


def _import_keras_free(name):
    """Imports `name` (a dependency-free submodule of `models`) without running
    `models/__init__.py`, which imports Keras to register tt's classes. The module is
    entered in `sys.modules` under its own name, so a later `import models` reuses it."""
    if name in sys.modules:
        return sys.modules[name]
    package, _, module = name.rpartition(".")
    locations = importlib.util.find_spec(package).submodule_search_locations  # finds, does not run
    spec = importlib.util.spec_from_file_location(name, os.path.join(locations[0], module + ".py"))
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


_tokens = _import_keras_free("models.tokens")
PAD_ID, UNK_ID, EOS_ID = _tokens.PAD_ID, _tokens.UNK_ID, _tokens.EOS_ID
# The smallest vocabulary SentencePiece accepts: the three special pieces and one character.
MIN_VOCAB_SIZE = 4

# SentencePiece reads at most this many captions (a seeded random sample beyond
# it): the piece inventory settles long before, and training memory stays bounded.
MAX_TRAINING_SENTENCES = 2_000_000


class VocabSizeCapped(UserWarning):
    """The requested vocabulary was larger than the corpus supports and was reduced."""


def _train_bytes(sentences, vocab_size):
    """Trains a unigram SentencePiece model; returns the serialized model proto."""
    import sentencepiece as spm

    # Fixed seed: the sampling of over-large corpora is the only randomness.
    spm.set_random_generator_seed(0)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        eos_id=EOS_ID,
        bos_id=-1,
        # NFKC plus case folding: captions are matched case-insensitively.
        normalization_rule_name="nmt_nfkc_cf",
        input_sentence_size=MAX_TRAINING_SENTENCES,
        shuffle_input_sentence=True,
        # One thread keeps training bit-for-bit deterministic for a given corpus.
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def train_sentencepiece(texts, out_path, vocab_size, on_warning=None):
    """Trains a SentencePiece model on captions, writes it to `out_path`.

    Args:
      texts: iterable of caption strings (or UTF-8 bytes).
      out_path: where to write the `.model` file.
      vocab_size: requested vocabulary size, special ids included. A small corpus
        cannot support a large vocabulary; the size is then capped at the largest
        the corpus allows and a `VocabSizeCapped` warning is issued (through
        `on_warning(message)` when given, else `warnings.warn`).

    Returns:
      The vocabulary size of the written model.
    """
    sentences = []
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        text = " ".join(text.split())  # one caption per line, whatever its whitespace
        if text:
            sentences.append(text)
    if not sentences:
        raise UnreadableDataError("no captions to train the tokenizer on.")
    try:
        model = _train_bytes(sentences, vocab_size)
        actual = vocab_size
    except RuntimeError as e:
        too_high = re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", str(e))
        too_low = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", str(e))
        if too_high:
            actual = int(too_high.group(1))
            message = f"vocabulary size {vocab_size} is too large for {len(sentences)} captions; capped at {actual}."
            if on_warning is None:
                warnings.warn(message, VocabSizeCapped, stacklevel=2)
            else:
                on_warning(message)
            model = _train_bytes(sentences, actual)
        elif too_low:
            raise InvalidValueError(
                f"vocabulary size {vocab_size} is smaller than the {too_low.group(2)} characters "
                "and special pieces the captions need; give a larger vocabulary size."
            ) from None
        else:
            raise
    storage.makedirs(storage.dirname(out_path))
    with storage.open(out_path + ".tmp", "wb") as f:
        f.write(model)
    storage.replace(out_path + ".tmp", out_path)
    return actual


def check_sentencepiece_file(path):
    """Fails with one clear line unless `path` holds a SentencePiece model, before
    TensorFlow meets the file (where a bad one ends in an internal error)."""
    import sentencepiece as spm

    if not storage.isfile(path):
        raise UnreadableDataError(f"{path}: no such file (a tokenizer model was expected).")
    proto = storage.read_bytes(path)
    try:
        pieces = spm.SentencePieceProcessor(model_proto=proto).vocab_size()
    except RuntimeError:  # not a model proto
        pieces = 0
    if not pieces:
        raise UnreadableDataError(f"{path}: not a SentencePiece model; make one with `tt data tokenizer`.")
