"""What `tt train` builds in the strategy's scope: the frozen third towers, the model, the
optimizer with its schedule, and the checkpoint (with its manager) that saves and
restores them together.

In use (inside `trainer.train`, which makes every argument):

```python
built = build_training(config, runtime, scale, tokenizer, info, files, steps, log=print)
built.model, built.manager.directory
```
"""

import dataclasses

from tt_cli import init_preset
from tt_cli import run_dir as rd
from tt_cli.checkpoints import RunCheckpoints
from tt_cli.data import schema
from tt_cli.presets import load_pretrained_text_tower, load_pretrained_tower


@dataclasses.dataclass(frozen=True)
class Built:
    """The trainable state of a run; `third_towers` are the frozen third towers as the input
    pipeline feeds them (`tt_cli.data.third_towers.ThirdTower`, in `--pretrained` order; none
    in CLIP mode)."""

    model: object  # models.ThreeTowers, compiled
    optimizer: object
    schedule: object  # learning rate by step
    warmup: int
    checkpoint: object  # tf.train.Checkpoint of model, optimizer and every weight
    manager: object  # tt_cli.checkpoints.RunCheckpoints numbering checkpoints by the optimizer's step
    scale: object  # models.Scale of the main image tower
    third_towers: tuple


def build_training(config, runtime, scale, tokenizer, info, files, steps, log, init=None):
    """Builds the model (its main image tower at `scale`, a `models.Scale`) and its optimizer
    in the strategy's scope (fresh weights from the run's seed, or f and g from the `init`
    preset, a `tt_cli.init_preset.InitPreset`) and the checkpoint manager; non-chief workers
    write their (identical) checkpoints aside, under `checkpoints/.worker-<id>`."""
    import tensorflow as tf

    from models import ThreeTowers
    from tt_cli.data.pipeline import check_features
    from tt_cli.data.third_towers import SHARDS, third_towers
    from tt_cli.strategy import worker_id
    from tt_cli.training.optimizer import make_optimizer, warmup_cosine

    warmup = config.warmup_steps if config.warmup_steps is not None else min(10_000, steps // 20)
    with runtime.strategy.scope():
        names = config.pretrained if config.mode != "clip" else ()
        if init is not None:
            towers = tuple(init_preset.third_towers(names, init, config.scale, log))
        else:
            towers = tuple(load_pretrained_tower(name, config.scale, log) for name in names)
        towers += tuple(load_pretrained_text_tower(name) for name in config.pretrained_text)
        inputs = third_towers(towers, config.embeddings, files, info)
        check_features(
            files, need_h_embedding=any(tower.source == SHARDS for tower in inputs), fields=schema.record_fields(info)
        )
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
        if config.remat:
            from models.remat import rematerialize_towers

            rematerialize_towers(model)
        schedule = warmup_cosine(config.lr, steps, warmup)
        optimizer = make_optimizer(schedule, config.weight_decay, config.beta2, config.grad_clip_norm, runtime.policy)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, weights=rd.checkpointed_weights(model))
    worker = None if runtime.chief else worker_id(runtime.strategy)
    manager = RunCheckpoints(checkpoint, config.out, config.keep_checkpoints, worker, log)
    return Built(
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        warmup=warmup,
        checkpoint=checkpoint,
        manager=manager,
        scale=scale,
        third_towers=inputs,
    )
