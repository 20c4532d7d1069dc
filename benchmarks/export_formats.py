"""File sizes, per-image latency and zero-shot accuracy of each export format of one run.

Exports RUN as a SavedModel, LiteRT (float and `--quantize dynamic`) and ONNX encoders
(the library calls behind `tt export`), then on this machine:

- sizes: the bytes of each format's image and text encoder (the SavedModel holds both
  and its tokenizer);
- latency: the median wall time of encoding one image and one caption (batch 1), and per
  image at batch 32, after warm-up, with every runtime on the same number of threads;
- accuracy: zero-shot top-1 on labelled shards (`--data`, e.g. the demo's held-out split),
  with the class names in `dataset.json` and `--templates` (default: the demo's prompts),
  computed from each format's embeddings, so the int8 model's cost is measured.

Usage:
    python benchmarks/export_formats.py runs/demo --data runs/demo/demo_data/val-200-s2-32px
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def _median_seconds(fn, repeats):
    fn()  # warm-up (allocation, first-call work)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _runners(exports, threads):
    """{format: (encode_images, encode_tokens)} over numpy arrays, for the device formats."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    def litert(path):
        interpreter = Interpreter(model_path=path, num_threads=threads)
        runner = interpreter.get_signature_runner()
        (name,) = runner.get_input_details()
        return lambda x: runner(**{name: x})["embeddings"]

    def onnx(path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(["embeddings"], {name: x})[0]

    runners = {}
    for kind, folder in exports.items():
        make, ext = (onnx, "onnx") if kind == "onnx" else (litert, "tflite")
        runners[kind] = tuple(make(os.path.join(folder, f"{side}_encoder.{ext}")) for side in ("image", "text"))
    return runners


def _latencies(encode_images, encode_texts, images, captions, repeats):
    """Milliseconds: one image, per image in a batch of 32, one caption (tokenizing included)."""
    return {
        "image_ms_batch1": 1e3 * _median_seconds(lambda: encode_images(images[:1]), repeats),
        "image_ms_per_image_batch32": 1e3 * _median_seconds(lambda: encode_images(images[:32]), repeats) / 32,
        "text_ms_batch1": 1e3 * _median_seconds(lambda: encode_texts(captions[:1]), repeats),
    }


def _zero_shot_top1(images, prompts, labels, per_class):
    classes = prompts.reshape(-1, per_class, prompts.shape[-1]).mean(axis=1)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    return float(((images @ classes.T).argmax(axis=1) == labels).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--data", required=True, help="labelled shards for zero-shot accuracy")
    parser.add_argument("--templates", default="a {}|{}|a picture of a {}", help="prompts, separated by |")
    parser.add_argument("--work", default="/tmp/export_formats")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  the SavedModel's tokenizer ops

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from tt_cli.data import schema
    from tt_cli.eval.encode import eval_dataset
    from tt_cli.export.encoders import token_ids
    from tt_cli.export.litert import export_litert
    from tt_cli.export.onnx import export_onnx
    from tt_cli.export.savedmodel import export_savedmodel
    from tt_cli.run_dir import load_run

    run = load_run(args.run)
    exports = {k: os.path.join(args.work, k) for k in ("savedmodel", "litert", "litert_int8", "onnx")}
    export_savedmodel(run, exports["savedmodel"])
    export_litert(run, exports["litert"])
    export_litert(run, exports["litert_int8"], quantize="dynamic")
    export_onnx(run, exports["onnx"])

    files, info = schema.resolve_shards(args.data)
    batches = list(eval_dataset(files, run.model.image_size, batch_size=1024))
    images = np.concatenate([b["image"].numpy() for b in batches])
    labels = np.concatenate([b["label"].numpy() for b in batches])
    captions = [t.decode() for b in batches for t in b["texts"][:, 0].numpy()]
    templates = args.templates.split("|")
    prompts = [t.replace("{}", name) for name in info.class_names for t in templates]

    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=run.tokenizer.model_bytes)
    max_len = int(run.model.text_tower.max_len)
    tokens = lambda texts: token_ids(processor, texts, max_len)

    savedmodel = tf.saved_model.load(exports["savedmodel"])
    encoders = {"savedmodel": (lambda x: savedmodel.encode_image(x).numpy(), None)}
    encoders.update(_runners({k: v for k, v in exports.items() if k != "savedmodel"}, args.threads))
    results = {}
    for kind, (encode_images, encode_tokens) in encoders.items():
        if kind == "savedmodel":
            text = lambda texts: savedmodel.encode_text(tf.constant(texts)).numpy()  # raw strings in
            sizes = {
                "total": sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(exports[kind]) for f in fs)
            }
        else:
            text = lambda texts, encode=encode_tokens: encode(tokens(texts))
            ext = "onnx" if kind == "onnx" else "tflite"
            sizes = {
                side: os.path.getsize(os.path.join(exports[kind], f"{side}_encoder.{ext}"))
                for side in ("image", "text")
            }
        top1 = _zero_shot_top1(encode_images(images), text(prompts), labels, len(templates))
        results[kind] = {"bytes": sizes, **_latencies(encode_images, text, images, captions, args.repeats)}
        results[kind]["zero_shot_top1"] = top1
        print(kind, json.dumps(results[kind]), file=sys.stderr)
    header = {
        "run": args.run,
        "step": run.step,
        "mode": run.model.mode,
        "image_size": list(run.model.image_size),
        "images": len(images),
        "classes": len(info.class_names),
        "threads": args.threads,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps({"header": header, "formats": results}, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "formats": results}, f, indent=2)


if __name__ == "__main__":
    main()
