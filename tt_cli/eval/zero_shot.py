"""Zero-shot classification (CLIP; big_vision's zero-shot evaluator).

Each class name is put into every prompt template; the normalised text
embeddings of one class are averaged and re-normalised into the class
embedding. An image's class probabilities are the softmax over classes of
`t · cos(image, class)`, where `t` is the run's own learned image-text
temperature `exp(log_t)` (clipped at 100, as in training). Arg-max and top-k do
not depend on `t`; the probabilities only matter for the 3T + LiT ensemble,
where each model's own training-time calibration is the natural one.

In use (what `tt eval zero-shot runs/demo --data shards/val` runs, after a training run):

```python
run = load_run("runs/demo")
zero_shot_accuracy(run.model, run.tokenizer, "shards/val", ["circle", "square"], templates="simple")
# {'top1': 0.62, 'top5': 1.0, 'mean_per_class_recall': 0.61, 'num_examples': 200, ...}
```
"""

import numpy as np

from tt_cli.errors import InvalidValueError
from tt_cli.eval import encode, metrics
from tt_cli.eval.templates import fill, load_templates


def temperature(model):
    """The run's learned image-text scale t = exp(log_t), clipped at 100 as in training."""
    from models.contrastive_loss import temperature as clipped_temperature

    return float(clipped_temperature(model.log_temperatures["image_text"]))


def logits(model, image_embeddings, text_embeddings):
    """[N, M] image-text logits of normalised embeddings, as the run's loss scores pairs:
    t · cos, plus the learned bias of the sigmoid loss (KerasHub's CLIP and SigLIP logits)."""
    scale = np.float32(temperature(model))
    logits_ = scale * (np.asarray(image_embeddings, np.float32) @ np.asarray(text_embeddings, np.float32).T)
    if model.loss_name == "sigmoid":
        logits_ = logits_ + np.float32(model.biases["image_text"].numpy())
    return logits_


def class_embeddings(
    model, tokenizer, class_names, templates, batch_size=encode.DEFAULT_BATCH_SIZE, show_progress=True
):
    """[C, D]: per class, the re-normalised mean of its normalised prompt embeddings.

    A class name given twice (ImageNet has two "crane"s) gets one embedding, copied,
    so that its classes tie exactly and count against the model (pessimistic rule).
    """
    row_of = {}
    source = np.array([row_of.setdefault(name, len(row_of)) for name in class_names], dtype=np.int64)
    names = list(row_of)
    prompts = [fill(t, name) for name in names for t in templates]
    text = encode.encode_texts(model, tokenizer, prompts, batch_size, show_progress, "encoding prompts")
    mean = text.reshape(len(names), len(templates), -1).mean(axis=1)
    return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)[source]


def class_probabilities(image_embeddings, class_embeddings_, scale):
    """[N, C] softmax of scale x cosine similarity.

    Computed once per distinct image and distinct class embedding (a repeated
    class enters each softmax sum as often as it occurs) and then copied, so that
    identical images get identical probabilities and repeated classes tie exactly.
    """
    image_rows, image_of = metrics.distinct_rows(image_embeddings)
    class_rows, class_of = metrics.distinct_rows(class_embeddings_)
    logits = scale * (np.asarray(image_rows, np.float64) @ np.asarray(class_rows, np.float64).T)
    probabilities = metrics.softmax(logits, repeats=np.bincount(class_of, minlength=len(class_rows)))
    return probabilities[image_of][:, class_of]


def classification_metrics(scores, labels):
    """top1, top5 and mean per-class recall of [N, C] scores (pessimistic ties, see metrics)."""
    top = metrics.topk_accuracy(scores, labels, ks=(1, 5))
    return {"top1": top[1], "top5": top[5], "mean_per_class_recall": metrics.mean_per_class_recall(scores, labels)}


def check_labels(labels, data, num_classes=None):
    """TtError unless every example has a label in [0, num_classes)."""
    if labels.size == 0 or (labels == encode.NO_LABEL).any():
        raise InvalidValueError(f"{data}: examples without a label; zero-shot and few-shot need labelled shards.")
    if num_classes is not None and labels.max() >= num_classes:
        raise InvalidValueError(f"{data}: label {labels.max()} but only {num_classes} class names.")


def default_templates(info):
    """The prompts a dataset is evaluated with by default: its built-in ones when it is a
    benchmark tt knows (`tfds_catalog.CATALOG`), else CLIP's 80 ImageNet prompts ("clip")."""
    from tt_cli.data.tfds_catalog import CATALOG

    entry = CATALOG.get((info.tfds or {}).get("name")) if info is not None else None
    if entry is not None and entry.templates:
        return f"builtin:{entry.templates}"
    return "clip"


def class_names_for(info, classnames_path, data):
    """Class names from the file `classnames`, else from the shards' dataset.json."""
    from tt_cli.eval.templates import load_class_names

    if classnames_path:
        return load_class_names(classnames_path)
    if info is not None and info.class_names:
        return list(info.class_names)
    raise InvalidValueError(f"{data}: dataset.json has no class_names; give a file of class names (one name per line).")


def zero_shot_probabilities(
    model, tokenizer, images, class_names, templates, batch_size=encode.DEFAULT_BATCH_SIZE, show_progress=True
):
    """[N, C] class probabilities of already-encoded images."""
    classes = class_embeddings(model, tokenizer, class_names, templates, batch_size, show_progress)
    return class_probabilities(images.embeddings, classes, temperature(model))


def zero_shot_accuracy(
    model,
    tokenizer,
    dataset_or_files,
    class_names,
    templates="clip",
    batch_size=encode.DEFAULT_BATCH_SIZE,
    show_progress=False,
):
    """Zero-shot top-1/top-5/mean per-class recall of an in-memory model
    (the Python API; `tt train` validates with `validation_metrics`).

    `dataset_or_files`: a dataset directory or glob, a list of shard files, or a
    batched `tf.data.Dataset` of {"image" at model.image_size, "label"}.
    `templates`: "clip", "simple", a template file, or a list of templates.
    """
    templates = load_templates(templates) if isinstance(templates, str) else list(templates)
    images = encode.encode_images(model, dataset_or_files, batch_size, show_progress)
    check_labels(images.labels, dataset_or_files, len(class_names))
    probs = zero_shot_probabilities(model, tokenizer, images, class_names, templates, batch_size, show_progress)
    return dict(
        classification_metrics(probs, images.labels),
        num_examples=len(images.labels),
        num_classes=len(class_names),
        temperature=temperature(model),
    )
