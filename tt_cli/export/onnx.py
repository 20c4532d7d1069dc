"""A run's image and text encoders as ONNX models, for serving stacks outside TensorFlow.

    OUT/image_encoder.onnx   uint8 images [batch, H, W, 3] -> L2-normalised embeddings [batch, d]
    OUT/text_encoder.onnx    int32 token ids [batch, L]    -> L2-normalised embeddings [batch, d]
    OUT/tokenizer.model      the SentencePiece model that makes the ids
    OUT/encoders.json        inputs, outputs, token convention, usage (`encoders.py`)

Converted by `tf2onnx` from the encoders' SavedModel (weights frozen into the graph) at
opset `OPSET`; `onnxruntime` runs them without TensorFlow. Images stay NHWC, as in
training. One op needs help: TensorFlow's exact GELU uses `Erfc`, which ONNX lacks, so
it is written as `1 - Erf(x)` (the same function; in the GELU it multiplies the
negative tail, where the rounding of `1 - erf` is far below float32's resolution of
the result).

Usage (a trained run is needed): `export_onnx(load_run("runs/demo"), "exports/demo_onnx")`
returns the paths it wrote; docs/guide/deploy.md runs the files.
"""

import logging
import os

from tt_cli import storage
from tt_cli.export import encoders
from tt_cli.optional import require

OPSET = 17


def _erfc_as_one_minus_erf(ctx, node, name, args):
    """tf2onnx handler: `Erfc(x)` -> `Sub(1, Erf(x))`."""
    import numpy as np
    from tf2onnx import utils

    erf = ctx.make_node("Erf", [node.input[0]])
    one = ctx.make_const(utils.make_name("one"), np.array(1, dtype=np.float32))
    outputs, shapes, dtypes = node.output, [ctx.get_shape(node.output[0])], [ctx.get_dtype(node.output[0])]
    ctx.remove_node(node.name)
    ctx.make_node("Sub", [one.output[0], erf.output[0]], outputs=outputs, name=name, shapes=shapes, dtypes=dtypes)


def _convert(savedmodel, signature):
    """The ONNX ModelProto of one signature of the SavedModel, with a named batch axis."""
    import tensorflow as tf

    tf2onnx = require("tf2onnx", "export", "ONNX export")
    from tf2onnx import tf_loader

    # tf2onnx's progress lines and TensorFlow's deprecation notices for the v1 freezing it uses.
    quiet = [tf.get_logger(), logging.getLogger("tf2onnx")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            savedmodel, None, None, tag="serve", signatures=[signature], return_tensors_to_rename=True
        )
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            name=signature,
            input_names=inputs,
            output_names=outputs,
            opset=OPSET,
            custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])},
            tensors_to_rename=renames,
        )
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return proto


def export_onnx(run, out):
    """Writes `run`'s encoders into the folder `out` (made if missing); returns the paths written."""
    require("tf2onnx", "export", "ONNX export")  # before any work
    storage.makedirs(out)
    files = {name: f"{name}.onnx" for name in (encoders.IMAGE, encoders.TEXT)}
    written = []
    with encoders.encoder_savedmodel(run) as savedmodel:
        for name, filename in files.items():
            path = os.path.join(out, filename)
            with storage.open(path, "wb") as f:
                f.write(_convert(savedmodel, name).SerializeToString())
            written.append(path)
    return written + encoders.write_beside(run, out, files, f"onnx (opset {OPSET})")
