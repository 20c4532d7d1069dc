"""`tt pretrain`: trains a ViT image classifier on labelled shards and saves its
backbone as a KerasHub preset directory, ready to be the third tower
(`tt train --pretrained PRESET_DIR`).

This is how a user brings a domain model, as in the paper's Places365 experiment.
The preset holds the backbone (`config.json`, `model.weights.h5`) and the image
converter the classifier was trained with (pixels scaled to [-1, 1] at the
scale's resolution), so `models.PretrainedTower.from_preset` preprocesses exactly
as training did; the classification head is kept too (`task.json`), so
`keras_hub.models.ImageClassifier.from_preset(OUT)` gives back the classifier.
`tt_pretrain.json` beside them records the command, the classes and the accuracies.

A fixed fraction of the examples (chosen by a hash of each record, so it does not
depend on shard order) is held out for the accuracy report unless `val_data` is
given.

In use (what `tt pretrain --data shards/labelled --out presets/shapes_vit` runs):

```python
pretrain(PretrainConfig(data="shards/labelled", out="presets/shapes_vit", scale="tiny", steps=200, batch_size=64))
# {'train_accuracy': 0.93, 'heldout_accuracy': 0.91, 'num_classes': 18, ...}
```
"""

import contextlib
import dataclasses
import os
import time

from tt_cli import ownership, storage
from tt_cli.data import schema, shard_files
from tt_cli.errors import InvalidValueError, UnreadableDataError
from tt_cli.jsonfile import write_json

PRETRAIN_JSON = "tt_pretrain.json"
COMMAND = "tt pretrain"  # its entries in the manifest of the preset folder
HOLDOUT_BUCKETS = 1000  # the held-out fraction is resolved to 1/1000ths


@dataclasses.dataclass
class PretrainConfig:
    data: str = None
    out: str = None
    val_data: str = None  # default: hold out `holdout` of `data`
    scale: str = "b16"
    image_size: int = None  # default: the scale's
    steps: int = None  # default: `epochs` passes over the training examples
    epochs: float = 10.0
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = None  # default: 5% of the steps
    weight_decay: float = 0.05
    holdout: float = 0.1
    augment: bool = True  # random horizontal flips
    seed: int = 0
    shuffle_buffer: int = 10_000
    overwrite: bool = False
    log_every: int = 50
    command: str = None  # the command line, recorded in tt_pretrain.json

    def to_json(self):
        return dataclasses.asdict(self)


def _check_out(config):
    """Before anything is read: --out must not be, lie in or hold a --data/--val-data folder,
    and may hold only an earlier `tt pretrain` preset (replaced with --overwrite)."""
    if not config.out:
        raise InvalidValueError("no output directory given for the preset.")
    for data in (config.data, config.val_data):
        inputs = [data] if not data or storage.exists(data) else ownership.glob_folders(data)
        ownership.refuse_overlap(config.out, inputs, "output folder")
    inputs = [p for data in (config.data, config.val_data) if data for p in storage.expand(data)]
    return ownership.prepare_whole_folder(config.out, COMMAND, config.overwrite, "a tt pretrain preset", inputs)


def _resolve(path, what):
    if not path:
        raise InvalidValueError(f"no {what}: give labelled shards (a `tt data convert` directory or a glob).")
    if not storage.exists(path) and not any(c in path for c in "*?["):
        raise UnreadableDataError(f"{path}: no such file or directory (the {what}).")
    return shard_files.resolve_shards(path)


def _scan_labels(files):
    """Every label of the shards (one pass reading only the label feature)."""
    import numpy as np
    import tensorflow as tf

    from tt_cli.data.tf_schema import parse_example

    labels = (
        tf.data.TFRecordDataset(list(files), num_parallel_reads=tf.data.AUTOTUNE)
        .map(lambda s: parse_example(s, (schema.LABEL,))[schema.LABEL], num_parallel_calls=tf.data.AUTOTUNE)
        .batch(65536)
    )
    return np.concatenate([b for b in labels.as_numpy_iterator()] or [np.zeros([0], "int64")])


def class_names_of(files, info, data):
    """Class names from dataset.json, else `class_<i>` for 0..max label; TtError without labels."""
    from tt_cli.data.pipeline import first_record_features

    if schema.LABEL not in first_record_features(files):
        raise InvalidValueError(
            f"{data}: records have no '{schema.LABEL}'; tt pretrain needs a labelled (classification) set."
        )
    if info is not None and info.class_names:
        return list(info.class_names)
    labels = _scan_labels(files)
    if labels.size == 0 or labels.max() < 0:
        raise InvalidValueError(f"{data}: no labelled examples; tt pretrain needs a labelled (classification) set.")
    return [f"class_{i}" for i in range(int(labels.max()) + 1)]


def labelled_dataset(
    files, image_size, batch_size, training, holdout=0.0, heldout=False, augment=False, seed=0, shuffle_buffer=10_000
):
    """Batches (uint8 images [B, H, W, 3], int64 labels [B]); endless and shuffled when training.

    `holdout` > 0 splits the records by a hash of their bytes: `heldout=True` keeps
    that fraction, `heldout=False` the rest.
    """
    import tensorflow as tf

    from tt_cli.data.pipeline import decode_image, positioned_records
    from tt_cli.data.tf_schema import parse_example

    cut = int(round(holdout * HOLDOUT_BUCKETS))

    def keep(serialized):
        in_holdout = tf.strings.to_hash_bucket_fast(serialized, HOLDOUT_BUCKETS) < cut
        return in_holdout if heldout else tf.logical_not(in_holdout)

    def parse(position, serialized):
        example = parse_example(serialized, (schema.IMAGE, schema.LABEL))
        image = decode_image(example[schema.IMAGE], image_size)
        if augment:
            flip = tf.random.stateless_uniform([], seed=[seed, position]) < 0.5
            image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
        return image, example[schema.LABEL]

    records = positioned_records(files, seed, shuffle_buffer, training=training, keep=keep if cut else None)
    options = tf.data.Options()
    options.deterministic = True
    return (
        records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=training)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )


def build_classifier(scale, num_classes):
    """(ViTImageClassifier with its preprocessor, ViTImageConverter) at a `models.scales` scale."""
    import keras_hub

    from models import vit_backbone, vit_image_converter

    size = (scale.image_size, scale.image_size)
    backbone = vit_backbone(scale)
    # The same [-1, 1] rescaling tt's own image tower uses; saved with the preset.
    converter = vit_image_converter(size)
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    classifier = keras_hub.models.ViTImageClassifier(
        backbone=backbone, num_classes=num_classes, preprocessor=preprocessor
    )
    return classifier, converter


def _accuracy(classifier, dataset):
    """(top-1 accuracy, example count) of a finite dataset; accuracy None when it is empty."""
    import numpy as np

    correct = total = 0
    for images, labels in dataset:
        predicted = np.argmax(classifier.predict_on_batch(images), axis=-1)
        correct += int(np.sum(predicted == labels.numpy()))
        total += len(predicted)
    return (correct / total if total else None), total


@contextlib.contextmanager
def _read_errors_named(files, data):
    """Turns a `tf.data` error reading `files` into one line naming the corrupt shard."""
    import tensorflow as tf

    from tt_cli.data.pipeline import is_read_error, shard_read_error

    try:
        yield
    except tf.errors.OpError as e:
        if not is_read_error(e):
            raise
        raise shard_read_error(e, files, data) from None


def pretrain(config, log=print, show_progress=True):
    """Trains the classifier, saves the preset to `config.out`, returns the summary it wrote."""
    from tt_cli.training.optimizer import make_optimizer, warmup_cosine
    from tt_cli.training.runtime import start_runtime, total_steps

    runtime = start_runtime("auto", seed=config.seed)  # before any other TensorFlow op
    strategy = runtime.strategy

    import keras

    from tt_cli.step_memory import check_step_fits
    from tt_cli.training.callbacks import ResetMetricsEvery, TrainProgress
    from tt_cli.training.config import model_scale

    if not 0 <= config.holdout < 1:
        raise InvalidValueError(f"holdout {config.holdout}: must be in [0, 1).")
    if config.batch_size < 1:
        raise InvalidValueError(f"batch size {config.batch_size}: must be at least 1.")
    scale = model_scale(config.scale, config.image_size)
    check_step_fits(scale, config.batch_size, runtime.replicas, max_text_len=1)  # images only
    size = (scale.image_size, scale.image_size)
    out_folder = _check_out(config)
    files, info = _resolve(config.data, "training shards")
    class_names = class_names_of(files, info, config.data)
    if config.val_data:
        val_files, _ = _resolve(config.val_data, "validation shards")
        class_names_of(val_files, None, config.val_data)  # labelled too
        holdout = 0.0
    else:
        val_files, holdout = files, config.holdout

    num_train = round(info.num_examples * (1 - holdout)) if info is not None else None
    steps = total_steps(config.steps, config.epochs, num_train, config.batch_size, config.data)
    warmup = config.warmup_steps if config.warmup_steps is not None else steps // 20

    with strategy.scope():
        classifier, _ = build_classifier(scale, len(class_names))
        # Keras' AdamW defaults (β₂ 0.999, ε 1e-7) suit a classifier; the schedule is tt train's.
        optimizer = make_optimizer(
            warmup_cosine(config.lr, steps, warmup),
            config.weight_decay,
            beta2=0.999,
            policy=runtime.policy,
            epsilon=1e-7,
        )
        classifier.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=runtime.jit,
        )
    train_ds = labelled_dataset(
        files,
        size,
        config.batch_size,
        training=True,
        holdout=holdout,
        augment=config.augment,
        seed=config.seed,
        shuffle_buffer=config.shuffle_buffer,
    )
    heldout_ds = labelled_dataset(
        val_files, size, config.batch_size, training=False, holdout=holdout, heldout=holdout > 0
    )
    log(
        f"pretraining a ViT ({config.scale}, {size[0]}x{size[1]}) on {len(class_names)} classes for {steps} steps"
        + (f" ({holdout:.0%} of the examples held out)" if holdout else "")
    )
    started = time.perf_counter()
    # Logged metrics average the last `log_every` steps, so the final training accuracy
    # describes the end of training, not its whole course.
    callbacks = [
        TrainProgress(
            steps,
            config.batch_size,
            config.log_every,
            enabled=show_progress,
            label="pretrain",
            unit="images",
            bar_keys=("loss", "accuracy"),
            summary_keys=("loss", "accuracy"),
        ),
        ResetMetricsEvery(config.log_every, steps),
    ]
    with _read_errors_named(files + (val_files if config.val_data else []), config.data):
        history = classifier.fit(
            train_ds, epochs=1, steps_per_epoch=steps, callbacks=callbacks, verbose=0, shuffle=False
        )
        seconds = time.perf_counter() - started
        train_accuracy = float(history.history["accuracy"][-1])
        heldout_accuracy, num_heldout = _accuracy(classifier, heldout_ds) if (holdout or config.val_data) else (None, 0)

    # The backbone and its image converter make the preset `--pretrained` reads; the
    # task files beside them keep the whole classifier (`ImageClassifier.from_preset`).
    # An uncompiled copy: saving the trained one would store its optimizer state, which
    # `ImageClassifier.from_preset` warns about and cannot use.
    saved, _ = build_classifier(scale, len(class_names))
    saved.set_weights(classifier.get_weights())
    ownership.begin_whole_folder(out_folder)
    with storage.staged_folder(config.out) as local:  # KerasHub writes local disk only
        saved.save_to_preset(local)
    summary = {
        "command": config.command,
        "config": config.to_json(),
        "scale": scale.to_json(),
        "steps": steps,
        "seconds": round(seconds, 1),
        "num_classes": len(class_names),
        "class_names": class_names,
        "train_accuracy": train_accuracy,
        "heldout_accuracy": heldout_accuracy,
        "heldout": config.val_data or f"{holdout:.0%} of {config.data}",
        "num_heldout": num_heldout,
        "chance": 1 / len(class_names),
        "output_dim": scale.width,
        "image_size": list(size),
    }
    write_json(os.path.join(config.out, PRETRAIN_JSON), summary)
    ownership.record_all(out_folder)
    return summary
