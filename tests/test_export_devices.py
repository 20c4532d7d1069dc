"""`tt export litert` and `tt export onnx` (issue 26): device encoders against the SavedModel.

One tiny trained 3T run is exported four ways (SavedModel, LiteRT float, LiteRT int8, ONNX).
A fresh Python process that imports only NumPy, `sentencepiece`, `ai_edge_litert` and
`onnxruntime` (and checks that TensorFlow never got imported) loads the files, makes the
token ids as `encoders.json` says and embeds the test data's images, captions and zero-shot
prompts; this process compares with the SavedModel's `encode_image` / `encode_text` (raw
strings: its tokenizer runs inside).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tt_cli.export import encoders

# The int8 model's zero-shot top-1 may differ from the float model's by at most this much
# (absolute, on the test data). Measured: 0 on this data; dynamic-range int8 weights
# perturb a cosine by ~1e-3, which flips only near-ties (checked below by their margins).
INT8_TOP1_BOUND = 0.05

FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import sentencepiece as spm
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    d = sys.argv[1]
    inputs = json.load(open(f"{d}/inputs.json"))
    images = np.load(f"{d}/images.npy")

    def tokens(folder, texts):
        info = json.load(open(f"{folder}/encoders.json"))["tokenizer"]
        sp = spm.SentencePieceProcessor(model_file=f"{folder}/{info['file']}")
        ids = np.full((len(texts), info["max_len"]), info["pad_id"], np.int32)
        for row, text in enumerate(texts):
            pieces = sp.encode(text[: info["max_len"] * 16])[: info["max_len"] - 1] + [info["eos_id"]]
            ids[row, : len(pieces)] = pieces
        return ids

    def litert(path, x):
        interpreter = Interpreter(model_path=path)
        runner = interpreter.get_signature_runner(interpreter.get_signature_list().popitem()[0])
        (name,) = runner.get_input_details()
        return runner(**{name: x})["embeddings"]  # the runner resizes the batch axis to x's

    def onnx(path, x):
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(["embeddings"], {session.get_inputs()[0].name: x})[0]

    out = {}
    for kind, folder in inputs["exports"].items():
        run, ext = (litert, "tflite") if "litert" in kind else (onnx, "onnx")
        out[f"{kind}/images"] = run(f"{folder}/image_encoder.{ext}", images)
        for texts in ("captions", "prompts"):
            out[f"{kind}/{texts}"] = run(f"{folder}/text_encoder.{ext}", tokens(folder, inputs[texts]))
    np.savez(f"{d}/embeddings.npz", **out)
    assert "tensorflow" not in sys.modules, "a runtime imported TensorFlow"
""")


def cli(args):
    from click.testing import CliRunner

    from tt_cli.main import cli as tt

    return CliRunner().invoke(tt, args)


def _test_data(shards, image_size):
    """(uint8 images at the model's size, first captions, labels, class names) of every example."""
    from tt_cli.data import schema
    from tt_cli.eval.encode import eval_dataset

    files, info = schema.resolve_shards(shards)
    batches = list(eval_dataset(files, image_size, batch_size=256))
    images = np.concatenate([b["image"].numpy() for b in batches])
    captions = [t.decode() for b in batches for t in b["texts"][:, 0].numpy()]
    labels = np.concatenate([b["label"].numpy() for b in batches])
    assert images.dtype == np.uint8 and images.shape[1:3] == tuple(image_size)
    return images, captions, labels, info.class_names


def _zero_shot_top1(image_embeddings, prompt_embeddings, labels, per_class):
    """Top-1 and the predictions; class embeddings are the re-normalised mean of their prompts'."""
    classes = prompt_embeddings.reshape(-1, per_class, prompt_embeddings.shape[-1]).mean(axis=1)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    scores = image_embeddings @ classes.T
    return float((scores.argmax(axis=1) == labels).mean()), scores


def _cosines(a, b):
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_litert_and_onnx_encoders_equal_the_savedmodel_in_a_fresh_process(tiny_run, tiny_shards, tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  the SavedModel's tokenizer ops

    from tt_cli.eval.templates import CLIP_IMAGENET_TEMPLATES, fill
    from tt_cli.run_dir import load_run

    run_dir = tiny_run("3t")
    exports = {
        "litert": ["litert"],
        "litert_int8": ["litert", "--quantize", "dynamic"],
        "onnx": ["onnx"],
        "savedmodel": ["savedmodel"],
        # LiT's image side is the locked tower h (compared with the Keras model below).
        "lit_litert": ["litert"],
        "lit_onnx": ["onnx"],
    }
    for kind, args in exports.items():
        out = str(tmp_path / kind)
        run = tiny_run("lit") if kind.startswith("lit_") else run_dir
        result = cli(["export", args[0], run, out, *args[1:], "--json", str(tmp_path / f"{kind}.json")])
        assert result.exit_code == 0, (result.output, result.exception)
        exports[kind] = out
    savedmodel = tf.saved_model.load(exports.pop("savedmodel"))
    info = json.load(open(os.path.join(exports["litert"], encoders.INFO)))
    height, width, _ = info["image_encoder"]["input"]["shape"][1:]
    assert json.load(open(tmp_path / "litert_int8.json"))["quantize"] == "dynamic"
    assert {"image_encoder.onnx", "text_encoder.onnx", encoders.TOKENIZER, encoders.INFO} <= set(
        os.listdir(exports["onnx"])
    )
    # int8 weights: about a quarter of the float file (the tiny model's graph overhead keeps it above).
    for name in ("image_encoder.tflite", "text_encoder.tflite"):
        float_size, int8_size = (os.path.getsize(os.path.join(exports[k], name)) for k in ("litert", "litert_int8"))
        assert int8_size < 0.6 * float_size, (name, float_size, int8_size)

    images, captions, labels, class_names = _test_data(tiny_shards, (height, width))
    templates = CLIP_IMAGENET_TEMPLATES[:4]
    prompts = [fill(t, name) for name in class_names for t in templates]
    np.save(tmp_path / "images.npy", images)
    inputs = {"exports": exports, "captions": captions[:16], "prompts": prompts}
    json.dump(inputs, open(tmp_path / "inputs.json", "w"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = dict(np.load(tmp_path / "embeddings.npz"))

    reference = {
        "images": savedmodel.encode_image(tf.constant(images)).numpy(),
        "captions": savedmodel.encode_text(tf.constant(captions[:16])).numpy(),
        "prompts": savedmodel.encode_text(tf.constant(prompts)).numpy(),
    }
    for kind in ("litert", "onnx"):
        assert got[f"{kind}/images"].shape == reference["images"].shape
        for texts, count in (("images", 16), ("captions", 16)):
            cosines = _cosines(got[f"{kind}/{texts}"][:count], reference[texts][:count])
            assert cosines.min() >= 0.9999, (kind, texts, cosines)
        norms = np.linalg.norm(got[f"{kind}/images"], axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    lit = load_run(tiny_run("lit"))
    assert json.load(open(os.path.join(exports["lit_onnx"], encoders.INFO)))["image_encoder"]["image_side"] == (
        "locked pretrained tower h"
    )
    lit_reference = {
        "images": lit.model.encode_image(images[:16]).numpy(),
        "captions": lit.model.encode_text(lit.tokenizer.tokenize(tf.constant(captions[:16]))).numpy(),
    }
    for kind in ("lit_litert", "lit_onnx"):
        for texts, reference_embeddings in lit_reference.items():
            cosines = _cosines(got[f"{kind}/{texts}"][:16], reference_embeddings)
            assert cosines.min() >= 0.9999, (kind, texts, cosines)

    # int8: embeddings close, zero-shot top-1 within the bound, and only near-ties flip.
    assert _cosines(got["litert_int8/images"], reference["images"]).min() >= 0.99
    float_top1, float_scores = _zero_shot_top1(reference["images"], reference["prompts"], labels, len(templates))
    int8_top1, int8_scores = _zero_shot_top1(
        got["litert_int8/images"], got["litert_int8/prompts"], labels, len(templates)
    )
    assert abs(int8_top1 - float_top1) <= INT8_TOP1_BOUND, (float_top1, int8_top1)
    perturbation = np.abs(int8_scores - float_scores).max()
    ranked = np.sort(float_scores, axis=1)
    clear = ranked[:, -1] - ranked[:, -2] > 2 * perturbation
    np.testing.assert_array_equal(int8_scores.argmax(1)[clear], float_scores.argmax(1)[clear])
    print(f"zero-shot top-1: float {float_top1:.4f}, int8 {int8_top1:.4f}, max score change {perturbation:.2e}")


def test_token_ids_of_the_usage_note_equal_the_tokenizer_inside_tt(tmp_path):
    """What `encoders.json` tells a device user to do with `sentencepiece` gives tt's own ids."""
    import sentencepiece as spm
    import tensorflow as tf

    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.data.tokenizer import train_sentencepiece

    corpus = [f"a {c} {s} in the {p}" for c in ("red", "blue", "green") for s in ("circle", "square") for p in "ab"]
    path = str(tmp_path / "tok.model")
    train_sentencepiece(corpus * 20, path, 20)
    texts = ["a red circle", "", "Ünïcödé ✓ " * 30, "a green square in the a " * 10, "A BLUE  Circle"]
    ids = encoders.token_ids(spm.SentencePieceProcessor(model_file=path), texts, 12)
    np.testing.assert_array_equal(ids, TextTokenizer(path, 12).tokenize(tf.constant(texts)).numpy())


def test_device_exports_refuse_bad_input_with_one_line(tmp_path, monkeypatch):
    from tt_cli.errors import InvalidValueError
    from tt_cli.export.litert import export_litert

    with pytest.raises(InvalidValueError, match="quantization 'int4'"):
        export_litert(None, str(tmp_path / "out"), quantize="int4")
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if not installed
    result = cli(["export", "onnx", str(tmp_path / "no_run"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "pip install 'tt[export]'" in result.output, result.output
    result = cli(["export", "litert", str(tmp_path / "no_run"), str(tmp_path / "out"), "--quantize", "int4"])
    assert result.exit_code == 2 and "'int4' is not one of" in result.output
