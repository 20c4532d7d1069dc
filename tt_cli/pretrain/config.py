"""The settings of one `tt pretrain` run, and which of them a resumed run must keep.

Example:
>>> config = PretrainConfig(data="shards/labelled", out="presets/shapes_vit", scale="tiny", steps=200)
>>> config.to_json()["batch_size"]
128
"""

import dataclasses

PRETRAIN_JSON = "tt_pretrain.json"  # the summary, written last: its presence means the preset is finished
# Settings a resumed run must share with the run it continues: the model, and what decides
# which examples each step sees (the data itself is compared by its shards' fingerprint).
RESUME_KEYS = ("scale", "image_size", "batch_size", "augment", "seed", "shuffle_buffer")


@dataclasses.dataclass
class PretrainConfig:
    data: str = None
    out: str = None
    val_data: str = None  # default: hold out `holdout` of `data`
    scale: str = "b16"
    image_size: int = None  # default: the scale's
    steps: int = None  # default: `epochs` passes over the training examples
    epochs: float = 10.0
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = None  # default: 5% of the steps
    weight_decay: float = 0.05
    holdout: float = 0.1
    augment: bool = True  # random horizontal flips
    seed: int = 0
    shuffle_buffer: int = 10_000
    strategy: str = "auto"
    precision: str = "auto"
    jit: bool = None  # None: where it works (as `tt train`)
    deterministic: bool = False
    overwrite: bool = False  # replace a finished preset, or start an unfinished one over
    log_every: int = 50
    checkpoint_every: int = 1000
    command: str = None  # the command line, recorded in tt_pretrain.json

    def to_json(self):
        return dataclasses.asdict(self)
