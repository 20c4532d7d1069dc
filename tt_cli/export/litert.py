"""A run's image and text encoders as LiteRT (TensorFlow Lite) flatbuffers, for phones,
browsers and microcontrollers.

    OUT/image_encoder.tflite   uint8 images [B, H, W, 3] -> L2-normalised embeddings [B, d]
    OUT/text_encoder.tflite    int32 token ids [B, L]    -> L2-normalised embeddings [B, d]
    OUT/tokenizer.model        the SentencePiece model that makes the ids
    OUT/encoders.json          inputs, outputs, token convention, usage (`encoders.py`)

Converted by TensorFlow's `TFLiteConverter` from the encoders' SavedModel with built-in
ops only, so any LiteRT runtime runs them (`ai-edge-litert` in Python, no TensorFlow
needed). The batch axis is dynamic: a signature runner sizes it to its input.
`quantize="dynamic"` stores the weights as int8 (dynamic-range quantization: a
quarter of float32's bytes per weight; activations stay float and are quantized on the fly).

Usage (a trained run is needed): `export_litert(load_run("runs/demo"), "exports/demo_litert",
quantize="dynamic")` returns the paths it wrote; docs/guide/deploy.md runs the files.
"""

import os

from tt_cli import storage
from tt_cli.errors import InvalidValueError
from tt_cli.export import encoders

QUANTIZATIONS = ("none", "dynamic")


def export_litert(run, out, quantize="none"):
    """Writes `run`'s encoders into the folder `out` (made if missing); returns the paths written."""
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise InvalidValueError(f"quantization {quantize!r}: choose one of {', '.join(QUANTIZATIONS)}.")
    storage.makedirs(out)
    files = {name: f"{name}.tflite" for name in (encoders.IMAGE, encoders.TEXT)}
    written = []
    with encoders.encoder_savedmodel(run) as savedmodel:
        for name, filename in files.items():
            converter = tf.lite.TFLiteConverter.from_saved_model(savedmodel, signature_keys=[name])
            if quantize == "dynamic":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            flatbuffer = converter.convert()
            path = os.path.join(out, filename)
            with storage.open(path, "wb") as f:
                f.write(flatbuffer)
            written.append(path)
    runtime = "litert" + (" (int8 weights, dynamic-range quantization)" if quantize == "dynamic" else "")
    return written + encoders.write_beside(run, out, files, runtime)
