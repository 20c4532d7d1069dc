"""The optimizer of `tt train` (and of `tt bench`, which must time the same update).

AdamW with CLIP's β₂ = 0.98 and ε = 1e-6, global-norm clipping, and no weight decay on
biases, norms, embeddings, class tokens and temperatures.

Example:
>>> optimizer = make_optimizer(5e-4, weight_decay=0.1)
>>> type(optimizer).__name__, optimizer.global_clipnorm
('AdamW', 1.0)
"""

import keras

NO_DECAY = ["bias", "gamma", "beta", "embeddings", "class_token", "log_t"]


def make_optimizer(learning_rate, weight_decay=0.1, beta2=0.98, clip_norm=1.0, policy="float32", epsilon=1e-6):
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        beta_2=beta2,
        epsilon=epsilon,
        global_clipnorm=clip_norm or None,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    if policy == "mixed_float16":  # float16 needs loss scaling; bfloat16 does not
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def warmup_cosine(peak, steps, warmup):
    """Linear warm-up to `peak` over `warmup` steps, then cosine decay to 0 at `steps`."""
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else peak,
        decay_steps=max(steps - warmup, 1),
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )
