"""`Tokenizer`: what tt asks of the tokenizer of a text tower, whatever its kind.

Past training a tokenizer, tt calls only these: the `tf.data` pipelines of training and
evaluation map `tokenize` over batches of captions, the exported SavedModel runs it in
its `encode_text` endpoint (a `Tokenizer` is a `tf.Module`: the export tracks it and
saves its resources with it), the text tower is built with `vocab_size` ids and
`max_len` positions, and each input pipeline of a distributed run makes its own with
`copy()`. tt's SentencePiece tokenizer (`text_tokenizer.TextTokenizer`) is one kind; a
pretrained text preset's own tokenizer (byte-pair, or a SentencePiece model of its own
ids) is another kind of the same interface.

Example (a tokenizer of one id per character, to show the interface):
>>> import tensorflow as tf
>>> class Characters(Tokenizer):
...     def __init__(self, max_len):
...         super().__init__(name="characters")
...         self._max_len = max_len
...     vocab_size = property(lambda self: 257)  # 0 pads; 1..256: code points modulo 256
...     max_len = property(lambda self: self._max_len)
...     def copy(self):
...         return Characters(self._max_len)
...     def tokenize(self, strings):
...         ids = tf.strings.unicode_decode(strings, "UTF-8")[:, : self._max_len] % 256 + 1
...         return ids.to_tensor(0, shape=[None, self._max_len])
>>> Characters(4).tokenize(tf.constant(["ab", "abcdef"])).numpy().tolist()
[[98, 99, 0, 0], [98, 99, 100, 101]]
"""

import abc

import tensorflow as tf

# `tokenize` looks at most this many characters per output position: the first
# `max_len - 1` pieces of any real caption lie within `max_len * 16` characters, and a
# runaway caption (convert cuts them, other shards may not) costs no more than a short one.
CHARS_PER_TOKEN_BOUND = 16


def string_batch(strings, max_len):
    """(`strings` as a [B] batch, each cut to `max_len * CHARS_PER_TOKEN_BOUND` characters on
    a character boundary, whether `strings` was one scalar string): what every `tokenize`
    starts with, so that its cost does not grow with a caption's length."""
    strings = tf.convert_to_tensor(strings, dtype=tf.string)
    batch = tf.reshape(strings, [-1])
    return tf.strings.substr(batch, 0, max_len * CHARS_PER_TOKEN_BOUND, unit="UTF8_CHAR"), strings.shape.rank == 0


class Tokenizer(tf.Module, abc.ABC):
    """Caption strings -> the fixed-length int32 token ids of one text tower."""

    @abc.abstractmethod
    def tokenize(self, strings):
        """A string tensor [B] (or a scalar) -> int32 ids [B, max_len] (or [max_len]): the
        ids the text tower takes, padded to `max_len`. Runs in graphs (`tf.data`, exports)."""

    @property
    @abc.abstractmethod
    def vocab_size(self):
        """The number of ids: the rows of the text tower's token embedding."""

    @property
    @abc.abstractmethod
    def max_len(self):
        """The length of every tokenized caption."""

    @abc.abstractmethod
    def copy(self):
        """An independent tokenizer of the same model: each input pipeline of a distributed
        dataset makes its own, since the tokenizer's resources live where it is built."""
