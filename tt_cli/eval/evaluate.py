"""What each `tt eval` command does, from run directories and shards to a result dict.

The Click commands call these and print the result; they read only run
directories (`load_run`) and shards made by `tt data convert`. Each evaluates one
run or several side by side on the same data (each run with its own tokenizer and
image size). Every result is JSON-able: {"task", "data", "evaluated_on", "models":
[one dict per run, in the order given, each with its column "name"], and "ensemble"
when a second run was given}. With `collect` (a list) zero-shot and retrieval also
append each run's scores and thumbnails for `--report`.

In use (what `tt eval zero-shot` and `tt eval retrieval` run, after training runs):

```python
result = zero_shot_report(["runs/3t"], "shards/val", templates="simple", other_run="runs/lit", alpha="auto")
result["ensemble"]["alpha"], result["ensemble"]["top1"]  # (0.6, 0.71)
side_by_side = retrieval_report(["runs/clip", "runs/lit", "runs/3t"], "shards/val")
[m["name"] for m in side_by_side["models"]]  # ['clip', 'lit', '3t']
```
"""

import os

import numpy as np

from tt_cli import storage
from tt_cli.data import schema
from tt_cli.errors import InvalidValueError
from tt_cli.eval import encode, ensemble, fewshot, retrieval, zero_shot
from tt_cli.eval.templates import is_builtin, load_templates


def _run_list(run_dirs):
    """The runs to evaluate, side by side: a list of run directories (one path is one run)."""
    runs = [run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else list(run_dirs)
    if not runs:
        raise InvalidValueError("no run directory given: name at least one run to evaluate.")
    return runs


def _check_runs(run_dirs, other_run=None):
    """Fails fast, before TensorFlow loads, when a run directory is not one, or when an
    ensemble (`other_run`) is asked of other than one run."""
    from tt_cli.init_preset import is_preset_dir
    from tt_cli.run_dir import read_run_record

    if other_run is not None and len(run_dirs) != 1:
        raise InvalidValueError(
            f"an ensemble combines one run with other_run {other_run}, but {len(run_dirs)} runs "
            "were given; evaluate them side by side without an ensemble."
        )
    for run_dir in [*run_dirs, other_run]:
        if run_dir is not None and not is_preset_dir(run_dir):  # a KerasHub preset is evaluated as it is
            read_run_record(run_dir)


def _load_runs(run_dirs, other_run=None, interpolate=None):
    """The loaded runs, one at a time (a run's model is freed before the next is loaded);
    `interpolate`: WiSE-FT's weight for each of `run_dirs` (`run_dir.load_run`)."""
    from tt_cli.run_dir import load_run

    for run_dir in run_dirs:
        yield load_run(run_dir, interpolate)
    if other_run:
        yield load_run(other_run)


def column_names(paths):
    """A distinct column name per run: its folder's name, with as much of its path as tells
    it from another run of the same name (`a/run`, `b/run`), numbered if given twice.

    Example:
    >>> column_names(["runs/3t", "runs/lit", "old/3t", "runs/3t"])
    ['runs/3t', 'lit', 'old/3t', 'runs/3t (2)']
    """
    parts = [storage.abspath(p).rstrip("/").split("/") for p in paths]
    names = []
    for own in parts:
        depth = 1
        while depth < len(own) and any(p[-depth:] == own[-depth:] and p != own for p in parts):
            depth += 1
        names.append("/".join(own[-depth:]))
    seen = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name} ({seen[name]})"
    return names


def _describe(run, name):
    described = {"name": name, "run": run.path, "mode": run.config.get("mode"), "step": run.step}
    if run.interpolate is not None:
        described["interpolate"] = run.interpolate
    return described


def _collect(collect, name, images, **scores):
    """With `collect` (a list), adds (run name, its encoded images with thumbnails, the scores
    computed from them) for `--report` (`tt_cli.report.build.eval_report`)."""
    if collect is not None:
        collect.append((name, images, scores))


def _alpha_for(other_run, alpha):
    if other_run is None:
        if alpha is not None:
            raise InvalidValueError(f"alpha {alpha}: an ensemble weight needs a second run (other_run).")
        return None
    return ensemble.parse_alpha(alpha)


def _ensemble(alpha, n, score):
    """(alpha, indices to evaluate on, ensemble info) for a given or auto alpha.

    `score(alpha, indices)` is the held-out criterion, higher is better.
    """
    if alpha != "auto":
        return alpha, np.arange(n), {"alpha": alpha, "alpha_source": "given"}
    pick, rest = ensemble.heldout_split(n)
    best, scores = ensemble.best_alpha(lambda a: score(a, pick))
    info = {
        "alpha": best,
        "alpha_source": f"picked on a held-out half ({len(pick)} of {n}, seed {ensemble.SPLIT_SEED})",
        "alpha_scores": {str(a): s for a, s in scores.items()},
    }
    return best, rest, info


def zero_shot_report(
    run_dirs,
    data,
    classnames=None,
    templates=None,
    other_run=None,
    alpha=None,
    batch_size=encode.DEFAULT_BATCH_SIZE,
    collect=None,
    tfds=None,
    interpolate=None,
):
    """Zero-shot classification of each run of `run_dirs` (a list; a path is one run) on
    `data`, and with `other_run` their ensemble (one run only); see the module's docstring.
    `templates` None: the dataset's built-in prompts (a TFDS benchmark), else CLIP's 80.
    `interpolate`: WiSE-FT's weight for each of `run_dirs` (runs started from a preset)."""
    run_dirs = _run_list(run_dirs)
    alpha = _alpha_for(other_run, alpha)
    _check_runs(run_dirs, other_run)
    _, info = schema.resolve_shards(data, tfds)
    templates = templates or zero_shot.default_templates(info)
    template_list = load_templates(templates)
    class_names = zero_shot.class_names_for(info, classnames, data)
    names = column_names([*run_dirs, *([other_run] if other_run else [])])
    probs, labels, models = [], None, []
    for run, name in zip(_load_runs(run_dirs, other_run, interpolate), names):
        images = encode.encode_images(
            run.model, data, batch_size, description=f"images ({name})", thumbnails=collect is not None, tfds=tfds
        )
        zero_shot.check_labels(images.labels, data, len(class_names))
        labels = images.labels
        probs.append(
            zero_shot.zero_shot_probabilities(run.model, run.tokenizer, images, class_names, template_list, batch_size)
        )
        _collect(collect, name, images, probabilities=probs[-1], class_names=class_names)
        models.append(dict(_describe(run, name), temperature=zero_shot.temperature(run.model)))
    n = len(labels)
    result = {
        "task": "zero-shot",
        "data": data,
        "num_classes": len(class_names),
        "templates": templates if is_builtin(templates) else storage.abspath(templates),
        "num_templates": len(template_list),
    }
    indices = np.arange(n)
    if alpha is not None:
        top1 = lambda a, idx: zero_shot.classification_metrics(
            ensemble.combine(probs[0][idx], probs[1][idx], a), labels[idx]
        )["top1"]
        alpha, indices, result["ensemble"] = _ensemble(alpha, n, top1)
        combined = ensemble.combine(probs[0][indices], probs[1][indices], alpha)
        result["ensemble"].update(zero_shot.classification_metrics(combined, labels[indices]))
    for model, p in zip(models, probs):
        model.update(zero_shot.classification_metrics(p[indices], labels[indices]))
    result.update(models=models, num_examples=int(len(indices)), evaluated_on=_evaluated_on(len(indices), n))
    return result


def retrieval_report(
    run_dirs,
    data,
    other_run=None,
    alpha=None,
    batch_size=encode.DEFAULT_BATCH_SIZE,
    ks=retrieval.KS,
    collect=None,
    tfds=None,
    interpolate=None,
):
    """Image-text retrieval of each run of `run_dirs` (a list; a path is one run) on `data`,
    and with `other_run` their ensemble (one run only). Without an ensemble each run's
    similarity matrix is scored and dropped before the next run is encoded. `interpolate`:
    as for `zero_shot_report`."""
    run_dirs = _run_list(run_dirs)
    alpha = _alpha_for(other_run, alpha)
    _check_runs(run_dirs, other_run)
    schema.resolve_shards(data, tfds)
    names = column_names([*run_dirs, *([other_run] if other_run else [])])
    similarities, pairs, models, n = [], None, [], None

    def scores_on(similarity, idx):
        return retrieval.retrieval_metrics(*retrieval.subset(similarity, pairs, idx), ks)

    for run, name in zip(_load_runs(run_dirs, other_run, interpolate), names):
        images = encode.encode_images(
            run.model, data, batch_size, description=f"images ({name})", thumbnails=collect is not None, tfds=tfds
        )
        retrieval.check_captions(images.captions, data)
        similarity, pairs = retrieval.similarity_matrix(run.model, run.tokenizer, images, batch_size)
        n = similarity.shape[0]
        _collect(collect, name, images, similarity=similarity)
        models.append(_describe(run, name))
        if alpha is None:
            models[-1].update(scores_on(similarity, np.arange(n)))
        else:
            similarities.append(similarity)
    result = {"task": "retrieval", "data": data}
    indices = np.arange(n)
    if alpha is not None:
        # Held-out criterion: the mean of all Recall@k both ways (rsum / 2·len(ks)).
        mean_recall = lambda a, idx: np.mean(list(scores_on(ensemble.combine(*similarities, a), idx).values()))
        alpha, indices, result["ensemble"] = _ensemble(alpha, n, mean_recall)
        result["ensemble"].update(scores_on(ensemble.combine(*similarities, alpha), indices))
        for model, similarity in zip(models, similarities):
            model.update(scores_on(similarity, indices))
    num_captions = int(np.isin(pairs[:, 0], indices).sum())  # the captions of the images evaluated on
    result.update(
        models=models,
        num_images=int(len(indices)),
        num_captions=num_captions,
        captions_per_image=retrieval.CAPTIONS_RULE,
        evaluated_on=_evaluated_on(len(indices), n, "images"),
    )
    return result


def fewshot_report(
    run_dirs,
    train_data,
    data,
    shots=fewshot.DEFAULT_SHOTS,
    seeds=fewshot.DEFAULT_SEEDS,
    l2_reg="auto",
    batch_size=encode.DEFAULT_BATCH_SIZE,
    tfds=None,
    interpolate=None,
):
    """Few-shot linear probes on each run of `run_dirs` (a list; a path is one run): the
    same shots (by seed) for every run, so that their numbers compare. `interpolate`: as
    for `zero_shot_report`."""
    run_dirs = _run_list(run_dirs)
    _check_runs(run_dirs)
    schema.resolve_shards(train_data, tfds)
    schema.resolve_shards(data, tfds)
    models = []
    for run, name in zip(_load_runs(run_dirs, interpolate=interpolate), column_names(run_dirs)):
        train = encode.encode_images(run.model, train_data, batch_size, description=f"train images ({name})", tfds=tfds)
        test = encode.encode_images(run.model, data, batch_size, description=f"test images ({name})", tfds=tfds)
        zero_shot.check_labels(train.labels, train_data)
        zero_shot.check_labels(test.labels, data)
        train_names, test_names = (i.class_names if i is not None else None for i in (train.info, test.info))
        if train_names:
            zero_shot.check_labels(train.labels, train_data, len(train_names))
        if test_names:
            zero_shot.check_labels(test.labels, data, len(test_names))
        # The test labels as train class ids, matched by class name.
        num_classes, test_labels = fewshot.align_classes(
            train_names, train.labels, test_names, test.labels, train_data, data
        )
        rows = fewshot.fewshot_scores(
            train.embeddings, train.labels, test.embeddings, test_labels, num_classes, shots, seeds, l2_reg
        )
        models.append(dict(_describe(run, name), shots=rows))
    return {
        "task": "fewshot",
        "data": data,
        "train_data": train_data,
        "num_classes": num_classes,
        "num_train": len(train.labels),
        "num_examples": len(test.labels),
        "l2_reg": l2_reg,
        "models": models,
        "evaluated_on": _evaluated_on(len(test.labels), len(test.labels)),
    }


def _evaluated_on(used, total, unit="examples"):
    if used == total:
        return f"all {total} {unit}"
    return f"{used} of {total} {unit} (the half not used to pick alpha)"
