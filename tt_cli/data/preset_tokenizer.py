"""`PresetTokenizer`: the tokenizer of a run started from a KerasHub preset (`tt train
--init`), a `Tokenizer`: the preset's own preprocessor (CLIP's byte-pair tokenizer,
SigLIP's and MetaCLIP 2's SentencePiece), with its text normalisation (CLIP lower-cases;
SigLIP also strips punctuation), its start and end tokens, its padding and its sequence
length.

It runs inside `tf.data` `.map` and is tracked by an exported SavedModel, which then
carries the vocabulary with it (the loader must `import tensorflow_text`). Token ids are
the preset's, which its text tower pools by (`models.preset_text_tower`). As with
`TextTokenizer`, a caption is cut by `tokenizer_interface.string_batch` before
it is tokenized, so that a runaway caption costs no more than a short one.

Usage: `PresetTokenizer("runs/clip/init").tokenize(tf.constant(["a red circle"]))` gives
int32 ids of shape [1, 77] for a run started from `clip_vit_base_patch16` (its sequence
length); `tests/test_preset_towers.py` runs it on tiny presets.
"""

import json
import os

import tensorflow as tf

from tt_cli import storage
from tt_cli.data.tokenizer_interface import Tokenizer, string_batch
from tt_cli.errors import InvalidValueError

PREPROCESSOR_JSON = "preprocessor.json"


def preprocessor_class_name(preset_dir):
    """The KerasHub preprocessor class a preset directory saved (`preprocessor.json`)."""
    path = os.path.join(preset_dir, PREPROCESSOR_JSON)
    if not storage.isfile(path):
        raise InvalidValueError(f"{preset_dir}: the preset has no {PREPROCESSOR_JSON} (no tokenizer to start from).")
    with storage.open(path) as f:
        return json.load(f)["class_name"]


class PresetTokenizer(Tokenizer):
    """A `tf.Module` that turns caption strings into the preset's fixed-length token ids.

    Args:
      preset_dir: a KerasHub preset directory with its preprocessor (`preprocessor.json`,
        `tokenizer.json`, `assets/tokenizer/`).
    """

    def __init__(self, preset_dir, name="preset_tokenizer"):
        super().__init__(name=name)
        import keras_hub

        self.preset_dir = os.fspath(preset_dir)
        preprocessor_class = getattr(keras_hub.models, preprocessor_class_name(self.preset_dir))
        preprocessor = preprocessor_class.from_preset(self.preset_dir)
        # Text only: the input pipeline resizes images, the image tower normalises them.
        preprocessor.image_converter = None
        self.preprocessor = preprocessor
        self._max_len = int(preprocessor.sequence_length)
        self._vocab_size = int(preprocessor.tokenizer.vocabulary_size())
        # CLIP's byte-pair tokenizer caches merged words in a table held by a plain Python
        # object: attached here, the SavedModel tracks (and saves) it too.
        cache = getattr(preprocessor.tokenizer, "cache", None)
        self._bpe_cache_table = getattr(cache, "id2value", None)

    @property
    def vocab_size(self):
        return self._vocab_size

    @property
    def max_len(self):
        return self._max_len

    def copy(self):
        return PresetTokenizer(self.preset_dir)

    def tokenize(self, strings):
        """Tokenizes a string tensor of shape [B] or []; returns int32 [B, L] or [L]."""
        batch, scalar = string_batch(strings, self.max_len)
        ids = tf.cast(self.preprocessor({"prompts": batch, "images": None})["token_ids"], tf.int32)
        ids = tf.ensure_shape(ids, [None, self.max_len])
        return ids[0] if scalar else ids
