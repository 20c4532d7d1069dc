"""What the built-in demo (`tt train` without `--data`) trains, and how flags change it.

The demo's own values replace the `TrainConfig` defaults; any flag the user gave wins,
even one given at its `tt train` default (e.g. `--steps`, `--mode`, `--scale`,
`--batch-size 256`, `--lr`): the command layer says which flags were given. A
smaller `--steps` shrinks the whole demo in proportion: the synthetic splits and the
pretraining of the third tower scale with `steps / DEMO.steps` (down to small
floors), so `tt train --steps 6 --scale tiny` runs the entire demo path in seconds
(this is what the tests do).

Example:
>>> from tt_cli.training.config import TrainConfig
>>> s = demo_settings(TrainConfig(out=None))
>>> s.config.scale, s.config.steps == DEMO.steps, s.num_val
('tiny', True, 200)
>>> demo_settings(TrainConfig(out=None, batch_size=256), explicit={"batch_size"}).config.batch_size
256
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


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    config: TrainConfig  # the training run, with the demo's values filled in
    num_train: int
    num_val: int
    num_pretrain: int
    pretrain_steps: int
    image_size: int  # the synthetic images' size (the scale's, at most 64)


# TrainConfig fields whose demo value replaces the default unless the user gave the flag.
DEMO_KEYS = ("scale", "batch_size", "lr", "vocab_size", "max_text_len", "log_every")


def demo_settings(config, explicit=frozenset()):
    """The demo's settings: `config` (a `TrainConfig`, not changed) with the demo's values
    for every field not named in `explicit` (the fields the user set)."""
    demo = {key: getattr(DEMO, key) for key in DEMO_KEYS if key not in explicit}
    steps = config.steps if config.steps is not None else DEMO.steps
    if "val_every" not in explicit:
        # One look half-way through a full-size demo; the final numbers come after training.
        demo["val_every"] = steps // 2 if steps >= 100 else steps + 1
    if "checkpoint_every" not in explicit:
        demo["checkpoint_every"] = max(1, steps // 2)
    config = dataclasses.replace(config, out=config.out or "runs/demo", steps=steps, **demo)
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
