"""WiSE-FT (Wortsman et al., 2022): a fine-tuned model's weights moved back toward the
model it started from, `alpha * fine_tuned + (1 - alpha) * initial`.

`interpolate_towers` applies it to what a `ThreeTowers` keeps downstream, the image
tower f (LiT: none; its locked tower never moved), the text tower g and the image-text
temperature and bias. The initial model is the same architecture at step 0, e.g.
`models.preset_model.three_towers_from_preset` of the preset the run started from.
`alpha = 0` gives the initial model, `alpha = 1` the fine-tuned one, exactly.

Example:
>>> import keras
>>> fine_tuned, initial = keras.layers.Dense(2), keras.layers.Dense(2)
>>> fine_tuned.build((None, 3)); initial.build((None, 3))
>>> interpolate_variables(fine_tuned.weights, initial.weights, 0.0)
>>> bool((fine_tuned.kernel.numpy() == initial.kernel.numpy()).all())
True
"""

import numpy as np


def interpolate_variables(variables, initial, alpha):
    """Assigns `alpha * v + (1 - alpha) * v0` to each float variable `v` of `variables`,
    `v0` its counterpart (same position and shape) in `initial`. Integer state (position
    ids) is the same in both and left as it is."""
    variables, initial = list(variables), list(initial)
    if [tuple(v.shape) for v in variables] != [tuple(v.shape) for v in initial]:
        raise ValueError("the fine-tuned and the initial model differ in architecture")
    alpha = float(alpha)
    for variable, start in zip(variables, initial):
        if not np.issubdtype(np.dtype(variable.dtype), np.floating):
            continue
        if alpha in (0.0, 1.0):  # exactly one of the two, with no rounding
            value = start.numpy() if alpha == 0.0 else variable.numpy()
        else:
            value = alpha * variable.numpy().astype(np.float64) + (1 - alpha) * start.numpy().astype(np.float64)
        variable.assign(np.asarray(value, dtype=variable.dtype))


def interpolate_towers(model, initial, alpha):
    """WiSE-FT of a `ThreeTowers` `model` in place: its image and text towers and its
    image-text temperature (and bias) become `alpha * model + (1 - alpha) * initial`."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    pairs = [(model.text_tower, initial.text_tower)]
    if model.image_tower is not None:
        pairs.append((model.image_tower, initial.image_tower))
    for tower, start in pairs:
        interpolate_variables(tower.weights, start.weights, alpha)
    scalars = [(model.log_temperatures["image_text"], initial.log_temperatures["image_text"])]
    if "image_text" in model.biases:
        scalars.append((model.biases["image_text"], initial.biases["image_text"]))
    interpolate_variables([v for v, _ in scalars], [v for _, v in scalars], alpha)
