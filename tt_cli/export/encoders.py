"""The two encoders every device export holds, and what is written beside them.

LiteRT (`litert.py`) and ONNX (`onnx.py`) both convert the same pair of functions,
traced once into a SavedModel by Keras' `ExportArchive` (`encoder_savedmodel`):

| signature       | input                                             | output                           |
| --------------- | ------------------------------------------------- | -------------------------------- |
| `image_encoder` | `images`: uint8 [B, H, W, 3], the model's H and W | `embeddings`: float32 [B, d]     |
| `text_encoder`  | `tokens`: int32 [B, L], ids as `models.tokens`    | `embeddings`: float32 [B, d]     |

Embeddings are L2-normalised. The pixel normalisation is inside (the towers rescale
[0, 255] themselves; LiT's locked tower h applies its own preset's converter); the
resize is not: tt resizes by area averaging when shrinking, and neither LiteRT's
built-in ops nor ONNX have that operation (the converters reject `ResizeArea` and the
antialiased bilinear `ScaleAndTranslate`), so images come at H x W. Nor is the
tokenizer: both runtimes lack tensorflow-text's SentencePiece ops, so the
SentencePiece model is written beside the encoders with `encoders.json`, which says
how to make the ids (`sentencepiece` in Python, no TensorFlow needed).

For `clip` and `3t` runs the image side is the main image tower f (3T's third towers
and heads are dropped), for `lit` runs the locked tower h with its head, if any.

Usage (a trained run is needed): `with encoder_savedmodel(load_run("runs/demo")) as path:`
then `tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[IMAGE])`.
"""

import contextlib
import os
import tempfile

from models.tokens import EOS_ID, PAD_ID
from tt_cli import storage
from tt_cli.jsonfile import write_json

IMAGE, TEXT = "image_encoder", "text_encoder"
TOKENIZER = "tokenizer.model"
INFO = "encoders.json"
# How many characters per output position the tokenizer reads (tt_cli.data.tokenizer's bound).
CHARS_PER_TOKEN = 16


@contextlib.contextmanager
def encoder_savedmodel(run):
    """Yields a temporary local SavedModel directory with the `image_encoder` and
    `text_encoder` signatures of `run` (a `tt_cli.run_dir.Run`); removed afterwards."""
    import keras
    import tensorflow as tf

    model = run.model
    height, width = (int(s) for s in model.image_size)
    max_len = int(model.text_tower.max_len)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        IMAGE,
        lambda images: {"embeddings": model.encode_image(images, training=False)},
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        TEXT,
        lambda tokens: {"embeddings": model.encode_text(tokens, training=False)},
        input_signature=[tf.TensorSpec([None, max_len], tf.int32, name="tokens")],
    )
    directory = tempfile.mkdtemp(prefix="tt-encoders-")
    try:
        archive.write_out(directory, verbose=False)
        yield directory
    finally:
        with contextlib.suppress(OSError):
            storage.rmtree(directory)


def encoder_info(run, files, runtime):
    """The `encoders.json` of an export: inputs, outputs, the token convention and a
    usage note; `files` maps `image_encoder`/`text_encoder` to the file names written."""
    model = run.model
    height, width = (int(s) for s in model.image_size)
    max_len = int(model.text_tower.max_len)
    return {
        "format": runtime,
        "mode": model.mode,
        "step": run.step,
        "source_run": storage.abspath(run.path),
        "image_encoder": {
            "file": files[IMAGE],
            "input": {"name": "images", "dtype": "uint8", "shape": ["batch", height, width, 3], "range": [0, 255]},
            "output": {"name": "embeddings", "dtype": "float32", "shape": ["batch", int(model.text_tower.embed_dim)]},
            "image_side": "locked pretrained tower h" + (" + head" if model.lit_head else "")
            if model.mode == "lit"
            else "main image tower f",
        },
        "text_encoder": {
            "file": files[TEXT],
            "input": {"name": "tokens", "dtype": "int32", "shape": ["batch", max_len]},
            "output": {"name": "embeddings", "dtype": "float32", "shape": ["batch", int(model.text_tower.embed_dim)]},
        },
        "tokenizer": {"file": TOKENIZER, "max_len": max_len, "pad_id": PAD_ID, "eos_id": EOS_ID},
        "usage": [
            f"images: RGB uint8 at {height}x{width}; shrink larger images by area averaging, as training did "
            "(PIL: image.resize((width, height), Image.BOX)); pixels are normalised inside.",
            f"tokens: ids = sentencepiece.SentencePieceProcessor(model_file='{TOKENIZER}')"
            f".encode(text[: {max_len * CHARS_PER_TOKEN}])[: {max_len - 1}] + [{EOS_ID}], "
            f"right-padded with {PAD_ID} to {max_len}.",
            "embeddings are L2-normalised: cosine similarity is their dot product.",
        ],
    }


def token_ids(processor, texts, max_len):
    """Texts -> int32 [len(texts), max_len] ids with a `sentencepiece.SentencePieceProcessor`,
    as `encoders.json` says (and as `tt_cli.data.tokenizer.TextTokenizer` does in TensorFlow).

    >>> import numpy as np
    >>> class Pieces:  # stands in for a SentencePieceProcessor: one id per character
    ...     def encode(self, text): return [ord(c) for c in text]
    >>> token_ids(Pieces(), ["ab", "abcdef"], 4).tolist()
    [[97, 98, 2, 0], [97, 98, 99, 2]]
    """
    import numpy as np

    ids = np.full((len(texts), max_len), PAD_ID, np.int32)
    for row, text in enumerate(texts):
        pieces = processor.encode(text[: max_len * CHARS_PER_TOKEN])[: max_len - 1] + [EOS_ID]
        ids[row, : len(pieces)] = pieces
    return ids


def write_beside(run, out, files, runtime):
    """Writes the tokenizer and `encoders.json` into `out`; returns their paths."""
    tokenizer_path, info_path = os.path.join(out, TOKENIZER), os.path.join(out, INFO)
    with storage.open(tokenizer_path, "wb") as f:
        f.write(run.tokenizer.model_bytes)
    write_json(info_path, encoder_info(run, files, runtime))
    return [tokenizer_path, info_path]
