"""What each `tt eval` command does, from run directories and shards to a result dict.

The Click commands call these and print the result; they read only run
directories (`load_run`) and shards made by `tt data convert`. Every result is
JSON-able: {"task", "data", "evaluated_on", "models": [one dict per run], and
"ensemble" when a second run was given}.

Example:
>>> result = zero_shot_report("runs/3t", "shards/val", templates="simple",
...                           other_run="runs/lit", alpha="auto")   # doctest: +SKIP
>>> result["ensemble"]["alpha"], result["ensemble"]["top1"]          # doctest: +SKIP
(0.6, 0.71)
"""

import os

import numpy as np

from tt_cli import storage
from tt_cli.data import schema
from tt_cli.errors import InvalidValueError
from tt_cli.eval import encode, ensemble, fewshot, retrieval, zero_shot
from tt_cli.eval.templates import load_templates


def _check_runs(*run_dirs):
    """Fails fast, before TensorFlow loads, when a run directory is not one."""
    from tt_cli.run_dir import read_run_config

    for run_dir in run_dirs:
        if run_dir is not None:
            read_run_config(run_dir)


def _load_runs(run_dir, other_run):
    from tt_cli.run_dir import load_run

    return [load_run(run_dir)] + ([load_run(other_run)] if other_run else [])


def _describe(run):
    return {"name": os.path.basename(os.path.normpath(run.path)), "run": run.path,
            "mode": run.config.get("mode"), "step": run.step}


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
    info = {"alpha": best,
            "alpha_source": f"picked on a held-out half ({len(pick)} of {n}, seed {ensemble.SPLIT_SEED})",
            "alpha_scores": {str(a): s for a, s in scores.items()}}
    return best, rest, info


def zero_shot_report(run_dir, data, classnames=None, templates="clip", other_run=None, alpha=None,
                     batch_size=encode.DEFAULT_BATCH_SIZE):
    alpha = _alpha_for(other_run, alpha)
    _check_runs(run_dir, other_run)
    _, info = schema.resolve_shards(data)
    template_list = load_templates(templates)
    class_names = zero_shot.class_names_for(info, classnames, data)
    runs = _load_runs(run_dir, other_run)
    probs, labels, models = [], None, []
    for run in runs:
        images = encode.encode_images(run.model, data, batch_size, description=f"images ({_describe(run)['name']})")
        zero_shot.check_labels(images.labels, data, len(class_names))
        labels = images.labels
        probs.append(zero_shot.zero_shot_probabilities(run.model, run.tokenizer, images, class_names,
                                                       template_list, batch_size))
        models.append(dict(_describe(run), temperature=zero_shot.temperature(run.model)))
    n = len(labels)
    result = {"task": "zero-shot", "data": data, "num_classes": len(class_names),
              "templates": templates if templates in ("clip", "simple") else storage.abspath(templates),
              "num_templates": len(template_list)}
    indices = np.arange(n)
    if alpha is not None:
        top1 = lambda a, idx: zero_shot.classification_metrics(
            ensemble.combine(probs[0][idx], probs[1][idx], a), labels[idx])["top1"]
        alpha, indices, result["ensemble"] = _ensemble(alpha, n, top1)
        combined = ensemble.combine(probs[0][indices], probs[1][indices], alpha)
        result["ensemble"].update(zero_shot.classification_metrics(combined, labels[indices]))
    for model, p in zip(models, probs):
        model.update(zero_shot.classification_metrics(p[indices], labels[indices]))
    result.update(models=models, num_examples=int(len(indices)), evaluated_on=_evaluated_on(len(indices), n))
    return result


def retrieval_report(run_dir, data, other_run=None, alpha=None, batch_size=encode.DEFAULT_BATCH_SIZE,
                     ks=retrieval.KS):
    alpha = _alpha_for(other_run, alpha)
    _check_runs(run_dir, other_run)
    schema.resolve_shards(data)
    runs = _load_runs(run_dir, other_run)
    similarities, pairs, models = [], None, []
    for run in runs:
        images = encode.encode_images(run.model, data, batch_size, description=f"images ({_describe(run)['name']})")
        retrieval.check_captions(images.captions, data)
        similarity, pairs = retrieval.similarity_matrix(run.model, run.tokenizer, images, batch_size)
        similarities.append(similarity)
        models.append(_describe(run))
    n = similarities[0].shape[0]
    result = {"task": "retrieval", "data": data}
    indices = np.arange(n)

    def scores_on(similarity, idx):
        return retrieval.retrieval_metrics(*retrieval.subset(similarity, pairs, idx), ks)

    if alpha is not None:
        # Held-out criterion: the mean of all Recall@k both ways (rsum / 2·len(ks)).
        mean_recall = lambda a, idx: np.mean(list(scores_on(ensemble.combine(*similarities, a), idx).values()))
        alpha, indices, result["ensemble"] = _ensemble(alpha, n, mean_recall)
        result["ensemble"].update(scores_on(ensemble.combine(*similarities, alpha), indices))
    for model, similarity in zip(models, similarities):
        model.update(scores_on(similarity, indices))
    _, sub_pairs = retrieval.subset(similarities[0], pairs, indices)
    result.update(models=models, num_images=int(len(indices)), num_captions=int(len(sub_pairs)),
                  evaluated_on=_evaluated_on(len(indices), n, "images"))
    return result


def fewshot_report(run_dir, train_data, data, shots=fewshot.DEFAULT_SHOTS, seeds=fewshot.DEFAULT_SEEDS,
                   l2_reg="auto", batch_size=encode.DEFAULT_BATCH_SIZE):
    _check_runs(run_dir)
    schema.resolve_shards(train_data)
    schema.resolve_shards(data)
    (run,) = _load_runs(run_dir, None)
    name = _describe(run)["name"]
    train = encode.encode_images(run.model, train_data, batch_size, description=f"train images ({name})")
    test = encode.encode_images(run.model, data, batch_size, description=f"test images ({name})")
    zero_shot.check_labels(train.labels, train_data)
    zero_shot.check_labels(test.labels, data)
    # Class count: dataset.json's class names when known, else the largest label seen.
    names = [i.class_names for i in (train.info, test.info) if i is not None and i.class_names]
    num_classes = len(names[0]) if names else int(max(train.labels.max(), test.labels.max())) + 1
    zero_shot.check_labels(train.labels, train_data, num_classes)
    zero_shot.check_labels(test.labels, data, num_classes)
    rows = fewshot.fewshot_scores(train.embeddings, train.labels, test.embeddings, test.labels, num_classes,
                                  shots, seeds, l2_reg)
    return {"task": "fewshot", "data": data, "train_data": train_data, "num_classes": num_classes,
            "num_train": len(train.labels), "num_examples": len(test.labels),
            "l2_reg": l2_reg, "models": [dict(_describe(run), shots=rows)],
            "evaluated_on": _evaluated_on(len(test.labels), len(test.labels))}


def _evaluated_on(used, total, unit="examples"):
    if used == total:
        return f"all {total} {unit}"
    return f"{used} of {total} {unit} (the half not used to pick alpha)"
