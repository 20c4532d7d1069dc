"""Every setting of a training run, with the defaults a user of OpenCLIP or big_vision
would expect. What was resolved is written to `run.json`. A config is resolved once
and never changed: a caller that fills in values makes a new one (`dataclasses.replace`).

Example:
>>> config = TrainConfig(data="shards/", out="runs/b16")
>>> config.mode, config.scale, config.pretrained
('3t', 'b16', ('imagenet21k',))
>>> TrainConfig(pretrained="/presets/a").pretrained   # one name is a tuple of one
('/presets/a',)
"""

import dataclasses

from tt_cli.errors import InvalidValueError

# Settings that define the model: a run cannot resume with different values. (Runs of
# earlier versions also recorded an `embed_dim` that was never applied: it is not compared.)
MODEL_KEYS = (
    "mode",
    "scale",
    "image_size",
    "pretrained",
    "pooling",
    "aux_weight",
    "lit_head",
    "max_text_len",
    "loss",
    "init",
    "pretrained_text",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data: str = None
    # Embedding folders of `tt data embed` for `data`, read beside it: one per pretrained tower.
    embeddings: tuple = ()
    out: str = "runs/tt"
    val_data: str = None
    # TFDS datasets (`data` or `val_data` of the form tfds:NAME[/CONFIG]:SPLIT): where they are
    # prepared (None: TFDS's default) and, for one tt does not know, which features hold its
    # fields ("image=...,caption=...,label=...,key=...").
    tfds_data_dir: str = None
    tfds_fields: str = None
    mode: str = "3t"
    # A KerasHub CLIP/SigLIP/MetaCLIP 2 preset f and g start from (`tt_cli.init_preset`); None: from scratch.
    init: str = None
    # The third towers, in order (3T learns from each); "init" is a frozen copy of the init preset's
    # image tower. Empty: that copy with `init`, else imagenet21k.
    pretrained: tuple = ()
    # Frozen KerasHub sentence encoders (`TextEmbedder` presets): 3T third towers on the text side, after `pretrained`.
    pretrained_text: tuple = ()
    scale: str = "b16"
    image_size: int = None  # side of the main image tower's input; None: the scale's own
    pooling: str = "token"
    aux_weight: float = 1.0  # weight of each 3T auxiliary term; 1 = the paper's equal thirds
    lit_head: bool = False
    # Of every pair: softmax (CLIP's, the paper's) or sigmoid (SigLIP's). None: the init preset's own, else softmax.
    loss: str = None
    batch_size: int = 256  # global, over all replicas and workers, per optimizer step
    accum_steps: int = 1  # micro-batches per step (gradient caching: the loss still sees the whole batch)
    remat: bool = False  # recompute each transformer block's forward in the backward pass (less memory)
    steps: int = None  # default: `epochs` passes over the training set
    epochs: float = 10.0
    lr: float = 5e-4
    warmup_steps: int = None  # default: 5% of the steps, at most 10,000
    weight_decay: float = 0.1
    grad_clip_norm: float = 1.0
    beta2: float = 0.98  # CLIP's choice for stable transformer training
    max_text_len: int = 32
    vocab_size: int = 32000
    tokenizer: str = None  # a SentencePiece model; trained on the captions when not given
    seed: int = 0
    shuffle_buffer: int = 10_000
    augment: bool = False  # random resized crops of the main image tower's input (`pipeline.random_crop`)
    strategy: str = "auto"
    precision: str = "auto"
    jit: bool = None  # None: on where it works (accelerators), off on CPU
    deterministic: bool = False
    log_every: int = 50
    checkpoint_every: int = 1000
    val_every: int = 1000
    keep_checkpoints: int = 3
    restart: bool = False
    wandb: str = None  # a Weights & Biases project to log to (chief only)
    wandb_run: str = None  # the W&B run's display name (None: W&B picks one)

    def __post_init__(self):
        pretrained = pretrained_names(self.pretrained) or (("init",) if self.init else ("imagenet21k",))
        object.__setattr__(self, "pretrained", pretrained)
        object.__setattr__(self, "pretrained_text", pretrained_names(self.pretrained_text))
        if self.pretrained_text and self.mode != "3t":
            raise InvalidValueError(
                f"pretrained text tower {self.pretrained_text[0]}: text third towers teach 3T; "
                f"{self.mode} has no place for them."
            )
        if self.loss is None and not self.init:
            object.__setattr__(self, "loss", "softmax")
        if "init" in pretrained and not self.init and self.mode != "clip":
            raise InvalidValueError(
                "pretrained tower 'init' is a frozen copy of the init preset's image tower; no init preset was given",
                remedy=("init", "PRESET", "(a KerasHub CLIP or SigLIP preset)"),
            )
        if self.lit_head and self.mode != "lit":
            raise InvalidValueError(
                f"lit_head: a head on the locked tower is LiT's; mode {self.mode} has no locked tower to put it on."
            )
        if self.mode == "lit" and len(self.pretrained) > 1:
            raise InvalidValueError(
                f"LiT locks one pretrained tower, not {len(self.pretrained)}",
                remedy=("pretrained", self.pretrained[0], "alone (3T learns from several)"),
            )

    def to_json(self):
        return dataclasses.asdict(self)

    @property
    def tfds(self):
        """The `tfds_catalog.TfdsOptions` of `tfds_data_dir` and `tfds_fields`."""
        from tt_cli.data.tfds_catalog import TfdsOptions

        return TfdsOptions.from_text(self.tfds_data_dir, self.tfds_fields)


def model_scale(scale, image_size=None):
    """The `models.scales.Scale` called `scale`, its image tower at `image_size` when given;
    `InvalidValueError` when `image_size` is not a multiple of its patch size. `tt train`,
    `tt bench` and `tt pretrain` build their trained ViT from it.

    Example:
    >>> model_scale("tiny", 48).image_size
    48
    """
    from models.scales import get_scale

    try:
        return get_scale(scale).at_image_size(image_size)
    except ValueError as e:
        raise InvalidValueError(f"{e}.") from None


def pretrained_names(value):
    """`pretrained` as a tuple of names: run.json of runs before several third towers
    holds one string, later ones a list.

    >>> pretrained_names("imagenet21k"), pretrained_names(["a", "b"])
    (('imagenet21k',), ('a', 'b'))
    """
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
