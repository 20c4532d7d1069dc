"""Model FLOPs of a training step, counted from the built model itself.

Convention (the one of Kaplan et al. 2020 and the ViT/CLIP scaling papers): only
matrix multiplications count, at 2 FLOPs per multiply-accumulate. Layer norms,
softmax, GELU, biases, embedding lookups and the optimizer update are left out
(they are a few percent at the scales that matter and depend on the kernels).

Nothing here knows an architecture. The model's forward pass is traced once into a
TensorFlow graph (symbolically: nothing runs) and every matrix multiplication in it
is counted from its operands' static shapes: `MatMul`, `BatchMatMul*` (Dense layers,
the contrastive logits), `Einsum` (EinsumDense projections and the attention scores
and weighted sums of multi-head attention), `Conv2D` and depthwise convolutions
(patch embeddings, CNN backbones). A new tower or backbone is counted as it is built.

For a ViT this gives, per image: patch embedding `2·P·(p·p·3)·D` over P patches, then
per layer on S tokens: QKV `2·S·D·3D`, attention scores `2·S·S·D`, weighted sum
`2·S·S·D`, output projection `2·S·D·D`, MLP `2·2·S·D·M`; then the projection of the
pooled token `2·D·E` (tests/test_bench.py checks these against a hand count).

A training step is 3x the forward FLOPs of the trained parts (forward plus a
backward that costs twice the forward), plus 1x the forward of the frozen h when
it runs online, and nothing for h when its embeddings are precomputed. A step in
several micro-batches (gradient caching, `--accum-steps`) runs the trained towers
forward once more; rematerialised blocks (`--remat`) run their forward once more in the
backward pass.

Example:
>>> import keras
>>> dense = keras.layers.Dense(16)
>>> layer_forward_flops(dense, (8,))  # one example: 2 * 8 * 16
256
"""

import math

# Graph op types that are matrix multiplications, by how their FLOPs are counted.
_MATMULS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
_CONVS = ("Conv2D", "DepthwiseConv2dNative")


def _shape(tensor):
    return [int(d) for d in tensor.shape]


def _matmul_flops(op):
    """2·(output elements)·(contracted size); transposes/adjoints move the contracted axis."""
    a = _shape(op.inputs[0])
    if op.type == "MatMul":
        contracted = a[0] if op.get_attr("transpose_a") else a[1]
    else:
        contracted = a[-2] if op.get_attr("adj_x") else a[-1]
    return 2 * math.prod(_shape(op.outputs[0])) * contracted


def _einsum_flops(op):
    """2·(product of the sizes of every index of the equation), e.g. `abc,cd->abd`: 2·a·b·c·d."""
    operands = op.get_attr("equation").decode().replace(" ", "").split("->")[0].split(",")
    sizes = {}
    for labels, tensor in zip(operands, op.inputs):
        shape = _shape(tensor)
        if "..." in labels:  # broadcast axes get labels of their own, by position from the right
            before, after = labels.split("...")
            middle = [f"<{i}>" for i in range(len(shape) - len(before) - len(after))]
            labels = [*before, *middle, *after]
        for label, size in zip(labels, shape):
            sizes[label] = max(size, sizes.get(label, 1))
    return 2 * math.prod(sizes.values())


def _conv_flops(op):
    """2·(output elements)·(filter height·width)·(input channels per output, 1 if depthwise)."""
    kh, kw, in_channels, _ = _shape(op.inputs[1])
    per_output = kh * kw * (in_channels if op.type == "Conv2D" else 1)
    return 2 * math.prod(_shape(op.outputs[0])) * per_output


def graph_matmul_flops(graph):
    """FLOPs of the matrix multiplications of a traced TensorFlow graph."""
    total = 0
    for op in graph.get_operations():
        if op.type in _MATMULS:
            total += _matmul_flops(op)
        elif op.type == "Einsum":
            total += _einsum_flops(op)
        elif op.type in _CONVS:
            total += _conv_flops(op)
    return total


def forward_flops(fn, input_specs):
    """Matmul FLOPs of `fn(inputs)` for `input_specs` (a `tf.TensorSpec` or a dict of them,
    with static shapes), traced symbolically: nothing is computed."""
    import tensorflow as tf

    return graph_matmul_flops(tf.function(fn).get_concrete_function(input_specs).graph)


def layer_forward_flops(layer, input_shape, dtype="float32"):
    """Per-example forward FLOPs of a built Keras layer or model on inputs of
    `input_shape` (without the batch axis)."""
    import tensorflow as tf

    spec = tf.TensorSpec((1, *input_shape), dtype)
    return forward_flops(lambda x: layer(x, training=False), spec)


def pretrained_tower_forward_flops(tower):
    """Per-example forward FLOPs of a `PretrainedTower` (any backbone), on its pixels."""
    return layer_forward_flops(tower, (*tower.image_size, 3), "uint8")


def train_step_flops(model, batch_size, precomputed=False, accum_steps=1, remat=False):
    """FLOPs of one training step of a built `ThreeTowers` on a global batch of `batch_size`.

    The trained parts are counted by tracing `model.compute_losses` on a batch that
    carries h's embeddings (so h itself is not in that graph): both towers, the heads
    and every pair's logits over the whole batch. Returns a dict: `trained_forward`,
    `frozen_forward` (every third tower's forward on the batch when they run online, else 0),
    `recomputed_forward` (with `accum_steps` > 1: the trained towers' second forward,
    traced from `model.trained_embeddings`, else 0), `remat_forward` (with `remat`: the
    towers' forward once more, for the blocks run again in the backward pass, else 0) and
    `total` (= 3·trained_forward + recomputed_forward + remat_forward + frozen_forward).
    """
    import tensorflow as tf

    tokens = model.text_tower.max_len
    batch = {"tokens": tf.TensorSpec((batch_size, tokens), tf.int32)}
    if model.image_tower is not None:
        batch["image"] = tf.TensorSpec((batch_size, *model.image_tower.image_size, 3), tf.uint8)
    from models.three_towers import TOWER_EMBEDDING, tower_input_key

    towers = model.pretrained_towers
    for k, h in enumerate(towers):
        batch[tower_input_key(TOWER_EMBEDDING, k)] = tf.TensorSpec((batch_size, h.output_dim), tf.float32)
    trained = forward_flops(lambda b: model.compute_losses(b, training=False), batch)
    frozen = 0 if precomputed else batch_size * sum(pretrained_tower_forward_flops(h) for h in towers)
    towers_forward = lambda: forward_flops(lambda b: model.trained_embeddings(b, training=False), batch)
    recomputed = towers_forward() if accum_steps > 1 else 0
    # The rematerialised blocks are all of the towers' forward but the patch and token
    # embeddings and the final projections (a few percent): counted as the towers' forward.
    remat_forward = towers_forward() if remat else 0
    return {
        "trained_forward": trained,
        "frozen_forward": frozen,
        "recomputed_forward": recomputed,
        "remat_forward": remat_forward,
        "total": 3 * trained + recomputed + remat_forward + frozen,
    }
