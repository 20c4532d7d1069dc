"""The run's image encoder as a KerasHub preset, with the text side beside it.

    OUT/config.json, model.weights.h5, metadata.json   the image backbone (KerasHub)
    OUT/image_converter.json                            its preprocessing (pixels in [0, 255])
    OUT/tt/image_head.keras     pooled backbone features -> L2-normalised image embedding
    OUT/tt/text_encoder.keras   token ids -> L2-normalised text embedding (`import models` first)
    OUT/tt/tokenizer.model      the SentencePiece model (`tt_cli.data.text_tokenizer.TextTokenizer`)
    OUT/tt/tt.json              mode, pooling, sizes and the files above

`keras_hub.models.Backbone.from_preset(OUT)` gives the image tower to fine-tune: for
`clip` and `3t` runs the trained main tower f (a `ViTBackbone`), for `lit` runs the
locked pretrained tower h. Its pooled output is the class token of the output sequence
(`pooling: "token"`) or the mean over positions (`"gap"`), computed on images that
`keras_hub.layers.ImageConverter.from_preset(OUT)` prepared.

In use (what `tt export preset runs/demo exports/demo_preset` runs, after a training run):

```python
run = load_run("runs/demo")
export_preset(run, "exports/demo_preset")
keras_hub.models.Backbone.from_preset("exports/demo_preset")
```
"""

import os

import keras

from models import vit_image_converter
from tt_cli import storage
from tt_cli.jsonfile import write_json

TT_DIR = "tt"
TT_JSON = "tt.json"
IMAGE_HEAD = "image_head.keras"
TEXT_ENCODER = "text_encoder.keras"
TOKENIZER = "tokenizer.model"


def _unit_norm():
    # In float32 whatever the policy, as models.normalize.l2_normalize.
    return keras.layers.UnitNormalization(axis=-1, dtype="float32", name="l2_normalize")


def _image_side(model):
    """(backbone, image converter, pooling, head layer or None) of the downstream image encoder."""
    if model.mode == "lit":
        tower = model.pretrained_tower
        head = model.lit_image_head.dense if model.lit_head else None
        return tower.backbone, tower.image_converter, tower.pooling, head, tower.output_dim
    tower = model.image_tower
    # ImageTower rescales [0, 255] -> [-1, 1] itself; the converter states that for KerasHub.
    converter = vit_image_converter(tower.image_size)
    return tower.backbone, converter, tower.pooling, tower.projection, tower.backbone.hidden_dim


def _image_head_model(head, input_dim):
    pooled = keras.Input((input_dim,), name="pooled")
    x = head(pooled) if head is not None else pooled
    return keras.Model(pooled, _unit_norm()(x), name="image_head")


def _text_encoder_model(text_tower):
    tokens = keras.Input((text_tower.max_len,), dtype="int32", name="tokens")
    return keras.Model(tokens, _unit_norm()(text_tower(tokens)), name="text_encoder")


def export_preset(run, out):
    """Writes the preset directory `out`; returns the `tt.json` it wrote (a dict). KerasHub
    writes local disk only: a URL `out` is written in a local folder, then uploaded.

    A run started from a KerasHub preset goes back as a preset of that preset's class
    (`keras_hub_preset`). A run from scratch cannot: tt's own towers are not CLIP's (biases
    in the patch embedding and the projections, GELU, layer norm epsilon 1e-6, text attention
    without a causal mask, pooled at tt's EOS id), so their weights have no place in a
    `CLIPBackbone` that would compute the same embeddings."""
    if run.config.get("init"):
        from tt_cli.export.keras_hub_preset import export_keras_hub_preset

        return export_keras_hub_preset(run, out)
    with storage.staged_folder(out) as local:
        return _write_preset(run, local)


def _write_preset(run, out):
    model = run.model
    backbone, converter, pooling, head, pooled_dim = _image_side(model)
    # A locked tower is frozen inside tt; in KerasHub it is there to be fine-tuned.
    backbone.trainable = True
    backbone.save_to_preset(out)
    converter.save_to_preset(out)
    tt_dir = os.path.join(out, TT_DIR)
    storage.makedirs(tt_dir)
    _image_head_model(head, pooled_dim).save(os.path.join(tt_dir, IMAGE_HEAD))
    _text_encoder_model(model.text_tower).save(os.path.join(tt_dir, TEXT_ENCODER))
    with storage.open(os.path.join(tt_dir, TOKENIZER), "wb") as f:
        f.write(run.tokenizer.model_bytes)
    info = {
        "mode": model.mode,
        "scale": run.config["scale"],
        "step": run.step,
        "source_run": storage.abspath(run.path),
        "image_tower": "pretrained (locked) tower h" if model.mode == "lit" else "main image tower f",
        "pretrained": (run.record.pretrained_presets or [None])[0],
        "pretrained_towers": run.record.pretrained_presets,  # 3T's teachers; none is exported
        "image_size": [int(s) for s in model.image_size],
        "pooling": pooling,
        "pooled_dim": int(pooled_dim),
        "embed_dim": int(model.text_tower.embed_dim),
        "max_text_len": int(model.text_tower.max_len),
        "files": {
            "image_head": f"{TT_DIR}/{IMAGE_HEAD}",
            "text_encoder": f"{TT_DIR}/{TEXT_ENCODER}",
            "tokenizer": f"{TT_DIR}/{TOKENIZER}",
        },
        "usage": (
            "image: converter = keras_hub.layers.ImageConverter.from_preset(OUT); backbone = "
            "keras_hub.models.Backbone.from_preset(OUT); seq = backbone(converter(pixels_0_255)); pooled = "
            "seq[:, 0] if pooling == 'token' else mean over all axes but batch and channels; embedding = "
            "keras.saving.load_model(OUT/tt/image_head.keras)(pooled). text: import models; "
            "keras.saving.load_model(OUT/tt/text_encoder.keras)(TextTokenizer(OUT/tt/tokenizer.model, "
            "max_text_len).tokenize(texts))."
        ),
    }
    write_json(os.path.join(tt_dir, TT_JSON), info)
    return info
