"""Shared fixtures: tiny KerasHub presets made here with `save_to_preset`.

Nothing here downloads: tests use presets they make themselves. Keras is imported
lazily inside fixtures so that TF-free tests (which run `tt` in subprocesses) do not
pay for it.
"""

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_tiny_vit_preset(directory, image_size=32, hidden_dim=16):
    """A tiny ViT with its own image converter: a stand-in for a real ViT preset."""
    import keras_hub

    backbone = keras_hub.models.ViTBackbone(
        image_shape=(image_size, image_size, 3),
        patch_size=8,
        num_layers=1,
        num_heads=2,
        hidden_dim=hidden_dim,
        mlp_dim=32,
    )
    backbone.save_to_preset(directory)
    keras_hub.layers.ViTImageConverter(
        image_size=(image_size, image_size), scale=1 / 127.5, offset=-1.0
    ).save_to_preset(directory)
    return str(directory)


def make_tiny_resnet_preset(directory):
    """A tiny ResNet (a CNN backbone) without a converter: h uses default preprocessing."""
    import keras_hub

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )
    backbone.save_to_preset(directory)
    return str(directory)


@pytest.fixture(scope="session")
def tiny_vit_preset(tmp_path_factory):
    return make_tiny_vit_preset(tmp_path_factory.mktemp("tiny_vit_preset"))


@pytest.fixture(scope="session")
def second_tiny_vit_preset(tmp_path_factory):
    """Another third tower: wider features, larger images (3T with two teachers)."""
    return make_tiny_vit_preset(tmp_path_factory.mktemp("second_tiny_vit_preset"), image_size=48, hidden_dim=24)


@pytest.fixture(scope="session")
def tiny_resnet_preset(tmp_path_factory):
    return make_tiny_resnet_preset(tmp_path_factory.mktemp("tiny_resnet_preset"))


@pytest.fixture(scope="session")
def tiny_clip_preset(tmp_path_factory):
    """A tiny `CLIPBackbone` preset with its byte-pair tokenizer (`tests/support/tiny_clip_presets.py`)."""
    from support.tiny_clip_presets import make_tiny_clip_preset

    return make_tiny_clip_preset(tmp_path_factory.mktemp("tiny_clip_preset"))


@pytest.fixture(scope="session")
def tiny_siglip_preset(tmp_path_factory):
    """A tiny `SigLIPBackbone` preset with its SentencePiece tokenizer."""
    from support.tiny_clip_presets import make_tiny_siglip_preset

    return make_tiny_siglip_preset(tmp_path_factory.mktemp("tiny_siglip_preset"))


@pytest.fixture(scope="session")
def tiny_metaclip_2_preset(tmp_path_factory):
    """A tiny `MetaCLIP2Backbone` preset with its SentencePiece tokenizer."""
    from support.tiny_clip_presets import make_tiny_metaclip_2_preset

    return make_tiny_metaclip_2_preset(tmp_path_factory.mktemp("tiny_metaclip_2_preset"))


@pytest.fixture(scope="session")
def tiny_sentence_encoder_preset(tmp_path_factory):
    """A tiny `BertTextEmbedder` preset: a text third tower."""
    from support.tiny_clip_presets import make_tiny_sentence_encoder_preset

    return make_tiny_sentence_encoder_preset(tmp_path_factory.mktemp("tiny_sentence_encoder_preset"))


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """A labelled, captioned dataset directory: 96 coloured-shape images at 32x32."""
    from tt_cli.demo.shapes import write_demo_split

    return write_demo_split(str(tmp_path_factory.mktemp("tiny_shards")), 96, seed=0, image_size=32, num_shards=2)


@pytest.fixture(scope="session")
def tiny_val_shards(tmp_path_factory):
    from tt_cli.demo.shapes import write_demo_split

    return write_demo_split(str(tmp_path_factory.mktemp("tiny_val_shards")), 40, seed=1, image_size=32, num_shards=1)


# XLA compilation would double the time of these 4-step runs; one test trains with it on.
TINY_TRAIN_FLAGS = [
    "--scale",
    "tiny",
    "--steps",
    "4",
    "--batch-size",
    "16",
    "--vocab-size",
    "64",
    "--max-text-len",
    "12",
    "--log-every",
    "2",
    "--checkpoint-every",
    "2",
    "--no-jit",
]


def run_tt(args):
    """Runs `tt ARGS` in this process; returns the Click result (exit code, output)."""
    from click.testing import CliRunner

    from tt_cli.main import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_shards, tiny_vit_preset):
    """tiny_run(mode) -> a run directory trained for 4 steps by the real `tt train`."""
    runs = {}

    def make(mode):
        if mode not in runs:
            out = str(tmp_path_factory.mktemp(f"tiny_run_{mode}"))
            result = run_tt(
                [
                    "train",
                    "--data",
                    tiny_shards,
                    "--out",
                    out,
                    "--mode",
                    mode,
                    "--pretrained",
                    tiny_vit_preset,
                    *TINY_TRAIN_FLAGS,
                ]
            )
            assert result.exit_code == 0, result.output
            runs[mode] = out
        return runs[mode]

    return make


def first_layout(record):
    """run.json as tt wrote it before run.json had a "format": the settings in "config" and
    again at the top level, beside the values it resolved."""
    config, resolved = record["config"], record["resolved"]
    presets = [tower["preset"] for tower in resolved["third_towers"]]
    copies = {k: config[k] for k in ("mode", "scale", "max_text_len", "batch_size", "accum_steps", "loss")}
    return {
        "config": config,
        **copies,
        "scale_config": resolved["scale"],
        "pretrained": presets[0] if presets else None,
        "pretrained_towers": presets,
        "precomputed_h_embedding": False,
        "precomputed_h_embeddings": [False] * len(presets),
        **{k: resolved[k] for k in ("vocab_size", "steps", "warmup_steps", "precision", "jit", "strategy", "replicas")},
        "dataset": record["dataset"],
        "versions": record["versions"],
    }
