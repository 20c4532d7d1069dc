"""The numbers `tt train` logs on `--val-data` (and the demo reports): retrieval recall,
and zero-shot accuracy when the set has class names, from one pass over the images.

An evaluator is built once with its data (class names and prompts resolved then) and
handed to training, which calls `evaluate(model, tokenizer)` with the model in memory.

In use (inside `tt train --val-data shards/val`, with the model and tokenizer being trained):

```python
evaluator = ValidationEvaluator.for_shards("shards/val", templates="simple")
evaluator.evaluate(model, tokenizer)
# {'top1': 0.71, 'top5': 0.99, 'mean_per_class_recall': 0.7, 'image_to_text_R@1': 0.085, ...}
```
"""

from tt_cli.eval import encode, retrieval, zero_shot
from tt_cli.eval.templates import load_templates


class ValidationEvaluator:
    """Zero-shot metrics (with `class_names`) and Recall@k both ways on the shards at `data`.

    Args:
        data: held-out shards (a `tt data convert` directory or a glob).
        class_names: the labels' names; None evaluates retrieval only.
        templates: a template set's name (`tt_cli.eval.templates`) or a list of prompts.
        keys: report only these metrics (None: all of them).
    """

    def __init__(self, data, class_names=None, templates="clip", keys=None, tfds=None):
        self.data, self.class_names, self.keys, self.tfds = data, class_names, keys, tfds
        self.templates = load_templates(templates) if isinstance(templates, str) else list(templates)

    @classmethod
    def for_shards(cls, data, templates=None, keys=None, tfds=None):
        """An evaluator with the class names of the shards' dataset.json (if any), or of the
        TFDS dataset `data` (`tfds`: its `tfds_catalog.TfdsOptions`); `templates` None: the
        data's own prompts (a TFDS benchmark's), else CLIP's 80."""
        from tt_cli.data import schema

        _, info = schema.resolve_shards(data, tfds)
        templates = templates or zero_shot.default_templates(info)
        return cls(data, info.class_names if info is not None else None, templates, keys, tfds)

    def evaluate(self, model, tokenizer):
        """{metric: value} of an in-memory model with its tokenizer."""
        images = encode.encode_images(model, self.data, show_progress=False, tfds=self.tfds)
        retrieval.check_captions(images.captions, self.data)
        results = {}
        if self.class_names:
            zero_shot.check_labels(images.labels, self.data, len(self.class_names))
            probabilities = zero_shot.zero_shot_probabilities(
                model, tokenizer, images, self.class_names, self.templates, show_progress=False
            )
            results.update(zero_shot.classification_metrics(probabilities, images.labels))
        similarity, pairs = retrieval.similarity_matrix(model, tokenizer, images, show_progress=False)
        results.update(retrieval.retrieval_metrics(similarity, pairs))
        return results if self.keys is None else {k: results[k] for k in self.keys}
