"""Model FLOPs of a training step, counted from the architecture.

Convention (the one of Kaplan et al. 2020 and the ViT/CLIP scaling papers): only
matrix multiplications count, at 2 FLOPs per multiply-accumulate. Layer norms,
softmax, GELU, biases, embedding lookups and the optimizer update are left out
(they are a few percent at the scales that matter and depend on the kernels).

Per example, forward pass:
- ViT (image tower f, and the frozen h when it is a ViT): patch embedding
  `2·P·(p·p·3)·D` over P patches, then per layer on S tokens (P, plus one class
  token when used): QKV `2·S·D·3D`, attention scores `2·S·S·D`, weighted sum
  `2·S·S·D`, output projection `2·S·D·D`, MLP `2·2·S·D·M`; then the projection to
  the embedding, `2·D·E`, on the pooled token only.
- Text tower g: the same transformer layers over L = max_len tokens, then `2·D·E`.
- Heads: `2·in·out` each.
Per batch of B: each contrastive pair computes both `a·bᵀ` and `b·aᵀ` (the loss
code does), `2·2·B·B·E`.

A training step is 3x the forward FLOPs of the trained parts (forward plus a
backward that costs twice the forward), plus 1x the forward of the frozen h when
it runs online, and nothing for h when its embeddings are precomputed.

A frozen h that is not a ViT (ResNet, ...) has no formula here:
`pretrained_tower_forward_flops` returns None and the step's FLOPs are reported as
None rather than guessed.

Example:
>>> transformer_layers_flops(seq_len=4, width=8, depth=1, mlp_dim=16)
4608
>>> vit_forward_flops(image_size=(8, 8), patch_size=(4, 4), width=8, depth=1, mlp_dim=16, class_token=False)
7680
"""


def transformer_layers_flops(seq_len, width, depth, mlp_dim):
    """Forward FLOPs of `depth` pre-norm transformer layers over `seq_len` tokens."""
    s, d = seq_len, width
    per_layer = (
        2 * s * d * 3 * d  # Q, K, V projections
        + 2 * s * s * d  # attention scores Q·Kᵀ (all heads together: width d)
        + 2 * s * s * d  # attention-weighted sum of V
        + 2 * s * d * d  # attention output projection
        + 2 * 2 * s * d * mlp_dim  # MLP: up and down projections
    )
    return depth * per_layer


def vit_forward_flops(image_size, patch_size, width, depth, mlp_dim, class_token=True, channels=3):
    """Forward FLOPs of a ViT encoder (patch embedding + layers) for one image."""
    (h, w), (ph, pw) = image_size, patch_size
    patches = (h // ph) * (w // pw)
    patch_embedding = 2 * patches * (ph * pw * channels) * width
    return patch_embedding + transformer_layers_flops(patches + int(class_token), width, depth, mlp_dim)


def dense_flops(in_dim, out_dim):
    return 2 * in_dim * out_dim


def image_tower_forward_flops(scale, pooling="token", embed_dim=None):
    """f at a `Scale`: the ViT plus its projection to the embedding width."""
    vit = vit_forward_flops(
        (scale.image_size, scale.image_size), (scale.patch_size, scale.patch_size),
        scale.width, scale.depth, scale.mlp_dim, class_token=pooling == "token",
    )
    return vit + dense_flops(scale.width, embed_dim or scale.embed_dim)


def text_tower_forward_flops(scale, max_len, embed_dim=None):
    """g at a `Scale` over `max_len` tokens (padding is computed too), plus its projection."""
    layers = transformer_layers_flops(max_len, scale.width, scale.depth, scale.mlp_dim)
    return layers + dense_flops(scale.width, embed_dim or scale.embed_dim)


def logits_flops(batch_size, dim):
    """Both logit matrices of one contrastive pair over the global batch."""
    return 2 * 2 * batch_size * batch_size * dim


def backbone_forward_flops(backbone, image_size):
    """Forward FLOPs of a KerasHub ViT backbone from its config; None for other kinds."""
    needed = ("patch_size", "num_layers", "hidden_dim", "mlp_dim")
    if not all(hasattr(backbone, a) for a in needed) or not hasattr(backbone, "use_class_token"):
        return None
    patch = backbone.patch_size
    patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
    return vit_forward_flops(
        tuple(image_size), patch, backbone.hidden_dim, backbone.num_layers,
        backbone.mlp_dim, class_token=backbone.use_class_token,
    )


def pretrained_tower_forward_flops(tower):
    """Per-example forward FLOPs of a `PretrainedTower` (ViT only, else None)."""
    return backbone_forward_flops(tower.backbone, tower.image_size)


def train_step_flops(mode, scale, batch_size, max_len, h_dim=None, h_forward=None,
                     precomputed=False, pooling="token", lit_head=False):
    """FLOPs of one training step, with the parts that make it up.

    `h_dim` and `h_forward` (per-example forward FLOPs of h, or None when unknown)
    are needed for `lit` and `3t`. Returns a dict: `trained_forward`,
    `frozen_forward`, `total` (= 3·trained_forward + frozen_forward; None when the
    frozen h runs online and its FLOPs are unknown).
    """
    e = scale.embed_dim
    if mode == "lit" and not lit_head:
        e = h_dim  # the text tower projects straight to h's width
    per_example = text_tower_forward_flops(scale, max_len, e)
    pairs = 1
    if mode in ("clip", "3t"):
        per_example += image_tower_forward_flops(scale, pooling, e)
    if mode == "lit" and lit_head:
        per_example += dense_flops(h_dim, e)
    if mode == "3t":
        # f_h, g_h on the main towers' embeddings; h_f, h_g on h's features.
        per_example += 2 * dense_flops(e, e) + 2 * dense_flops(h_dim, e)
        pairs = 3
    trained = batch_size * per_example + pairs * logits_flops(batch_size, e)
    if mode == "clip" or precomputed:
        frozen = 0
    else:
        frozen = None if h_forward is None else batch_size * h_forward
    total = None if frozen is None else 3 * trained + frozen
    return {"trained_forward": trained, "frozen_forward": frozen, "total": total}
