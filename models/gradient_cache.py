"""Gradient caching (Gao et al., 2021): the gradient of a contrastive loss over a batch
whose activations do not fit in memory at once, exactly.

Plain gradient accumulation would be wrong for a contrastive loss: it would compare
each micro-batch only against itself, with fewer (and other) negatives than the batch
holds. Here the loss still sees the whole batch:

1. forward every micro-batch through the towers without a tape, keeping only the
   embeddings the loss consumes (`ThreeTowers.compute_embeddings`);
2. compute the losses of every pair over the whole batch from those embeddings
   (`ThreeTowers.losses_from_embeddings`, which under `tf.distribute` gathers every
   replica's rows as usual), with gradients for the embeddings that train (`text`,
   `image`) and for the heads, temperatures and biases;
3. forward each micro-batch again under a tape and back-propagate its slice of the
   embedding gradients into the towers, summing over micro-batches.

The cost is one more forward pass of the trained towers (h runs once); the memory of
activations is that of one micro-batch. Embeddings that do not train (`pretrained`,
however `compute_embeddings` structures it) are constants of the loss.

The micro-batches run in `tf.while_loop`s that take one iteration at a time
(`parallel_iterations=1`; otherwise the graph executor may run them side by side and
hold all their activations at once). A loop rather than an unrolled Python `for` keeps
the traced step (and its XLA compilation) the same size for any number of micro-batches:
the towers are traced three times (the first micro-batch, the rest, the backward
pass), not twice per micro-batch.

In use (inside `ThreeTowers.train_step` when `accum_steps` > 1):

```python
losses, gradients = cached_gradients(model, batch, accum_steps=4, scale_loss=lambda l: l)
model.optimizer.apply(gradients, model.trainable_variables)
```
"""

import tensorflow as tf

from models.gradients import dense_gradients


def _micro_batches(batch, parts):
    """The batch dict with a leading micro-batch axis: `[parts, rows / parts, ...]`."""
    return {key: tf.reshape(value, tf.concat([[parts, -1], tf.shape(value)[1:]], 0)) for key, value in batch.items()}


def _pick(stacked, index):
    return tf.nest.map_structure(lambda x: x[index], stacked)


def _one_at_a_time(parts, body, state):
    """`for i in range(parts): state = body(i, state)` as a while loop of one iteration at a time."""
    return tf.while_loop(
        lambda i, _: i < parts, lambda i, st: (i + 1, body(i, st)), (tf.constant(0), state), parallel_iterations=1
    )[1]


def _embeddings(model, micro_batches, parts):
    """`model.compute_embeddings` of every micro-batch, concatenated; no tape is recording."""
    first = model.compute_embeddings(_pick(micro_batches, 0), training=True)  # gives the structure
    arrays = tf.nest.map_structure(
        lambda x: tf.TensorArray(x.dtype, size=parts, element_shape=x.shape).write(0, x), first
    )

    def body(i, arrays):
        embeddings = model.compute_embeddings(_pick(micro_batches, i), training=True)
        return tf.nest.map_structure(lambda array, x: array.write(i, x), arrays, embeddings)

    arrays = _one_at_a_time(parts - 1, lambda i, st: body(i + 1, st), arrays)
    return tf.nest.map_structure(lambda array: array.concat(), arrays)


def cached_gradients(model, batch, accum_steps, scale_loss):
    """Returns (losses, gradients for `model.trainable_variables`) of this replica's
    `batch` run through `model` (a `ThreeTowers`) in `accum_steps` micro-batches: the
    gradients of `scale_loss(losses["loss"])` with the loss over the whole batch.

    `scale_loss` is what the caller would differentiate instead of the loss (dividing by
    the replica count, a float16 loss scale); the embedding gradients carry it into the
    towers' gradients, so the optimizer unscales them as it would any other."""
    micro_batches = _micro_batches(batch, accum_steps)
    # 1. Embeddings only: no tape records the towers' activations.
    full = _embeddings(model, micro_batches, accum_steps)
    trained = list(model.trained_embedding_names)

    # 2. The loss of the whole batch; gradients for its embeddings and its own weights.
    tower_variables = model.tower_variables
    tower_ids = {id(v) for v in tower_variables}
    loss_variables = [v for v in model.trainable_variables if id(v) not in tower_ids]
    with tf.GradientTape() as tape:
        tape.watch([full[name] for name in trained])
        losses = model.losses_from_embeddings(full)
        scaled = scale_loss(losses["loss"])
    embedding_gradients, loss_gradients = tape.gradient(scaled, ([full[name] for name in trained], loss_variables))
    embedding_gradients = _micro_batches(dict(zip(trained, embedding_gradients)), accum_steps)

    # 3. Each micro-batch again, under a tape, fed its slice of the embedding gradients.
    def add_tower_gradients(i, summed):
        with tf.GradientTape() as micro_tape:
            outputs = model.trained_embeddings(_pick(micro_batches, i), training=True)
        gradients = micro_tape.gradient(
            [outputs[name] for name in trained],
            tower_variables,
            output_gradients=[embedding_gradients[name][i] for name in trained],
        )
        # Dense (a token embedding's IndexedSlices would not add up; the optimizer gets them dense too).
        return [total if g is None else total + g for total, g in zip(summed, dense_gradients(gradients))]

    zeros = [tf.zeros(v.shape, v.dtype) for v in tower_variables]
    tower_gradients = _one_at_a_time(accum_steps, add_tower_gradients, zeros)

    by_variable = {id(v): g for v, g in zip(tower_variables, tower_gradients)}
    by_variable.update({id(v): g for v, g in zip(loss_variables, loss_gradients)})
    return losses, [by_variable[id(v)] for v in model.trainable_variables]
