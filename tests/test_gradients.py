"""`models.gradients`: a token-embedding gradient with repeated rows reaches AdamW as the
textbook update needs it; `models.gradient_cache`: micro-batches give the whole batch's
gradient. (The clip over several replicas is checked in tests/support/accum_step.py, which
can make two CPU devices.)"""

import numpy as np


def row_after_steps(gradients, optimizer):
    """Row 0 of a 3x2 table of zeros after one `optimizer` step per gradient."""
    import keras

    table = keras.Variable(np.zeros((3, 2), "float32"))
    optimizer.build([table])
    for gradient in gradients:
        optimizer.apply([gradient], [table])
    return table.numpy()[0]


def rows(value, repeats):
    """Row 0 of a 3x2 table given `value` in each of its 2 columns `repeats` times: the
    gradient of a token that occurs that often in a batch."""
    import tensorflow as tf

    return tf.IndexedSlices(tf.fill([repeats, 2], value), tf.zeros([repeats], tf.int32), tf.constant([3, 2]))


def compare(steps, make_optimizer):
    """Row 0 after `steps` (value, repeats) given as raw slices, through tt's gradient path,
    and as the dense gradient they stand for."""
    from models.gradients import optimizer_gradients

    def dense(value, repeats):
        return np.array([[value * repeats] * 2, [0, 0], [0, 0]], "float32")

    raw = row_after_steps([rows(*s) for s in steps], make_optimizer())
    optimizer = make_optimizer()
    through_tt = row_after_steps([optimizer_gradients(optimizer, [rows(*s)])[0] for s in steps], optimizer)
    textbook = row_after_steps([dense(*s) for s in steps], make_optimizer())
    return raw, through_tt, textbook


def test_repeated_rows_get_the_dense_adamw_update():
    """The issue's case: row 0 given [1, 1] twice, two AdamW steps at learning rate 0.1.
    Through tt's gradient path the row moves as with the dense gradient [2, 2]: -0.200
    (Adam's step on a steady gradient is the learning rate). Keras 3.15 given the raw
    slices squares each before summing them (Σ gᵢ² = 2, not (Σ gᵢ)² = 4): -0.283."""
    import keras

    raw, through_tt, textbook = compare(
        [(1.0, 2), (1.0, 2)], lambda: keras.optimizers.AdamW(learning_rate=0.1, weight_decay=0.0)
    )
    np.testing.assert_allclose(through_tt, textbook, rtol=1e-6)
    np.testing.assert_allclose(through_tt, [-0.200, -0.200], atol=1e-4)
    np.testing.assert_allclose(raw, [-0.283, -0.283], atol=1e-3)


def test_repeated_rows_with_tts_optimizer_clip_by_the_true_norm():
    """tt's optimizer (global-norm clipping at 1, which makes the slices dense before Adam
    sees them): Keras measures the raw slices' norm as √(Σ‖gᵢ‖²) = 0.8, not ‖Σ gᵢ‖ = 2.26,
    and skips the clipping the step needs; through tt's path the row moves as with the
    dense gradient."""
    from tt_cli.training.optimizer import make_optimizer

    raw, through_tt, textbook = compare([(0.2, 8), (0.5, 1)], lambda: make_optimizer(0.1))
    np.testing.assert_allclose(through_tt, textbook, rtol=1e-6)
    assert np.all(np.abs(raw - textbook) > 5e-3)


def test_dense_gradients_and_none_pass_unchanged_on_one_device():
    import tensorflow as tf

    from models.gradients import optimizer_gradients
    from tt_cli.training.optimizer import make_optimizer

    dense = tf.constant([1.0, 2.0])
    assert optimizer_gradients(make_optimizer(0.1), [dense, None]) == [dense, None]


def test_gradient_caching_gives_the_whole_batch_gradient():
    """`models.gradient_cache` in this process, eagerly, on the tiny CLIP of a fresh model: the
    gradients of 4 micro-batches with the loss over the whole batch are the whole batch's
    (float32 sums in another order: 1e-5 relative), and so are the losses; the token
    embedding's gradient arrives dense, as the optimizer is to get it."""
    import keras
    import tensorflow as tf

    from models import ThreeTowers, get_scale
    from models.gradient_cache import cached_gradients

    keras.utils.set_random_seed(0)
    model = ThreeTowers.from_scale(get_scale("tiny"), mode="clip", vocab_size=20, max_len=6)
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.integers(0, 256, (8, 32, 32, 3)), tf.uint8),
        "tokens": tf.constant(rng.integers(1, 4, (8, 6)), tf.int32),  # few ids: rows repeat
    }
    model(batch)  # built

    with tf.GradientTape() as tape:
        whole_losses = model.compute_losses(batch, training=True)
    whole = tape.gradient(whole_losses["loss"], model.trainable_variables)
    losses, cached = cached_gradients(model, batch, accum_steps=4, scale_loss=lambda loss: loss)

    assert np.isclose(float(losses["loss"]), float(whole_losses["loss"]), rtol=1e-6)
    for variable, a, b in zip(model.trainable_variables, whole, cached):
        assert not isinstance(b, tf.IndexedSlices), variable.path
        if variable.path.endswith("key/bias"):  # no gradient in exact arithmetic: rounding noise
            continue
        a, b = tf.convert_to_tensor(a).numpy(), b.numpy()
        assert np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(a), variable.path
