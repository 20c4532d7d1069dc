"""Rematerialisation (gradient checkpointing) of transformer blocks: a block keeps only
its input for the backward pass and runs its forward again there, instead of keeping
every activation inside it (attention scores, the MLP's wide hidden layer). Activation
memory then grows with the number of blocks times one block's output, not times
everything inside the blocks; a step costs about one more forward pass. The values
are the same: the recomputation repeats the forward's operations on the same inputs.

`rematerialize(blocks)` works on any built Keras layers, wherever they are called from
(a KerasHub functional backbone or a tower's own loop), through `keras.remat`
(`tf.recompute_grad` on TensorFlow). Keras' own `RematScope` decides at construction
time and hands the layer's keyword arguments to the recomputed function, which
TensorFlow's graph-mode custom gradients refuse (`padding_mask=`, `training=` of a
`TransformerEncoder` inside `tf.function`); here the keyword arguments are bound
first and only the positional tensors go through `keras.remat`. Nothing is saved with
the model: it is a property of how a process runs the blocks, so a resumed run may
turn it on or off.

Example:
>>> import keras, numpy as np
>>> block = keras.layers.Dense(4)
>>> rematerialize([block])
1
>>> block(np.ones((2, 3), "float32")).shape
TensorShape([2, 4])
"""

import functools

import keras

_MARK = "_tt_rematerialized"


def _rematerialized_call(call):
    @functools.wraps(call)
    def remat_call(*args, **kwargs):
        return keras.remat(functools.partial(call, **kwargs))(*args)

    return remat_call


def rematerialize(blocks):
    """Makes every layer of `blocks` recompute its forward pass in the backward pass;
    returns how many it changed (a layer already rematerialised is left as it is)."""
    changed = 0
    for block in blocks:
        if getattr(block, _MARK, False):
            continue
        # The instance attribute shadows the class's `call`, which `Layer.__call__` looks up.
        block.call = _rematerialized_call(block.call)
        setattr(block, _MARK, True)
        changed += 1
    return changed


def rematerialize_towers(model):
    """Rematerialises the transformer blocks of the trained towers of a `ThreeTowers`
    (f, when the mode has one, and g); returns the number of blocks. Any tower with a
    `transformer_blocks` list takes part."""
    towers = [model.image_tower, model.text_tower]
    return rematerialize([block for tower in towers if tower is not None for block in tower.transformer_blocks])
