"""A run started from a KerasHub preset (`tt train --init`), exported back as a preset of the
same KerasHub class: `keras_hub.models.CLIPBackbone.from_preset(OUT)` (or `SigLIPBackbone`,
`MetaCLIP2Backbone`) loads the trained towers, and the class's preprocessor
`from_preset(OUT)` the preset's own tokenizer and image converter. Its image and text
embeddings are tt's, and so are its logits: the temperature as tt uses it (clipped at
100) and, for SigLIP, the bias of a run trained with the sigmoid loss (else the
preset's, which the softmax loss never saw).

    OUT/config.json, model.weights.h5, metadata.json   the backbone
    OUT/preprocessor.json, tokenizer.json, image_converter.json, assets/   the preset's preprocessing

The image side of a LiT run is its locked tower, the preset's own image tower (a LiT head
has no place in these classes: such a run cannot be written as one). With
`--interpolate A` the run's weights are WiSE-FT's before they are written.

Usage: `export_keras_hub_preset(load_run("runs/clip_finetuned"), "exports/clip_finetuned")`,
then `keras_hub.models.CLIPBackbone.from_preset("exports/clip_finetuned")` in any Keras
program (`tests/test_init.py` checks its embeddings against tt's).
"""

import os

from tt_cli import storage
from tt_cli.errors import InvalidValueError


def _image_tower(run):
    model = run.model
    if model.mode != "lit":
        return model.image_tower
    if model.lit_head or not getattr(model.pretrained_tower, "frozen", False):
        raise InvalidValueError(
            f"{run.path}: a LiT run with a head, or locking another tower than the preset's own, has an image "
            f"side a {run.record.resolved['init']['class']} cannot hold; export it as a savedmodel."
        )
    return model.pretrained_tower


def export_keras_hub_preset(run, out):
    """Writes the preset directory `out` (staged locally for a URL); returns what it wrote (a dict)."""
    with storage.staged_folder(out) as local:
        return _write(run, local)


def _write(run, out):
    import keras_hub
    import numpy as np

    from models.contrastive_loss import MAX_LOG_TEMPERATURE
    from models.preset_backbones import assemble_backbone, family_of
    from models.preset_model import load_preset_parts
    from tt_cli.init_preset import INIT_DIR

    model, init = run.model, run.record.resolved["init"]
    family = family_of(init["class"])
    copy = os.path.join(run.path, INIT_DIR)
    image_tower = _image_tower(run)
    log_t = min(float(model.log_temperatures["image_text"].numpy()), MAX_LOG_TEMPERATURE)
    if "image_text" in model.biases:
        bias = float(model.biases["image_text"].numpy())
    else:  # trained with the softmax loss: SigLIP's bias as the preset had it
        bias = load_preset_parts(copy).bias if family.has_bias else 0.0
    backbone = assemble_backbone(family, image_tower, model.text_tower, log_t, bias)
    backbone.save_to_preset(out)
    getattr(keras_hub.models, family.preprocessor).from_preset(copy).save_to_preset(out)
    return {
        "class": family.backbone,
        "preprocessor": family.preprocessor,
        "mode": model.mode,
        "step": run.step,
        "init": init["preset"],
        "interpolate": run.interpolate,
        "image_size": [int(s) for s in model.image_size],
        "embed_dim": int(model.text_tower.embed_dim),
        "max_text_len": int(model.text_tower.max_len),
        "temperature": float(np.exp(log_t)),
        "bias": bias if family.has_bias else None,
    }
