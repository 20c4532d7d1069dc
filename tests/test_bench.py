"""`tt bench`: the CLI at the tiny scale, its JSON, and FLOPs against a hand count.

Speed is measured by `tt bench`, never asserted here: the CLI test only
checks that every mode and field is present and sane.
"""

import json
import math

import pytest

from models.scales import Scale
from tt_cli.bench import flops
from tt_cli.errors import TtError

MODE_FIELDS = {
    "mode",
    "pairs_per_second",
    "step_ms",
    "step_ms_min",
    "step_ms_max",
    "step_ms_all",
    "warmup_seconds",
    "peak_memory_bytes",
    "peak_memory_source",
    "flops_per_step",
    "flops_trained_forward",
    "flops_frozen_forward",
    "achieved_flops_per_second",
    "time_vs_clip",
    "pipeline_over_training",
    "trainable_parameters",
    "final_loss",
}
HEADER_FIELDS = {
    "device",
    "strategy",
    "replicas",
    "precision",
    "jit",
    "scale",
    "batch_size",
    "steps",
    "tensorflow",
    "keras",
    "keras_hub",
    "load_average_start",
    "load_average_end",
}


@pytest.mark.slow
def test_bench_cli_tiny_all_modes(tmp_path, tiny_shards):
    # In a process of its own, as a user runs it: a process that ran other models before
    # can reuse freed pages, and a mode's peak above its baseline would then read as 0.
    from support.data_corpus import run_tt

    out = tmp_path / "bench.json"
    result = run_tt(
        "bench",
        "--scale",
        "tiny",
        "--batch-size",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--vocab-size",
        "64",
        "--max-text-len",
        "12",
        "--modes",
        "clip,lit,3t,3t-precomputed",
        "--data",
        tiny_shards,
        "--pipeline-batches",
        "3",
        "--no-jit",
        "--json",
        out,
        timeout=900,
    )
    assert "pairs/s" in result.stdout and "3t-precomputed" in result.stdout
    report = json.loads(out.read_text())
    assert HEADER_FIELDS <= set(report["header"])
    assert report["header"]["precision"] == "float32" and report["header"]["jit"] is False  # CPU default, --no-jit
    modes = {r["mode"]: r for r in report["modes"]}
    assert list(modes) == ["clip", "lit", "3t", "3t-precomputed"]
    for r in modes.values():
        assert MODE_FIELDS <= set(r), MODE_FIELDS - set(r)
        for key in (
            "pairs_per_second",
            "step_ms",
            "peak_memory_bytes",
            "flops_per_step",
            "achieved_flops_per_second",
            "pipeline_over_training",
            "trainable_parameters",
        ):
            assert r[key] > 0, (r["mode"], key)
        assert len(r["step_ms_all"]) == 2 and r["step_ms_min"] <= r["step_ms"] <= r["step_ms_max"]
        assert math.isclose(r["pairs_per_second"], 8 / (r["step_ms"] / 1e3))
        assert math.isclose(r["achieved_flops_per_second"], r["flops_per_step"] / (r["step_ms"] / 1e3))
        assert math.isfinite(r["final_loss"])
    assert modes["clip"]["time_vs_clip"] == 1.0
    # The frozen h costs its forward only when it runs online.
    assert modes["3t-precomputed"]["flops_frozen_forward"] == 0 and modes["clip"]["flops_frozen_forward"] == 0
    assert modes["3t"]["flops_frozen_forward"] > 0
    assert (
        modes["3t"]["flops_per_step"] - modes["3t-precomputed"]["flops_per_step"] == modes["3t"]["flops_frozen_forward"]
    )
    assert modes["3t"]["flops_trained_forward"] == modes["3t-precomputed"]["flops_trained_forward"]
    pipeline = report["pipeline"]
    assert pipeline["available"] and pipeline["pairs_per_second"] > 0 and pipeline["batches"] == 3
    assert math.isclose(
        modes["clip"]["pipeline_over_training"], pipeline["pairs_per_second"] / modes["clip"]["pairs_per_second"]
    )


# A config small enough to count by hand: 8x8 images in 4x4 patches (4 patches + a
# class token = 5 tokens), width 8, one layer, MLP 16, embeddings of 4, 3 text tokens.
HAND = Scale("hand", image_size=8, patch_size=4, width=8, depth=1, num_heads=2, mlp_dim=16, embed_dim=4)


def hand_model(mode, h=None):
    from models import ThreeTowers

    return ThreeTowers.from_scale(HAND, mode=mode, vocab_size=10, max_len=3, pretrained_tower=h)


def hand_h():
    """A 6-d ViT h: 8x8 images in 4x4 patches + a class token, width 6, one layer, MLP 12."""
    import keras_hub

    from models import PretrainedTower

    backbone = keras_hub.models.ViTBackbone(
        image_shape=(8, 8, 3), patch_size=4, num_layers=1, num_heads=2, hidden_dim=6, mlp_dim=12
    )
    return PretrainedTower(backbone)


@pytest.mark.slow
def test_flops_match_a_hand_count():
    from models import ImageTower, TextTower

    # Image tower f, per image:
    patch_embedding = 2 * 4 * (4 * 4 * 3) * 8  # 3072
    image_layer = (2 * 5 * 8 * 24) + (2 * 5 * 5 * 8) + (2 * 5 * 5 * 8) + (2 * 5 * 8 * 8) + (2 * 2 * 5 * 8 * 16)
    assert image_layer == 1920 + 400 + 400 + 640 + 2560 == 5920
    f = patch_embedding + image_layer + 2 * 8 * 4  # + projection of the class token: 9056
    # Text tower g over 3 tokens, per caption:
    text_layer = (2 * 3 * 8 * 24) + (2 * 3 * 3 * 8) * 2 + (2 * 3 * 8 * 8) + (2 * 2 * 3 * 8 * 16)
    assert text_layer == 1152 + 288 + 384 + 1536 == 3360
    g = text_layer + 2 * 8 * 4  # 3424
    assert flops.layer_forward_flops(ImageTower.from_scale(HAND), (8, 8, 3), "uint8") == f == 9056
    assert flops.layer_forward_flops(TextTower.from_scale(HAND, 10, max_len=3), (3,), "int32") == g == 3424

    # CLIP, batch 2: both logit matrices of the one pair are 2x2 over 4-d embeddings.
    clip = flops.train_step_flops(hand_model("clip"), batch_size=2)
    assert clip == {
        "trained_forward": 2 * (9056 + 3424) + 2 * (2 * 2 * 2 * 4),
        "frozen_forward": 0,
        "recomputed_forward": 0,
        "remat_forward": 0,
        "total": 3 * 25024,
    }
    # In micro-batches (gradient caching) the towers run forward once more, the logits do not.
    accumulated = flops.train_step_flops(hand_model("clip"), batch_size=2, accum_steps=2)
    assert accumulated["recomputed_forward"] == 2 * (9056 + 3424)
    assert accumulated["total"] == 3 * 25024 + 2 * (9056 + 3424)
    # Rematerialised blocks run forward again in the backward pass: counted as the towers' forward.
    rematerialized = flops.train_step_flops(hand_model("clip"), batch_size=2, remat=True)
    assert rematerialized["remat_forward"] == 2 * (9056 + 3424)
    assert rematerialized["total"] == 3 * 25024 + 2 * (9056 + 3424)

    # The 6-d h, per image: patch embedding, one layer over 5 tokens (no projection).
    h_layer = (2 * 5 * 6 * 18) + (2 * 5 * 5 * 6) * 2 + (2 * 5 * 6 * 6) + (2 * 2 * 5 * 6 * 12)
    h_forward = 2 * 4 * (4 * 4 * 3) * 6 + h_layer
    assert h_forward == 2304 + 3480 == 5784
    h = hand_h()
    assert flops.pretrained_tower_forward_flops(h) == h_forward

    # 3T with the 6-d h: four heads, three pairs of logits.
    heads = 2 * (2 * 4 * 4) + 2 * (2 * 6 * 4)  # f_h, g_h (4->4) and h_f, h_g (6->4) = 160
    trained = 2 * (9056 + 3424 + heads) + 3 * 64
    assert trained == 25472
    online = flops.train_step_flops(hand_model("3t", h), 2)
    assert online == {
        "trained_forward": 25472,
        "frozen_forward": 2 * 5784,
        "recomputed_forward": 0,
        "remat_forward": 0,
        "total": 3 * 25472 + 2 * 5784,
    }
    precomputed = flops.train_step_flops(hand_model("3t", h), 2, precomputed=True)
    assert precomputed["total"] == 3 * 25472

    # LiT without a head: g projects to h's width (6); h runs online.
    lit = flops.train_step_flops(hand_model("lit", h), 2)
    g6 = 3360 + 2 * 8 * 6
    assert lit["total"] == 3 * (2 * g6 + 2 * 2 * 2 * 2 * 6) + 2 * 5784


def test_flops_of_real_backbones_are_read_from_the_built_model(tiny_resnet_preset):
    import keras
    import keras_hub

    from models import PretrainedTower

    backbone = keras_hub.models.ViTBackbone(
        image_shape=(8, 8, 3), patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    assert flops.layer_forward_flops(backbone, (8, 8, 3)) == 3072 + 5920
    # A CNN h needs no formula either: its count is that of its convolutions, each
    # 2 x (output positions) x (kernel height x width x input channels) x (output channels).
    resnet = PretrainedTower.from_preset(tiny_resnet_preset)
    convs = [layer for layer in resnet.backbone._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
    expected = 0
    for conv in convs:
        kh, kw, cin, cout = conv.kernel.shape
        out = keras.Model(resnet.backbone.input, conv.output).compute_output_shape((1, 224, 224, 3))
        expected += 2 * out[1] * out[2] * kh * kw * cin * cout
    assert len(convs) >= 5 and flops.pretrained_tower_forward_flops(resnet) == expected


def test_unknown_mode_is_a_user_error():
    from tt_cli.bench.runner import parse_modes

    assert parse_modes("clip, 3t-precomputed") == ("clip", "3t-precomputed")
    with pytest.raises(TtError, match="unknown mode"):
        parse_modes("clip,siglip")


def test_peak_memory_window_sees_an_allocation_and_resets_after_it():
    from tt_cli.bench.memory import current_bytes, peak_bytes, reset_peak

    reset_peak()
    before = current_bytes()
    block = bytearray(64 * 2**20)  # zero-filled: every page touched
    peak, source = peak_bytes()
    assert peak >= before + 60 * 2**20, (peak, before, source)
    del block
    reset_peak()  # a new window: the freed block is not in it
    assert peak_bytes()[0] < peak


def test_pipeline_timing_runs_the_training_input_on_the_shards(tiny_shards):
    from tt_cli.bench.pipeline_timing import time_pipeline

    result = time_pipeline(tiny_shards, batch_size=8, image_size=(32, 32), max_text_len=12, vocab_size=64, batches=2)
    assert result["available"] and (result["batches"], result["files"], result["examples"]) == (2, 2, 96)
    assert result["pairs_per_second"] == pytest.approx(2 * 8 / result["seconds"])
    with pytest.raises(TtError, match="no such file"):
        time_pipeline(tiny_shards + "-missing", 8, (32, 32), 12, 64, batches=2)


def test_results_table_names_every_mode_with_its_pipeline_ratio():
    from rich.console import Console

    from tt_cli.bench.report import add_pipeline_ratios, print_results

    header = dict.fromkeys(HEADER_FIELDS, "x") | {"scale": "tiny", "batch_size": 8, "steps": 3, "warmup": 1}
    header |= {"jit": False, "pretrained": None, "accum_steps": 2, "python": "3.11", "baseline_memory_bytes": 2**30}
    header |= {"load_average_start": 0.5, "load_average_end": 0.75}
    modes = []
    for mode, pps in (("clip", 400.0), ("3t", 200.0)):
        step_ms = 8000 / pps
        modes.append(
            dict.fromkeys(MODE_FIELDS, None)
            | {"mode": mode, "pairs_per_second": pps, "step_ms": step_ms, "step_ms_min": step_ms}
            | {"step_ms_max": step_ms, "peak_memory_bytes": 3 * 2**20, "peak_memory_source": "VmHWM"}
            | {"flops_per_step": 2.5e9, "achieved_flops_per_second": 1e11, "time_vs_clip": pps / 400.0}
        )
    pipeline = {"pairs_per_second": 800.0, "batches": 2, "batch_size": 8, "note": "decode"}
    result = add_pipeline_ratios({"header": header, "modes": modes, "pipeline": pipeline})
    assert [r["pipeline_over_training"] for r in result["modes"]] == [2.0, 4.0]
    console = Console(record=True, width=200)
    print_results(result, console)
    text = console.export_text()
    assert "batch 8 in 2 micro-batches" in text and "third tower: none (clip only)" in text
    assert "input pipeline: 800.0 pairs/s over 2 batches of 8" in text and "process at start: 1.0 GiB" in text
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("│ clip") or line.startswith("│ 3t")}
    assert "400.0" in rows["clip"] and "2.0x" in rows["clip"] and "3.0 MiB" in rows["clip"]
    assert "200.0" in rows["3t"] and "4.0x" in rows["3t"] and "0.50x" in rows["3t"]
