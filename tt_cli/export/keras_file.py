"""The whole `ThreeTowers` model of a run as one `.keras` file, plus its tokenizer.

The file holds the config, the weights and (when the run's model was compiled) the
optimizer, so it can be trained further. Loading it needs tt's classes registered,
which `import models` does. The SentencePiece tokenizer cannot live inside a
`.keras` file; it is written beside it as `<name>.tokenizer.model`.

In use (what `tt export keras runs/demo exports/demo.keras` runs, after a training run):

```python
run = load_run("runs/demo")
export_keras(run, "exports/demo.keras")

import keras, models  # importing models registers tt's classes with Keras
model = keras.saving.load_model("exports/demo.keras")
```
"""

from tt_cli import storage
from tt_cli.errors import InvalidValueError


def tokenizer_path_for(keras_path):
    """Where the tokenizer of a `.keras` export goes: `x.keras` -> `x.tokenizer.model`."""
    return keras_path[: -len(".keras")] + ".tokenizer.model"


def check_keras_path(out):
    """`InvalidValueError` unless `out` ends in `.keras` (what `keras.Model.save` needs)."""
    if not out.endswith(".keras"):
        raise InvalidValueError(f"{out}: a Keras model file must end in .keras.")


def export_keras(run, out):
    """Saves `run.model` to `out` (must end in `.keras`); returns the files written."""
    check_keras_path(out)
    if run.config.get("init"):
        raise InvalidValueError(
            f"{run.path}: a run started from a KerasHub preset keeps that preset's tokenizer, which a .keras "
            "file cannot carry; export it as a KerasHub preset (with its preprocessor) or a savedmodel."
        )
    storage.makedirs(storage.dirname(out))
    run.model.save(out)  # Keras writes URLs through tf.io.gfile itself
    tokenizer_path = tokenizer_path_for(out)
    with storage.open(tokenizer_path, "wb") as f:
        f.write(run.tokenizer.model_bytes)
    return [out, tokenizer_path]
