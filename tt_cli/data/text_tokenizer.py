"""`TextTokenizer`: tt's SentencePiece model run in TensorFlow, a `Tokenizer`.

It wraps the model (`tokenizer.train_sentencepiece` trains it) in
`tensorflow_text.SentencepieceTokenizer`: it runs inside `tf.data` `.map`, and an exported
SavedModel that tracks it carries the model bytes with it (its loader must
`import tensorflow_text`).

Ids follow the text tower's convention (`models.tokens`: 0 = padding, 1 = unknown,
2 = end of sequence (EOS); no BOS). Every tokenized caption ends with EOS (the text
tower pools there), truncated to `max_len - 1` pieces first so that the EOS always fits.

Example:
>>> import os, tempfile
>>> from tt_cli.data.tokenizer import train_sentencepiece
>>> path = os.path.join(tempfile.mkdtemp(), "tokenizer.model")
>>> train_sentencepiece(["a photo of a cat", "a dog"] * 50, path, 14)
14
>>> tokenizer = TextTokenizer(path, max_len=8)
>>> tokenizer.tokenize(tf.constant(["a cat", "a photo of a dog"])).shape
TensorShape([2, 8])
"""

import os

import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text

from tt_cli import storage
from tt_cli.data.tokenizer import EOS_ID, PAD_ID
from tt_cli.data.tokenizer_interface import Tokenizer, string_batch
from tt_cli.errors import InvalidValueError


class TextTokenizer(Tokenizer):
    """Caption strings -> fixed-length token ids of tt's SentencePiece model.

    Args:
      model_path_or_bytes: a `.model` file path or the serialized model bytes.
      max_len: output length L: at most L-1 pieces, then EOS (2), then padding (0).
    """

    def __init__(self, model_path_or_bytes, max_len, name="text_tokenizer"):
        super().__init__(name=name)
        if isinstance(model_path_or_bytes, (bytes, bytearray)):
            model = bytes(model_path_or_bytes)
        else:
            path = os.fspath(model_path_or_bytes)
            if not storage.isfile(path):
                raise InvalidValueError(f"{path}: no tokenizer model here.")
            model = storage.read_bytes(path)
        if max_len < 2:
            raise InvalidValueError(f"max_len must be at least 2 (one piece and EOS), got {max_len}.")
        self._model_bytes = model
        self._max_len = int(max_len)
        self.sentencepiece = tf_text.SentencepieceTokenizer(model=model, out_type=tf.int32)
        # Read in Python, so construction works in graph mode too.
        self._vocab_size = spm.SentencePieceProcessor(model_proto=model).vocab_size()

    @property
    def vocab_size(self):
        return self._vocab_size

    @property
    def max_len(self):
        return self._max_len

    @property
    def model_bytes(self):
        """The serialized SentencePiece model (what `tokenizer.model` files hold)."""
        return self._model_bytes

    def copy(self):
        return TextTokenizer(self._model_bytes, self._max_len, name=self.name)

    def tokenize(self, strings):
        """Tokenizes a string tensor of shape [B] or []; returns int32 [B, L] or [L]."""
        batch, scalar = string_batch(strings, self.max_len)  # the pieces past max_len - 1 are dropped anyway
        pieces = self.sentencepiece.tokenize(batch)[:, : self.max_len - 1]
        eos = tf.fill([tf.shape(batch)[0], 1], tf.constant(EOS_ID, tf.int32))
        ids = tf.concat([pieces, eos], axis=1)
        dense = ids.to_tensor(default_value=PAD_ID, shape=[None, self.max_len])
        return dense[0] if scalar else dense
