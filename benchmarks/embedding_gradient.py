"""What an AdamW step on a token-embedding table costs with its gradient given three ways:
as the `tf.IndexedSlices` TensorFlow makes (one row per token, repeated tokens repeated:
Keras 3.15 then computes a wrong second moment), with repeated rows summed
(`tf.unique` + `tf.math.unsorted_segment_sum`: unique slices), and dense
(`models.gradients.optimizer_gradients`, what tt gives the optimizer; on one device it
makes them dense and does nothing else).

The table is KerasHub's `TokenAndPositionEmbedding` (tt's text tower's), the gradient is
the real one of a batch of captions (token ids drawn from a Zipf law, as words are), the
optimizer is `tt train`'s (`tt_cli.training.optimizer.make_optimizer`: AdamW, global-norm
clipping at 1). Each variant's gradient conversion and optimizer step run in one
`tf.function` (with XLA as `tt train` on one CPU, and without); the variants take turns
step by step and the median of each one's timed steps is printed in ms.

Usage:
    python benchmarks/embedding_gradient.py --vocab-size 32000 --width 512 --batch-size 256 --max-len 32
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def summed(gradient):
    """The IndexedSlices with each index once, its rows summed."""
    import tensorflow as tf

    indices, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(indices)[0])
    return tf.IndexedSlices(values, indices, gradient.dense_shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    from models.gradients import optimizer_gradients
    from tt_cli.training.optimizer import make_optimizer

    rng = np.random.default_rng(0)
    tokens = np.minimum(rng.zipf(1.3, size=(args.batch_size, args.max_len)), args.vocab_size - 1).astype("int32")
    layer = keras_hub.layers.TokenAndPositionEmbedding(args.vocab_size, args.max_len, args.width)
    layer.build((None, args.max_len))
    upstream = tf.constant(rng.standard_normal((args.batch_size, args.max_len, args.width)), tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tokens) * upstream) * 1e-3
    gradients = tape.gradient(loss, layer.trainable_variables)
    token_gradient = next(g for g in gradients if isinstance(g, tf.IndexedSlices))
    variants = {
        "indexed_slices": lambda optimizer, grads: grads,
        "summed_slices": lambda optimizer, grads: [summed(g) if isinstance(g, tf.IndexedSlices) else g for g in grads],
        "dense": optimizer_gradients,
    }
    results = {}
    for jit in (True, False):
        steps = {}
        for name, convert in variants.items():
            optimizer = make_optimizer(5e-4)
            optimizer.build(layer.trainable_variables)

            @tf.function(jit_compile=jit)
            def step(grads, convert=convert, optimizer=optimizer):
                optimizer.apply(convert(optimizer, grads), layer.trainable_variables)
                return optimizer.iterations

            for _ in range(args.warmup):
                int(step(gradients))
            steps[name] = step
        # The variants take turns step by step, so that other work on a shared machine slows
        # each alike.
        times = {name: [] for name in steps}
        for _ in range(args.steps):
            for name, step in steps.items():
                start = time.perf_counter()
                int(step(gradients))
                times[name].append((time.perf_counter() - start) * 1e3)
        for name, measured in times.items():
            results[f"{name}{'' if jit else '_no_jit'}_ms"] = round(statistics.median(measured), 2)
    print(
        json.dumps(
            {
                "table": [args.vocab_size, args.width],
                "token_rows": int(token_gradient.indices.shape[0]),
                "unique_tokens": int(np.unique(tokens).size),
                "keras": keras.__version__,
                "tensorflow": tf.__version__,
                "load_average": os.getloadavg()[0],
                **results,
            }
        )
    )


if __name__ == "__main__":
    main()
