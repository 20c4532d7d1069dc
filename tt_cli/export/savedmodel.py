"""A servable TensorFlow SavedModel of a run: raw pixels, encoded images or raw text in,
L2-normalised embeddings out. Written with Keras' `ExportArchive`.

Endpoints (signatures; every embedding is float32 [batch, d] with unit L2 norm):

| endpoint             | input                                          | output                       |
| -------------------- | ---------------------------------------------- | ---------------------------- |
| `encode_image`       | `images`: uint8 [B, H, W, 3], any H and W      | `output_0`: [B, d]           |
| `encode_image_bytes` | `image_bytes`: string [B], JPEG/PNG/GIF/BMP    | `output_0`: [B, d]           |
| `encode_text`        | `texts`: string [B], raw UTF-8                 | `output_0`: [B, d]           |
| `serving_default`    | `image_bytes`: string [N], `texts`: string [M] | `image_embeddings` [N, d],   |
|                      |                                                | `text_embeddings` [M, d],    |
|                      |                                                | `similarity` [N, M] (cosine) |

Images are resized to the model's input size inside the graph by the training
pipeline's own `tt_cli.data.pipeline.resize` (area when shrinking, bilinear when
enlarging; a preset's own way for a run started from one); the towers then rescale
pixels themselves. The SentencePiece tokenizer runs inside the graph through
tensorflow-text, so loading the SavedModel needs `import tensorflow_text` first (it
registers the tokenizer's ops).

In use (what `tt export savedmodel runs/demo exports/demo` runs, after a training run):

```python
run = load_run("runs/demo")
export_savedmodel(run, "exports/demo")

import tensorflow as tf, tensorflow_text  # the tokenizer's ops need tensorflow_text
tf.saved_model.load("exports/demo").encode_text(tf.constant(["a red circle"])).shape  # [1, 64]
```
"""

import keras
import tensorflow as tf

from tt_cli.data.pipeline import resize

ENDPOINTS = ("encode_image", "encode_image_bytes", "encode_text", "serving_default")


def decode_and_resize(image_bytes, size, resizing=None):
    """Decodes a batch of encoded images (JPEG, PNG, GIF's first frame, BMP) to RGB and
    resizes each to `size` (as `resizing` says, see `resize`): float32 [B, H, W, 3]. Images
    in a batch may differ in size."""

    def one(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return resize(image, size, resizing)

    return tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([*size, 3], tf.float32))


class _Encoders:
    """The endpoint functions over one model and tokenizer (plain functions that
    `ExportArchive.add_endpoint` traces with its input signatures)."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.size = tuple(int(s) for s in model.image_size)
        self.resizing = model.image_resizing

    def encode_image(self, images):
        return self.model.encode_image(resize(images, self.size, self.resizing), training=False)

    def encode_image_bytes(self, image_bytes):
        return self.model.encode_image(decode_and_resize(image_bytes, self.size, self.resizing), training=False)

    def encode_text(self, texts):
        return self.model.encode_text(self.tokenizer.tokenize(texts), training=False)

    def serving_default(self, image_bytes, texts):
        images, text = self.encode_image_bytes(image_bytes), self.encode_text(texts)
        return {
            "image_embeddings": images,
            "text_embeddings": text,
            "similarity": tf.matmul(images, text, transpose_b=True),
        }


def export_savedmodel(run, out):
    """Writes `run` (a `tt_cli.run_dir.Run`) as a SavedModel directory `out`; returns the
    endpoint names with their input and output descriptions."""
    model, tokenizer = run.model, run.tokenizer
    encoders = _Encoders(model, tokenizer)
    archive = keras.export.ExportArchive()
    archive.track(model)
    # The tokenizer is a tf.Module: tracking it saves the SentencePiece model with it.
    archive.track(tokenizer)
    strings = lambda name: tf.TensorSpec([None], tf.string, name=name)
    archive.add_endpoint(
        "encode_image",
        encoders.encode_image,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint("encode_image_bytes", encoders.encode_image_bytes, input_signature=[strings("image_bytes")])
    archive.add_endpoint("encode_text", encoders.encode_text, input_signature=[strings("texts")])
    archive.add_endpoint(
        "serving_default", encoders.serving_default, input_signature=[strings("image_bytes"), strings("texts")]
    )
    archive.write_out(out, verbose=False)
    return describe_endpoints(model)


def describe_endpoints(model):
    """Rows (endpoint, inputs, outputs) for the command's summary table."""
    height, width = model.image_size
    d = int(model.text_tower.embed_dim)
    return [
        ("encode_image", "images: uint8 [B, H, W, 3], any size", f"[B, {d}] (resized to {height}x{width})"),
        ("encode_image_bytes", "image_bytes: string [B] (JPEG/PNG)", f"[B, {d}]"),
        ("encode_text", "texts: string [B] (raw UTF-8)", f"[B, {d}]"),
        (
            "serving_default",
            "image_bytes: string [N], texts: string [M]",
            f"image_embeddings [N, {d}], text_embeddings [M, {d}], similarity [N, M]",
        ),
    ]
