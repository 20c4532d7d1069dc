"""`tt train`: flags in, `TrainConfig` out, `train()` called. No ML logic here."""

import click
from click.core import ParameterSource

from tt_cli.commands.option_types import (
    BATCH,
    COUNT,
    COUNT_OR_ZERO,
    NON_NEGATIVE,
    OUTPUT_FOLDER,
    POSITIVE,
    SCALE,
    SEED,
    TEXT_LEN,
    VOCAB_SIZE,
    tokenizer_file,
)
from tt_cli.commands.tfds_options import tfds_options
from tt_cli.errors import InvalidValueError
from tt_cli.training.config import TrainConfig

D = TrainConfig()  # the defaults, shown in --help


@click.command(context_settings={"show_default": True})
@click.option(
    "--data",
    help="Training shards: a `tt data convert` directory or a glob, or a TFDS dataset tfds:NAME[/CONFIG]:SPLIT. "
    "Omit for the built-in demo.",
)
@click.option(
    "--embeddings",
    multiple=True,
    help="An embedding folder of `tt data embed` for --data (its third tower's embeddings, read beside "
    "the shards: h never runs).",
)
@click.option("--val-data", help="Held-out shards for zero-shot accuracy (if labelled) and retrieval recall.")
@tfds_options
@click.option(
    "--out", type=OUTPUT_FOLDER, default=None, help="Run directory.  [default: runs/tt, or runs/demo for the demo]"
)
@click.option("--mode", type=click.Choice(["3t", "lit", "clip"]), default=D.mode)
@click.option(
    "--init",
    help="Start the image and text towers from a KerasHub CLIP, SigLIP (2) or MetaCLIP 2 preset: a name "
    "(clip_vit_base_patch16, siglip2_base_patch16_224, ...), a kaggle:// or hf:// handle, or a local preset "
    "directory. Its tokenizer, sequence length, image size and normalisation, temperature (and SigLIP's bias "
    "and sigmoid loss) come with it; it is copied into --out. LiT locks its image tower; 3T's third tower is "
    "by default a frozen copy of it.",
)
@click.option(
    "--pretrained",
    multiple=True,
    help="Third tower: imagenet21k | imagenet (by --scale), a KerasHub preset name, "
    "kaggle:// or hf:// handle, or a local preset directory; with --init also 'init' (a frozen copy of "
    "the preset's image tower). Repeat it for several third towers (3T only).  "
    "[default: imagenet21k; with --init: init]",
)
@click.option(
    "--pretrained-text",
    multiple=True,
    help="A third tower on the text side (3T only; off unless given): a frozen KerasHub sentence encoder, a "
    "TextEmbedder preset (all_minilm_l6_v2_en, ...) or directory, that teaches f and g through its own pair of "
    "heads, from the caption. Repeatable; after the --pretrained towers.",
)
@click.option("--scale", type=SCALE, default=D.scale, help="Model size; tiny/small for CPU.")
@click.option(
    "--image-size",
    type=COUNT,
    default=None,
    help="Train the image tower at NxN, a multiple of the scale's patch size (not with --mode lit).  "
    "[default: the scale's, e.g. 224; tiny: 32]",
)
@click.option("--pooling", type=click.Choice(["token", "gap"]), default=D.pooling, help="Image tower pooling.")
@click.option(
    "--aux-weight",
    type=NON_NEGATIVE,
    default=D.aux_weight,
    help="3T: weight of each auxiliary loss (1 = equal thirds).",
)
@click.option("--lit-head/--no-lit-head", default=D.lit_head, help="LiT: a linear head on the locked tower.")
@click.option(
    "--loss",
    type=click.Choice(["softmax", "sigmoid"]),
    default=None,
    help="Loss of every pair: softmax (CLIP's InfoNCE) or sigmoid (SigLIP's, with a learned bias).  "
    "[default: softmax; with --init the preset's own]",
)
@click.option("--batch-size", type=BATCH, default=D.batch_size, help="Global batch size (per optimizer step).")
@click.option(
    "--accum-steps",
    type=COUNT,
    default=D.accum_steps,
    help="Micro-batches per step: the loss still covers the whole batch (gradient caching), "
    "activation memory falls about N-fold, one more forward pass. Must divide the batch per replica.",
)
@click.option(
    "--remat",
    is_flag=True,
    help="Rematerialise each transformer block of the image and text towers: its activations are "
    "recomputed in the backward pass instead of kept (much less memory, about one more forward pass; same values).",
)
@click.option("--steps", type=COUNT, default=None, help="Training steps.  [default: --epochs passes]")
@click.option("--epochs", type=POSITIVE, default=D.epochs)
@click.option("--lr", type=POSITIVE, default=D.lr, help="Peak learning rate (AdamW, warm-up then cosine decay).")
@click.option("--warmup-steps", type=COUNT_OR_ZERO, default=None, help="[default: 5% of the steps, at most 10000]")
@click.option("--weight-decay", type=NON_NEGATIVE, default=D.weight_decay)
@click.option(
    "--grad-clip-norm",
    type=NON_NEGATIVE,
    default=D.grad_clip_norm,
    help="Clip the global gradient norm to this; 0 turns clipping off.",
)
@click.option("--max-text-len", type=TEXT_LEN, default=D.max_text_len)
@click.option("--vocab-size", type=VOCAB_SIZE, default=D.vocab_size, help="Tokenizer vocabulary when one is trained.")
@click.option("--tokenizer", callback=tokenizer_file, help="A SentencePiece .model to use instead of training one.")
@click.option(
    "--augment",
    is_flag=True,
    help="Random resized crops of the image tower's input (OpenCLIP's: 90-100% of the area, aspect 3:4-4:3); "
    "for small data that overfits. Not with --mode lit.",
)
@click.option("--seed", type=SEED, default=D.seed)
@click.option("--strategy", default=D.strategy, help="auto | default | mirrored | multiworker | tpu")
@click.option("--precision", default=D.precision, help="auto | float32 | bfloat16 | float16")
@click.option("--jit/--no-jit", default=None, help="XLA compilation.  [default: on, except with several CPU replicas]")
@click.option("--deterministic", is_flag=True, help="Deterministic ops (bit-reproducible, slower).")
@click.option("--log-every", type=COUNT, default=D.log_every)
@click.option("--checkpoint-every", type=COUNT, default=D.checkpoint_every)
@click.option("--val-every", type=COUNT, default=D.val_every)
@click.option("--restart", is_flag=True, help="Ignore existing checkpoints in --out and start over.")
@click.option(
    "--wandb",
    metavar="PROJECT",
    help="Also log to this Weights & Biases project: the scalars, the settings, the curves at the end "
    "(needs tt[wandb]; WANDB_MODE=offline works without a network).",
)
@click.option("--wandb-run", metavar="NAME", help="Display name of the W&B run.  [default: W&B picks one]")
def train(data, out, **flags):
    """Train a 3T, LiT or CLIP model (defaults: 3T, ImageNet-21k ViT-B/16 third tower, B/16)."""
    context = click.get_current_context()
    explicit = {name for name in context.params if context.get_parameter_source(name) is not ParameterSource.DEFAULT}
    if flags["init"]:
        _check_init_flags(data, explicit)
    config = TrainConfig(data=data, out=out, **flags)
    if config.wandb_run and not config.wandb:
        raise InvalidValueError("--wandb-run names a run of the --wandb project; give the project too.")
    if config.wandb:
        from tt_cli.optional import require

        require("wandb", "wandb", "--wandb")  # before any work
    if data is None and config.embeddings:
        raise InvalidValueError("--embeddings are read beside --data; the demo makes its own data.")
    if data is None:
        from tt_cli.demo.run import run_demo

        # The demo replaces defaults with its own, never a flag the user gave (even at its default).
        run_demo(config, explicit=explicit)
        return
    from tt_cli.training.prepare import ResumeRefused
    from tt_cli.training.run import run_training

    try:
        run_training(config)
    except ResumeRefused as e:
        flag = "--" + e.setting.replace("_", "-")  # TrainConfig's fields are the flags' names
        raise ResumeRefused(
            e.out, flag, e.previous, e.given, e.note, advice="pass --restart to start over or choose another --out"
        ) from None


# What a preset given to --init decides, so that these flags would say nothing.
REPLACED_BY_INIT = ("max_text_len", "vocab_size", "tokenizer", "pooling", "image_size")


def _check_init_flags(data, explicit):
    if data is None:
        raise InvalidValueError("--init fine-tunes a preset on --data; the demo trains from scratch on its own data.")
    given = [name for name in REPLACED_BY_INIT if name in explicit]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise InvalidValueError(f"{flag}: a run with --init takes the preset's own (its tokenizer and image tower).")
