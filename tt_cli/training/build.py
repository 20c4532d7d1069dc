"""What `tt train` builds in the strategy's scope: the frozen third tower, the model, the
optimizer with its schedule, and the checkpoint (with its manager) that saves and
restores them together.

Example:
>>> built = build_training(config, runtime, tokenizer, info, files, steps, log=print)   # doctest: +SKIP
>>> built.model, built.manager.directory                                             # doctest: +SKIP
"""

import dataclasses
import os

from tt_cli import init_preset
from tt_cli import run_dir as rd
from tt_cli.presets import load_pretrained_text_tower, load_pretrained_tower
from tt_cli.training.config import model_scale


@dataclasses.dataclass(frozen=True)
class Built:
    """The trainable state of a run; `towers` are the frozen third towers in `--pretrained`
    order (none in CLIP mode), `precomputed` says for each whether precomputed embeddings
    replace running it."""

    model: object  # models.ThreeTowers, compiled
    optimizer: object
    schedule: object  # learning rate by step
    warmup: int
    checkpoint: object  # tf.train.Checkpoint of model, optimizer and every weight
    manager: object  # tf.train.CheckpointManager numbering checkpoints by the optimizer's step
    towers: tuple
    precomputed: tuple  # of bool, one per tower
    scale: object  # models.scales.Scale
    # (embedding shard of each training shard, width) per `--embeddings` folder, read in lockstep
    embeddings: tuple = ()

    @property
    def tower(self):
        """The first (in LiT the only) third tower; None in CLIP mode."""
        return self.towers[0] if self.towers else None


def _use_precomputed(info, tower):
    """Precomputed h embeddings count only if the same model and preprocessing made them."""
    made = (info.h_embedding or {}) if info else {}
    return bool(made) and made.get("pretrained") == tower.preset and made.get("preprocessing") == tower.preprocessing


def embedding_folders(folders, towers, files, info):
    """(embedding shards, width) of each embedding folder, after checking it against the
    training shards and its tower (folder i belongs to tower i); one line when it does not fit."""
    from tt_cli.data.lockstep import check_tower, embedding_files
    from tt_cli.errors import InvalidValueError

    if folders and not towers:
        raise InvalidValueError("embeddings are the third tower's; a CLIP run has none (train 3t or lit).")
    if len(folders) > len(towers):
        raise InvalidValueError(
            f"{len(folders)} embedding folders for {len(towers)} pretrained tower(s): "
            "give one embedding folder per tower."
        )
    paired = []
    for folder, tower in zip(folders, towers):
        check_tower(folder, tower)
        paired.append(embedding_files(folder, files, info))
    return tuple(paired)


def build_training(config, runtime, tokenizer, info, files, steps, log, init=None):
    """Builds the model and its optimizer in the strategy's scope (fresh weights from the
    run's seed, or f and g from the `init` preset, a `tt_cli.init_preset.InitPreset`) and
    the checkpoint manager; non-chief workers write their (identical) checkpoints aside,
    under `checkpoints/.worker-<id>`."""
    import tensorflow as tf

    from models import ThreeTowers
    from tt_cli.data.pipeline import check_features
    from tt_cli.strategy import worker_id
    from tt_cli.training.optimizer import make_optimizer, warmup_cosine

    scale = model_scale(config.scale, config.image_size)  # the main image tower at --image-size
    warmup = config.warmup_steps if config.warmup_steps is not None else min(10_000, steps // 20)
    with runtime.strategy.scope():
        names = config.pretrained if config.mode != "clip" else ()
        if init is not None:
            towers = tuple(init_preset.third_towers(names, init, config.scale, log))
        else:
            towers = tuple(load_pretrained_tower(name, config.scale, log) for name in names)
        towers += tuple(load_pretrained_text_tower(name) for name in config.pretrained_text)
        embeddings = embedding_folders(config.embeddings, towers, files, info)
        # Tower k's embeddings: beside the data (folder k of `--embeddings`), else for the first
        # tower only, inside the shards (made by an earlier `tt data embed`).
        precomputed = tuple(
            k < len(embeddings) or (k == 0 and _use_precomputed(info, tower)) for k, tower in enumerate(towers)
        )
        check_features(files, need_h_embedding=bool(towers) and precomputed[0] and not embeddings)
        if init is not None:
            model = init_preset.build_model(config, init, towers, log)
        else:
            model = ThreeTowers.from_scale(
                scale,
                mode=config.mode,
                vocab_size=tokenizer.vocab_size,
                max_len=config.max_text_len,
                pretrained_tower=list(towers) or None,
                pooling=config.pooling,
                aux_weight=config.aux_weight,
                lit_head=config.lit_head,
                loss=config.loss,
            )
        schedule = warmup_cosine(config.lr, steps, warmup)
        optimizer = make_optimizer(schedule, config.weight_decay, config.beta2, config.grad_clip_norm, runtime.policy)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, weights=rd.checkpointed_weights(model))
    checkpoint_dir = os.path.join(config.out, rd.CHECKPOINTS)
    if not runtime.chief:  # other workers write their (identical) copy aside
        checkpoint_dir = os.path.join(checkpoint_dir, f".worker-{worker_id(runtime.strategy)}")
    manager = tf.train.CheckpointManager(
        checkpoint, checkpoint_dir, max_to_keep=config.keep_checkpoints, step_counter=optimizer.iterations
    )
    return Built(
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        warmup=warmup,
        checkpoint=checkpoint,
        manager=manager,
        towers=towers,
        precomputed=precomputed,
        scale=scale,
        embeddings=embeddings,
    )
