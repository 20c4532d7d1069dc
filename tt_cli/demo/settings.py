"""What the built-in demo (`tt train` without `--data`) trains, and how flags change it.

The demo's own values replace the `TrainConfig` defaults; any flag the user set to
something other than its default wins (e.g. `--steps`, `--mode`, `--scale`,
`--batch-size`, `--lr`). A smaller `--steps` shrinks the whole demo in proportion:
the synthetic splits and the pretraining of the third tower scale with
`steps / DEMO.steps` (down to small floors), so `tt train --steps 6 --scale tiny`
runs the entire demo path in seconds (this is what the tests do).

Example:
>>> from tt_cli.training.config import TrainConfig
>>> s = demo_settings(TrainConfig(out=None))
>>> s.config.scale, s.config.steps == DEMO.steps, s.num_val
('tiny', True, 200)
>>> small = demo_settings(TrainConfig(out=None, steps=6))
>>> small.pretrain_steps, small.num_train
(4, 256)
"""

import dataclasses

from tt_cli.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class DemoDefaults:
    """Tuned so the whole demo (data, pretraining, 3T, evaluation) takes ~5 minutes on 2 CPU cores."""

    scale: str = "tiny"
    steps: int = 1200
    batch_size: int = 64
    lr: float = 1e-3
    vocab_size: int = 40  # the captions hold ~25 words; SentencePiece caps larger requests at ~45
    max_text_len: int = 16
    log_every: int = 100
    num_train: int = 6000
    num_val: int = 200
    num_pretrain: int = 4000
    pretrain_scale: str = "tiny"
    pretrain_steps: int = 600
    pretrain_batch_size: int = 64
    pretrain_lr: float = 1e-3
    train_seed: int = 1
    val_seed: int = 2
    pretrain_seed: int = 3


DEMO = DemoDefaults()
# Zero-shot prompts in the captions' own wording (CLIP also picks prompts per dataset).
DEMO_TEMPLATES = ["a {}", "{}", "a picture of a {}"]


@dataclasses.dataclass
class DemoSettings:
    config: TrainConfig  # the training run, with the demo's values filled in
    num_train: int
    num_val: int
    num_pretrain: int
    pretrain_steps: int
    image_size: int  # the synthetic images' size (the scale's, at most 64)


def demo_settings(config):
    """Fills the demo's values into `config` (in place) where the user kept the defaults."""
    defaults = TrainConfig()
    if config.out is None:
        config.out = "runs/demo"
    for key in ("scale", "batch_size", "lr", "vocab_size", "max_text_len", "log_every"):
        if getattr(config, key) == getattr(defaults, key):
            setattr(config, key, getattr(DEMO, key))
    if config.steps is None:
        config.steps = DEMO.steps
    if config.val_every == defaults.val_every:
        # One look half-way through a full-size demo; the final numbers come after training.
        config.val_every = config.steps // 2 if config.steps >= 100 else config.steps + 1
    if config.checkpoint_every == defaults.checkpoint_every:
        config.checkpoint_every = max(1, config.steps // 2)
    fraction = min(1.0, config.steps / DEMO.steps)

    def shrink(full, floor):
        return max(floor, int(round(full * fraction)))

    from models.scales import SCALES

    return DemoSettings(
        config=config,
        num_train=shrink(DEMO.num_train, 256),
        num_val=shrink(DEMO.num_val, 64),
        num_pretrain=shrink(DEMO.num_pretrain, 256),
        pretrain_steps=shrink(DEMO.pretrain_steps, 4),
        image_size=min(SCALES[config.scale].image_size, 64),
    )
