"""The text encoder of a KerasHub CLIP, SigLIP or MetaCLIP 2 backbone as tt's text tower.

`tt train --init PRESET` starts g from the preset's text encoder and projection. The
tower computes what the backbone's `get_text_embeddings` computes, on the token ids of
the preset's own tokenizer and packer (`tt_cli.data.preset_tokenizer`), whose
convention it keeps: CLIP pools at its end-of-text token, the largest id of its
vocabulary (`"max_id"`, KerasHub's `CLIPTextPooler`); MetaCLIP 2 at the first
end-of-sequence id (`"first_eos"`); SigLIP's encoder pools itself (at the last
position: its packer pads with end-of-sequence tokens) and projects with its own head.

Example:
>>> import keras_hub, numpy as np
>>> encoder = keras_hub.models.CLIPTextEncoder(vocabulary_size=50, embedding_dim=16, hidden_dim=16,
...     num_layers=1, num_heads=2, intermediate_dim=32, max_sequence_length=8)
>>> projection = keras.layers.Dense(12, use_bias=False)
>>> tower = PresetTextTower(encoder, pooling="max_id", projection=projection)
>>> tower(np.array([[48, 5, 6, 49, 0, 0, 0, 0]], "int32")).shape, tower.max_len
(TensorShape([1, 12]), 8)
"""

import keras
from keras import ops

from models.preset_image_tower import _deserialize, _serialize

POOLINGS = ("max_id", "first_eos", "encoder")


@keras.saving.register_keras_serializable(package="tt")
class PresetTextTower(keras.layers.Layer):
    """A preset's text encoder, pooling and projection, taking its tokenizer's ids.

    Args:
      encoder: the backbone's text encoder (`CLIPTextEncoder`, `SigLIPTextEncoder`,
        `MetaCLIP2TextEncoder`).
      pooling: `"max_id"` (the position of the largest id), `"first_eos"` (the first
        position holding `eos_id`) or `"encoder"` (the encoder's output is pooled).
      projection: the backbone's text projection (`Dense`), or None.
      eos_id: the end-of-sequence id `"first_eos"` pools at.
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).
    """

    def __init__(self, encoder, pooling="max_id", projection=None, eos_id=None, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if pooling == "first_eos" and eos_id is None:
            raise ValueError("pooling 'first_eos' needs the eos_id to pool at")
        self.encoder, self.pooling, self.projection, self.eos_id = encoder, pooling, projection, eos_id
        self.max_len = int(encoder.max_sequence_length)
        self.vocab_size = int(encoder.vocabulary_size)
        # SigLIP's encoder ends in its own head (projection_dim); the others end at hidden_dim.
        width = int(getattr(encoder, "projection_dim", None) or encoder.hidden_dim)
        if projection is not None and not projection.built:
            projection.build((None, width))
        self.embed_dim = int(projection.units) if projection is not None else width
        self.built = True

    @property
    def transformer_blocks(self):
        """The encoder's blocks, in order (what `models.remat.rematerialize` recomputes)."""
        return list(self.encoder.encoder_layers)

    def call(self, tokens, training=False):
        tokens = ops.cast(tokens, "int32")
        features = self.encoder({"token_ids": tokens}, training=training)
        if self.pooling != "encoder":
            at = tokens if self.pooling == "max_id" else ops.cast(ops.equal(tokens, self.eos_id), "int32")
            position = ops.argmax(at, axis=-1)
            features = ops.take_along_axis(features, position[:, None, None], axis=1)[:, 0]
        if self.projection is not None:
            features = self.projection(features)
        return features

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=_serialize(self.encoder),
            pooling=self.pooling,
            projection=_serialize(self.projection),
            eos_id=self.eos_id,
        )
        return config

    @classmethod
    def from_config(cls, config):
        for key in ("encoder", "projection"):
            config[key] = _deserialize(config.get(key))
        return cls(**config)
