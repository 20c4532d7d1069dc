"""What `tt train` builds in the strategy's scope: the frozen third tower, the model, the
optimizer with its schedule, and the checkpoint (with its manager) that saves and
restores them together.

Example:
>>> built = build_training(config, runtime, tokenizer, info, files, steps, log=print)   # doctest: +SKIP
>>> built.model, built.manager.directory                                             # doctest: +SKIP
"""

import dataclasses
import os

from tt_cli import run_dir as rd
from tt_cli.presets import load_pretrained_tower


@dataclasses.dataclass(frozen=True)
class Built:
    """The trainable state of a run; `tower` is None in CLIP mode, `precomputed` says
    whether the shards' h embeddings replace running the tower."""

    model: object  # models.ThreeTowers, compiled
    optimizer: object
    schedule: object  # learning rate by step
    warmup: int
    checkpoint: object  # tf.train.Checkpoint of model, optimizer and every weight
    manager: object  # tf.train.CheckpointManager numbering checkpoints by the optimizer's step
    tower: object
    precomputed: bool
    scale: object  # models.scales.Scale


def _use_precomputed(info, tower):
    """Precomputed h embeddings count only if the same model and preprocessing made them."""
    made = (info.h_embedding or {}) if info else {}
    return bool(made) and made.get("pretrained") == tower.preset and made.get("preprocessing") == tower.preprocessing


def build_training(config, runtime, tokenizer, info, files, steps, log):
    """Builds the model and its optimizer in the strategy's scope (fresh weights from the
    run's seed) and the checkpoint manager; non-chief workers write their (identical)
    checkpoints aside, under `checkpoints/.worker-<id>`."""
    import tensorflow as tf

    from models import ThreeTowers, get_scale
    from tt_cli.data.pipeline import check_features
    from tt_cli.training.optimizer import make_optimizer, warmup_cosine
    from tt_cli.training.strategy import worker_id

    scale = get_scale(config.scale)
    warmup = config.warmup_steps if config.warmup_steps is not None else min(10_000, steps // 20)
    with runtime.strategy.scope():
        tower = load_pretrained_tower(config.pretrained, config.scale, log) if config.mode != "clip" else None
        precomputed = tower is not None and _use_precomputed(info, tower)
        check_features(files, need_h_embedding=precomputed)
        model = ThreeTowers.from_scale(
            scale, mode=config.mode, vocab_size=tokenizer.vocab_size, max_len=config.max_text_len,
            pretrained_tower=tower, pooling=config.pooling, aux_weight=config.aux_weight,
            lit_head=config.lit_head, loss=config.loss,
        )
        schedule = warmup_cosine(config.lr, steps, warmup)
        optimizer = make_optimizer(schedule, config.weight_decay, config.beta2, config.grad_clip_norm, runtime.policy)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, weights=rd.checkpointed_weights(model))
    checkpoint_dir = os.path.join(config.out, rd.CHECKPOINTS)
    if not runtime.chief:  # other workers write their (identical) copy aside
        checkpoint_dir = os.path.join(checkpoint_dir, f".worker-{worker_id(runtime.strategy)}")
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=config.keep_checkpoints,
                                         step_counter=optimizer.iterations)
    return Built(model=model, optimizer=optimizer, schedule=schedule, warmup=warmup, checkpoint=checkpoint,
                 manager=manager, tower=tower, precomputed=precomputed, scale=scale)
