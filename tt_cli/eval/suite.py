"""`tt eval suite`: the standard zero-shot and retrieval benchmarks, every task once per run,
with results in CLIP_benchmark's format so they drop into the tables users keep.

A task is a named benchmark of `TASKS` (a TFDS dataset with its built-in class names and
prompts, `tt_cli.data.classnames`) or `KIND=DATA` for any other data (`zeroshot=tfds:NAME:SPLIT`,
`retrieval=shards/val`). A task whose data is not there (a TFDS dataset not prepared, shards
that do not exist) is skipped, with the reason; the others run.

Each result row is what CLIP_benchmark's `clip_benchmark eval` writes: {"dataset", "model",
"pretrained", "task" ("zeroshot_classification" | "zeroshot_retrieval"), "metrics", "language"},
metrics `acc1`, `acc5`, `mean_per_class_recall` or `image_retrieval_recall@k` (text->image: for
each caption, its image in the top k) and `text_retrieval_recall@k` (image->text: any of the
image's first five captions in the top k), as fractions; plus "tt": what tt knows besides
(the run's mode and step, the data, the counts, the five-captions rule).

Example:
`run_suite(["runs/3t"], ["imagenet1k", "coco_retrieval"])` returns one row per run and
task (`result["rows"][0]["metrics"]["acc1"]`) and, in `result["skipped"]`, each task whose
data is not prepared with the reason (`tfds:coco_captions/2014:test: not prepared in ...`).
The tasks are parsed first, so a misspelt one fails before any run is loaded:

>>> parse_tasks("cifar10,zeroshot=tfds:my_set:test")[1]
Task(name='zeroshot=tfds:my_set:test', kind='zeroshot', data='tfds:my_set:test')
"""

import dataclasses

from tt_cli.data import schema, tfds_catalog
from tt_cli.errors import InvalidValueError, UnreadableDataError
from tt_cli.eval import encode, retrieval, zero_shot
from tt_cli.eval.evaluate import column_names
from tt_cli.eval.templates import load_templates

ZEROSHOT, RETRIEVAL = "zeroshot", "retrieval"
# CLIP_benchmark's names of the two tasks.
BENCHMARK_TASK = {ZEROSHOT: "zeroshot_classification", RETRIEVAL: "zeroshot_retrieval"}


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    kind: str  # ZEROSHOT or RETRIEVAL
    data: str  # tfds:NAME[/CONFIG]:SPLIT, or shards


# The benchmarks of CLIP's paper, OpenCLIP's and CLIP_benchmark's tables, on their TFDS test splits.
TASKS = {
    task.name: task
    for task in (
        Task("imagenet1k", ZEROSHOT, "tfds:imagenet2012:validation"),
        Task("imagenet_v2", ZEROSHOT, "tfds:imagenet_v2:test"),
        Task("imagenet_a", ZEROSHOT, "tfds:imagenet_a:test"),
        Task("imagenet_r", ZEROSHOT, "tfds:imagenet_r:test"),
        Task("imagenet_sketch", ZEROSHOT, "tfds:imagenet_sketch:test"),
        Task("cifar10", ZEROSHOT, "tfds:cifar10:test"),
        Task("cifar100", ZEROSHOT, "tfds:cifar100:test"),
        Task("caltech101", ZEROSHOT, "tfds:caltech101:test"),
        Task("pets", ZEROSHOT, "tfds:oxford_iiit_pet:test"),
        Task("flowers102", ZEROSHOT, "tfds:oxford_flowers102:test"),
        Task("dtd", ZEROSHOT, "tfds:dtd:test"),
        Task("food101", ZEROSHOT, "tfds:food101:validation"),
        Task("coco_retrieval", RETRIEVAL, "tfds:coco_captions/2014:test"),
    )
}
DEFAULT_TASKS = tuple(TASKS)


def parse_tasks(text):
    """Comma-separated task names of `TASKS` or `KIND=DATA` -> [Task]; one line for an unknown one."""
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    tasks = []
    for name in names:
        kind, eq, data = name.partition("=")
        if name in TASKS:
            tasks.append(TASKS[name])
        elif eq and kind in (ZEROSHOT, RETRIEVAL) and data:
            tasks.append(Task(name, kind, data))
        else:
            raise InvalidValueError(
                f"task {name!r}: not one of {', '.join(TASKS)}, nor zeroshot=DATA or retrieval=DATA."
            )
    if not tasks:
        raise InvalidValueError("no task given; name at least one (e.g. imagenet1k).")
    return tasks


def _ready(tasks, tfds):
    """(tasks whose data is there, with its DatasetInfo; [{"task", "reason"}] of the others)."""
    ready, skipped = [], []
    for task in tasks:
        try:
            files, info = schema.resolve_shards(task.data, tfds)
        except UnreadableDataError as e:
            skipped.append({"task": task.name, "data": task.data, "reason": str(e)})
            continue
        ready.append((task, info, len(files)))
    return ready, skipped


def _benchmark_name(task, info):
    entry = tfds_catalog.CATALOG.get((info.tfds or {}).get("name")) if info is not None else None
    return entry.benchmark if entry is not None and entry.benchmark else task.name


def _zero_shot(run, task, info, batch_size, tfds, advance):
    class_names = zero_shot.class_names_for(info, None, task.data)
    templates = zero_shot.default_templates(info)
    images = encode.encode_images(run.model, task.data, batch_size, show_progress=False, tfds=tfds, advance=advance)
    zero_shot.check_labels(images.labels, task.data, len(class_names))
    probabilities = zero_shot.zero_shot_probabilities(
        run.model, run.tokenizer, images, class_names, load_templates(templates), batch_size, show_progress=False
    )
    scores = zero_shot.classification_metrics(probabilities, images.labels)
    metrics = {"acc1": scores["top1"], "acc5": scores["top5"], "mean_per_class_recall": scores["mean_per_class_recall"]}
    return metrics, {"num_examples": len(images.labels), "num_classes": len(class_names), "templates": templates}


def _retrieval(run, task, batch_size, tfds, advance):
    images = encode.encode_images(run.model, task.data, batch_size, show_progress=False, tfds=tfds, advance=advance)
    retrieval.check_captions(images.captions, task.data)
    similarity, pairs = retrieval.similarity_matrix(run.model, run.tokenizer, images, batch_size, show_progress=False)
    recall = retrieval.retrieval_metrics(similarity, pairs)
    metrics = {}
    for k in retrieval.KS:
        metrics[f"image_retrieval_recall@{k}"] = recall[f"text_to_image_R@{k}"]
        metrics[f"text_retrieval_recall@{k}"] = recall[f"image_to_text_R@{k}"]
    details = {
        "num_images": similarity.shape[0],
        "num_captions": similarity.shape[1],
        "captions_per_image": retrieval.CAPTIONS_RULE,
    }
    return metrics, details


def run_suite(run_dirs, tasks=DEFAULT_TASKS, tfds=None, batch_size=encode.DEFAULT_BATCH_SIZE, progress=None):
    """Every ready task of `tasks` (names or `Task`s) on each run of `run_dirs`, each run loaded once.

    `progress(total images)`: a context manager yielding `advance(n, description)` (one
    display for the whole suite). Returns {"rows": [CLIP_benchmark rows, run by run, task by
    task], "skipped": [{"task", "data", "reason"}], "runs": [column names], "tasks": [names]}.
    """
    import contextlib

    from tt_cli.run_dir import load_run, read_run_record

    run_dirs = [run_dirs] if isinstance(run_dirs, str) else list(run_dirs)
    if not run_dirs:
        raise InvalidValueError("no run directory given: name at least one run to evaluate.")
    tasks = parse_tasks(tasks) if not all(isinstance(t, Task) for t in tasks) else list(tasks)
    for run_dir in run_dirs:
        read_run_record(run_dir)  # not a run: one line before any work
    ready, skipped = _ready(tasks, tfds)
    names = column_names(run_dirs)
    total = sum(info.num_examples if info else 0 for _, info, _ in ready) * len(run_dirs)
    bar = progress(total) if progress and ready else contextlib.nullcontext(lambda n, description=None: None)
    rows = []
    with bar as advance:
        for run_dir, name in zip(run_dirs, names):
            run = load_run(run_dir)
            for task, info, _ in ready:
                describe = f"{name} · {task.name}"
                step = lambda n, d=describe: advance(n, d)  # noqa: E731
                if task.kind == ZEROSHOT:
                    metrics, details = _zero_shot(run, task, info, batch_size, tfds, step)
                else:
                    metrics, details = _retrieval(run, task, batch_size, tfds, step)
                rows.append(
                    {
                        "dataset": _benchmark_name(task, info),
                        "model": name,
                        "pretrained": run.path,
                        "task": BENCHMARK_TASK[task.kind],
                        "metrics": metrics,
                        "language": "en",
                        "tt": {"task": task.name, "data": task.data, "mode": run.config.get("mode"), "step": run.step}
                        | details,
                    }
                )
            del run
    return {"rows": rows, "skipped": skipped, "runs": names, "tasks": [t.name for t, _, _ in ready]}
