"""The numbers `tt train` logs on `--val-data` (and the demo reports): retrieval recall,
and zero-shot accuracy when the set has class names, from one pass over the images.

Example:
>>> validation_metrics(model, tokenizer, "shards/val", class_names, templates="simple")  # doctest: +SKIP
{'top1': 0.71, 'top5': 0.99, 'mean_per_class_recall': 0.7, 'image_to_text_R@1': 0.085, ...}
"""

from tt_cli.eval import encode, retrieval, zero_shot
from tt_cli.eval.templates import load_templates


def validation_metrics(model, tokenizer, data, class_names=None, templates="clip"):
    """Zero-shot metrics (with `class_names`) and Recall@k both ways of an in-memory model."""
    images = encode.encode_images(model, data, show_progress=False)
    retrieval.check_captions(images.captions, data)
    results = {}
    if class_names:
        zero_shot.check_labels(images.labels, data, len(class_names))
        templates = load_templates(templates) if isinstance(templates, str) else list(templates)
        probabilities = zero_shot.zero_shot_probabilities(model, tokenizer, images, class_names, templates,
                                                          show_progress=False)
        results.update(zero_shot.classification_metrics(probabilities, images.labels))
    similarity, pairs = retrieval.similarity_matrix(model, tokenizer, images, show_progress=False)
    results.update(retrieval.retrieval_metrics(similarity, pairs))
    return results
