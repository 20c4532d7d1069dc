"""A third tower on the text side: a frozen KerasHub sentence encoder (a `TextEmbedder`
preset such as `all_minilm_l6_v2_en`).

3T's image third tower h teaches f and g through two pairs of heads; a text third tower
teaches them the same way, from the caption instead of the image: `L(f_h, h_f)` aligns
the image tower with the sentence encoder's embedding of the caption, `L(g_h, h_g)` the
text tower. It reads the caption tokenized by its own preprocessor (`text_preprocessor`,
run in the input pipeline) under the batch key `h_text` (`input_key`; `h_text_{k}` for
third tower k), is never trained and always runs in inference mode.

Captions are packed to at most `MAX_LEN` tokens: a sentence encoder pools over its
caption's own tokens (mean or class token, padding masked), so a shorter caption's
embedding does not depend on the padding, and a captioning corpus rarely needs more.

Example:
>>> import keras_hub, numpy as np
>>> backbone = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=1, num_heads=2,
...     hidden_dim=8, intermediate_dim=16, max_sequence_length=12)
>>> tower = PretrainedTextTower(keras_hub.models.BertTextEmbedder(backbone))
>>> inputs = {"token_ids": np.array([[2, 5, 3, 0]]), "segment_ids": np.zeros((1, 4), "int32"),
...           "padding_mask": np.array([[1, 1, 1, 0]])}
>>> tower(inputs).shape, tower.output_dim, tower.trainable_weights
(TensorShape([1, 8]), 8, [])
"""

import os

import keras
from keras import ops

from models.preset_image_tower import _deserialize, _serialize
from models.three_towers import TOWER_TEXT

MAX_LEN = 64


def text_preprocessor(preset):
    """A new preprocessor of a `TextEmbedder` preset (each input pipeline makes its own):
    caption strings -> the inputs of its `PretrainedTextTower`, packed to at most `MAX_LEN`
    tokens."""
    import keras_hub

    preprocessor = keras_hub.models.TextEmbedderPreprocessor.from_preset(preset)
    preprocessor.sequence_length = min(preprocessor.sequence_length, MAX_LEN)
    return preprocessor


@keras.saving.register_keras_serializable(package="tt")
class PretrainedTextTower(keras.layers.Layer):
    """A frozen `keras_hub.models.TextEmbedder` (without its preprocessor) taking its
    preprocessor's packed inputs; returns float32 [batch, output_dim].

    Args:
      embedder: a KerasHub `TextEmbedder` task (`BertTextEmbedder`, ...); frozen here.
      preset: the preset it came from, whose preprocessor tokenizes its input (None for
        an embedder built in code).
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).
    """

    input_key = TOWER_TEXT  # the batch key of its input (`models.three_towers.tower_input_key`)
    modality = "text"  # what it embeds (`tt_cli.data.third_towers.ThirdTower.modality`)

    def __init__(self, embedder, preset=None, **kwargs):
        super().__init__(**kwargs)
        self.embedder, self.preset = embedder, preset
        self.embedder.trainable = False
        for variable in embedder.weights:  # as `PretrainedTower`: a deserialized flag misses them
            variable.trainable = False
        self.output_dim = int(embedder.output.shape[-1])
        self.trainable = False
        self.built = True

    @classmethod
    def from_preset(cls, preset):
        """The frozen sentence encoder of a `TextEmbedder` preset (a name, `kaggle://`, `hf://`
        or a directory)."""
        import keras_hub

        embedder = keras_hub.models.TextEmbedder.from_preset(preset, preprocessor=None)
        name = os.path.abspath(preset) if os.path.isdir(preset) else preset
        return cls(embedder, preset=name, name="pretrained_text_tower")

    @property
    def preprocessing(self):
        """What turns captions into its inputs, as JSON (recorded with the run)."""
        return {"text_embedder": self.preset, "max_len": MAX_LEN}

    def call(self, inputs, training=False):
        del training  # frozen: always inference mode
        return ops.stop_gradient(ops.cast(self.embedder(inputs, training=False), "float32"))

    def get_config(self):
        config = super().get_config()
        config.update(embedder=_serialize(self.embedder), preset=self.preset)
        return config

    @classmethod
    def from_config(cls, config):
        config["embedder"] = _deserialize(config["embedder"])
        return cls(**config)
