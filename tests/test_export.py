"""`tt export` (issue 6): SavedModel, .keras file and KerasHub preset, from a run directory alone.

The SavedModel is loaded in a fresh Python process (one for every endpoint and mode) and
compared with the Keras model's outputs computed here, on the same resize path.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

TEXTS = ["a red circle", "A BIG BLUE SQUARE on a white background", "", "ünïcödé tëxt ✓"]


def cli(args):
    from click.testing import CliRunner

    from tt_cli.main import cli as tt

    return CliRunner().invoke(tt, args)


@pytest.mark.slow
def test_savedmodel_matches_keras_in_fresh_process(tiny_run, tmp_path):
    import tensorflow as tf

    from tt_cli.data.pipeline import resize
    from tt_cli.export.savedmodel import ENDPOINTS
    from tt_cli.run_dir import load_run

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 45, 37, 3)).astype("uint8")  # not the model's 32x32
    encoded = [
        tf.io.encode_jpeg(rng.integers(0, 256, shape).astype("uint8")).numpy()
        for shape in [(40, 50, 3), (32, 32, 3), (64, 20, 3)]
    ]
    np.save(tmp_path / "pixels.npy", pixels)
    np.save(tmp_path / "encoded.npy", np.array(encoded, dtype=object), allow_pickle=True)
    np.save(tmp_path / "texts.npy", np.array(TEXTS, dtype=object), allow_pickle=True)
    exports = {}
    for mode in ("3t", "lit"):
        out = str(tmp_path / f"sm_{mode}")
        run = load_run(tiny_run(mode))
        result = cli(["export", "savedmodel", tiny_run(mode), out])
        assert result.exit_code == 0, (result.output, result.exception)
        assert "encode_image_bytes" in result.output
        size = run.model.image_size
        decoded = tf.stack([resize(tf.io.decode_jpeg(b, channels=3), size) for b in encoded])
        references = {
            "encode_image": run.model.encode_image(resize(pixels, size)).numpy(),
            "encode_image_bytes": run.model.encode_image(decoded).numpy(),
            "encode_text": run.model.encode_text(run.tokenizer.tokenize(tf.constant(TEXTS))).numpy(),
        }
        for name, value in references.items():
            np.save(tmp_path / f"{mode}_{name}.npy", value)
        exports[mode] = out

    script = textwrap.dedent("""
        import json, sys
        import numpy as np
        import tensorflow as tf
        import tensorflow_text  # registers the SentencePiece ops the SavedModel uses
        d = sys.argv[1]
        pixels = np.load(f"{d}/pixels.npy")
        encoded = tf.constant(list(np.load(f"{d}/encoded.npy", allow_pickle=True)))
        texts = tf.constant([t.encode() for t in np.load(f"{d}/texts.npy", allow_pickle=True)])
        report = {}
        for mode in ("3t", "lit"):
            sm = tf.saved_model.load(f"{d}/sm_{mode}")
            got = {"encode_image": sm.encode_image(tf.constant(pixels)),
                   "encode_image_bytes": sm.encode_image_bytes(encoded),
                   "encode_text": sm.encode_text(texts)}
            both = sm.signatures["serving_default"](image_bytes=encoded, texts=texts)
            for name, value in got.items():
                ref = np.load(f"{d}/{mode}_{name}.npy")
                report[f"{mode}/{name}"] = float(np.abs(value.numpy() - ref).max())
                report[f"{mode}/{name}/norm"] = float(np.abs(np.linalg.norm(value.numpy(), axis=1) - 1).max())
            ref_i, ref_t = (np.load(f"{d}/{mode}_{n}.npy") for n in ("encode_image_bytes", "encode_text"))
            report[f"{mode}/serving_default"] = max(
                float(np.abs(both["image_embeddings"].numpy() - ref_i).max()),
                float(np.abs(both["text_embeddings"].numpy() - ref_t).max()),
                float(np.abs(both["similarity"].numpy() - ref_i @ ref_t.T).max()))
            report[f"{mode}/signatures"] = sorted(sm.signatures.keys())
        print(json.dumps(report))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for mode in ("3t", "lit"):
        assert report[f"{mode}/signatures"] == sorted(ENDPOINTS)
        for name in ("encode_image", "encode_image_bytes", "encode_text", "serving_default"):
            assert report[f"{mode}/{name}"] <= 1e-5, (mode, name, report)
        for name in ("encode_image", "encode_image_bytes", "encode_text"):
            assert report[f"{mode}/{name}/norm"] <= 1e-5

    show = subprocess.run(
        [shutil.which("saved_model_cli") or "saved_model_cli", "show", "--all", "--dir", exports["3t"]],
        capture_output=True,
        text=True,
    )
    assert show.returncode == 0, show.stderr[-2000:]
    for name in ENDPOINTS:
        assert f"signature_def['{name}']" in show.stdout
    assert "inputs['texts']" in show.stdout and "inputs['image_bytes']" in show.stdout


@pytest.mark.slow
def test_keras_file_loads_predicts_identically_and_trains(tiny_run, tmp_path):
    import keras
    import tensorflow as tf

    import models  # noqa: F401  (registers tt's classes for load_model)
    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.run_dir import load_run

    out = str(tmp_path / "model.keras")
    result = cli(["export", "keras", tiny_run("3t"), out, "--json", str(tmp_path / "export.json")])
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.load(open(tmp_path / "export.json"))
    assert report["export"] == "keras" and report["files"] == [out, str(tmp_path / "model.tokenizer.model")]
    run = load_run(tiny_run("3t"))
    loaded = keras.saving.load_model(out)
    tokenizer = TextTokenizer(str(tmp_path / "model.tokenizer.model"), run.config["max_text_len"])
    tokens = tokenizer.tokenize(tf.constant(TEXTS))
    np.testing.assert_array_equal(tokens.numpy(), run.tokenizer.tokenize(tf.constant(TEXTS)).numpy())
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    np.testing.assert_allclose(loaded.encode_image(images), run.model.encode_image(images), atol=1e-6)
    np.testing.assert_allclose(loaded.encode_text(tokens), run.model.encode_text(tokens), atol=1e-6)

    # Trainable further: one step moves f and g, never the frozen h.
    h_before = [w.numpy().copy() for w in loaded.pretrained_tower.weights]
    f_before = [w.numpy().copy() for w in loaded.image_tower.weights]
    # The run's own schedule has decayed to 0 at its last step; fine-tune with a new optimizer.
    loaded.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = loaded.train_on_batch({"image": images, "h_image": images, "tokens": tokens}, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(f_before, loaded.image_tower.weights))
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(h_before, loaded.pretrained_tower.weights))


@pytest.mark.parametrize("mode", ["3t", "lit"])
def test_preset_loads_and_pools_like_the_trained_tower(tiny_run, tmp_path, mode):
    import keras
    import keras_hub
    import tensorflow as tf

    import models  # noqa: F401
    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.run_dir import load_run

    out = str(tmp_path / "preset")
    run = load_run(tiny_run(mode))
    result = cli(["export", "preset", tiny_run(mode), out])
    assert result.exit_code == 0, (result.output, result.exception)
    for name in ("config.json", "model.weights.h5", "metadata.json", "image_converter.json", "tt/tt.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    info = json.load(open(os.path.join(out, "tt", "tt.json")))
    backbone = keras_hub.models.Backbone.from_preset(out)
    converter = keras_hub.layers.ImageConverter.from_preset(out)
    assert backbone.trainable and info["mode"] == mode and info["pooling"] == "token"
    images = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    pooled = keras.ops.convert_to_numpy(backbone(converter(images))[:, 0])
    if mode == "lit":  # the locked pretrained tower h is the image encoder
        expected = run.model.pretrained_tower(images).numpy()
    else:  # what ImageTower pools before its projection, on pixels rescaled to [-1, 1]
        expected = run.model.image_tower.backbone(images / 127.5 - 1.0)[:, 0].numpy()
    np.testing.assert_allclose(pooled, expected, atol=1e-5)

    # The side files rebuild the run's embeddings.
    image_head = keras.saving.load_model(os.path.join(out, info["files"]["image_head"]))
    np.testing.assert_allclose(image_head(pooled), run.model.encode_image(images), atol=1e-5)
    text_encoder = keras.saving.load_model(os.path.join(out, info["files"]["text_encoder"]))
    tokenizer = TextTokenizer(os.path.join(out, info["files"]["tokenizer"]), info["max_text_len"])
    tokens = tokenizer.tokenize(tf.constant(TEXTS))
    np.testing.assert_allclose(text_encoder(tokens), run.model.encode_text(tokens), atol=1e-5)


def test_savedmodel_endpoint_functions_decode_and_encode_as_training_does(tiny_run):
    """The functions `export_savedmodel` traces, run in this process (writing and reloading
    the SavedModel is the slow test above): PNG bytes decode to the exact pixels and are
    resized as training resizes them; bytes and pixels give one embedding; serving_default's
    similarity is the product of its two embeddings."""
    import io

    import tensorflow as tf
    from PIL import Image

    from tt_cli.data.pipeline import resize
    from tt_cli.export.savedmodel import _Encoders, decode_and_resize, describe_endpoints
    from tt_cli.run_dir import load_run

    run = load_run(tiny_run("3t"))
    encoders = _Encoders(run.model, run.tokenizer)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 40, 48, 3), dtype=np.uint8)  # not the model's 32x32
    pngs = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "PNG")
        pngs.append(buffer.getvalue())
    decoded = decode_and_resize(tf.constant(pngs), (32, 32)).numpy()
    np.testing.assert_allclose(decoded, resize(pixels, (32, 32)).numpy(), atol=1e-4)
    by_bytes = encoders.encode_image_bytes(tf.constant(pngs)).numpy()
    np.testing.assert_allclose(by_bytes, encoders.encode_image(tf.constant(pixels)).numpy(), atol=1e-5)
    served = encoders.serving_default(tf.constant(pngs), tf.constant(TEXTS))
    texts = run.model.encode_text(run.tokenizer.tokenize(tf.constant(TEXTS)), training=False).numpy()
    np.testing.assert_allclose(served["text_embeddings"].numpy(), texts, atol=1e-6)
    np.testing.assert_allclose(served["similarity"].numpy(), by_bytes @ texts.T, atol=1e-5)
    rows = describe_endpoints(run.model)
    assert [r[0] for r in rows] == ["encode_image", "encode_image_bytes", "encode_text", "serving_default"]
    assert rows[0][2] == f"[B, {texts.shape[1]}] (resized to 32x32)"


def test_export_errors_are_one_clear_line(tiny_run, tmp_path):
    not_trained = tmp_path / "not_trained"
    not_trained.mkdir()
    (not_trained / "run.json").write_text(json.dumps({"config": {"mode": "3t", "scale": "tiny", "max_text_len": 12}}))
    cases = [
        (["export", "savedmodel", str(tmp_path / "missing"), str(tmp_path / "o1")], "no such run directory"),
        (["export", "preset", str(not_trained), str(tmp_path / "o2")], "no finished checkpoint"),
        (["export", "keras", str(not_trained), str(tmp_path / "o3.keras")], "no finished checkpoint"),
        (["export", "keras", tiny_run("3t"), str(tmp_path / "o4.h5")], "must end in .keras"),
    ]
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "x").write_text("keep me")
    cases.append((["export", "savedmodel", tiny_run("3t"), str(existing)], "which tt did not write"))
    for args, message in cases:
        result = cli(args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.output
    assert (existing / "x").read_text() == "keep me"
