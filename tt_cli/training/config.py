"""Every setting of a training run, with the defaults a user of OpenCLIP or big_vision
would expect. What was resolved is written to `run.json`. A config is resolved once
and never changed: a caller that fills in values makes a new one (`dataclasses.replace`).

Example:
>>> config = TrainConfig(data="shards/", out="runs/b16")
>>> config.mode, config.scale, config.pretrained
('3t', 'b16', 'imagenet21k')
"""

import dataclasses

# Settings that define the model: a run cannot resume with different values. (Runs of
# earlier versions also recorded an `embed_dim` that was never applied: it is not compared.)
MODEL_KEYS = ("mode", "scale", "pretrained", "pooling", "aux_weight", "lit_head", "max_text_len", "loss")
# What a run.json written before a setting existed means by its absence.
EARLIER_DEFAULTS = {"loss": "softmax"}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data: str = None
    out: str = "runs/tt"
    val_data: str = None
    mode: str = "3t"
    pretrained: str = "imagenet21k"
    scale: str = "b16"
    pooling: str = "token"
    aux_weight: float = 1.0  # weight of each 3T auxiliary term; 1 = the paper's equal thirds
    lit_head: bool = False
    loss: str = "softmax"  # of every pair: softmax (CLIP's, the paper's) or sigmoid (SigLIP's)
    batch_size: int = 256  # global, over all replicas and workers, per optimizer step
    accum_steps: int = 1  # micro-batches per step (gradient caching: the loss still sees the whole batch)
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
    strategy: str = "auto"
    precision: str = "auto"
    jit: bool = None  # None: on where it works (accelerators), off on CPU
    deterministic: bool = False
    log_every: int = 50
    checkpoint_every: int = 1000
    val_every: int = 1000
    keep_checkpoints: int = 3
    restart: bool = False

    def to_json(self):
        return dataclasses.asdict(self)
