"""`tt data convert`: a user's source -> validated TFRecord shards, resumably.

Plan: list the source's rows (`sources.py`), assign row i to shard i mod N,
then convert each shard in a worker process (`ProcessPoolExecutor`, one task
per shard): decode and check every image once (`validate.py`), write the shard
under a temporary name and rename it when complete. A rerun after an
interruption finds the same plan in `OUT/.convert/plan.json` and converts only
the shards whose files do not exist yet, or whose image files changed (size or
modification time, `source_fingerprints`) since they were converted; a finished
conversion whose image files changed is converted again rather than called complete. At the end the per-shard rejections
are merged into `rejected.jsonl` (in source order), and `dataset.json` and
`report.json` are written. No TensorFlow is imported.

Ctrl-C stops within a second or two: pending shards are cancelled, the workers
(which ignore SIGINT themselves) are terminated and their temporary files
removed, so a rerun resumes from the shards that were finished.

Example:
>>> import json, os, tempfile
>>> from PIL import Image
>>> folder = tempfile.mkdtemp()
>>> for name, colour in [("red.png", "red"), ("blue.png", "blue")]:
...     Image.new("RGB", (8, 8), colour).save(os.path.join(folder, name))
>>> _ = open(os.path.join(folder, "broken.png"), "wb").write(b"not an image")
>>> with open(os.path.join(folder, "captions.jsonl"), "w") as f:
...     for name in ["red.png", "blue.png", "broken.png"]:
...         print(json.dumps({"image": name, "caption": f"a {name[:-4]} square"}), file=f)
>>> report = convert(os.path.join(folder, "captions.jsonl"), os.path.join(folder, "shards"), workers=1)
>>> report["written"], report["rejected"]
(2, {'unreadable_image': 1})
"""

import collections
import concurrent.futures
import functools
import hashlib
import json
import math
import multiprocessing
import os
import queue as queue_lib
import re
import signal
import time

from tt_cli import ownership, storage
from tt_cli.data import schema, sources, validate
from tt_cli.errors import ConflictError, InvalidValueError
from tt_cli.jsonfile import write_json, write_json_lines

ROWS_PER_SHARD = 1000  # ~100 MB of typical web images per shard
WORK_DIR = ".convert"  # per-shard progress while a conversion is unfinished
REJECTED = "rejected.jsonl"
REPORT = "report.json"

_progress_queue = None  # set in each worker process by _init_worker


def _init_worker(progress_queue):
    global _progress_queue
    _progress_queue = progress_queue
    # Ctrl-C reaches the whole process group; the parent alone decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read_image(row):
    if isinstance(row.image, str):
        return validate.read_image_file(row.image)
    tar_path, offset, size = row.image
    return validate.read_tar_member(tar_path, offset, size)


def convert_shard(out_dir, index, num_shards, rows, max_size, report_progress=None, source=None):
    """Converts one shard's rows; writes the shard, its rejections and its stats (with
    `source`, the fingerprint of the rows' image files, `source_fingerprints`).

    The stats file is written before the shard is renamed into place, so a
    shard file that exists always has its stats and rejections beside it.
    """
    # Here, not at the top: `tfds_convert` reuses this module's plan beside TensorFlow, which
    # cannot share a process with the `tfrecord` package.
    from tt_cli.data.example_codec import encode_example
    from tt_cli.data.shard_writer import ShardWriter

    work = os.path.join(out_dir, WORK_DIR)
    name = schema.shard_name(index, num_shards)
    rejects, conversions, written, pending = [], collections.Counter(), 0, 0
    report = report_progress or (lambda n: _progress_queue.put(n) if _progress_queue else None)
    with ShardWriter(os.path.join(out_dir, name)) as writer:
        for row in rows:
            checked = _read_image(row)
            if not isinstance(checked, validate.Rejection):
                checked = validate.check_image_bytes(checked, max_size)
            if isinstance(checked, validate.Rejection):
                rejects.append(sources.reject_record(row.position, row.key, row.origin, checked, row.image))
            else:
                writer.write(encode_example(checked.data, row.captions, row.key, row.label))
                conversions.update(checked.conversions)
                if row.caption_truncated:
                    conversions[validate.CAPTION_TRUNCATED] += 1
                written += 1
            pending += 1
            if pending == 8:
                report(pending)
                pending = 0
        write_json_lines(os.path.join(work, f"{name}.rejected.jsonl"), rejects)
        stats = {"shard": name, "written": written, "conversions": dict(conversions), "source": source}
        write_json(os.path.join(work, f"{name}.json"), stats)
    if pending:
        report(pending)
    return dict(stats, stamp=writer.content.stamp())  # the shard's hash, for the manifest the parent keeps


def _fingerprint(listing, num_shards, max_size):
    """Identifies the plan: same source rows and settings -> same shards."""
    digest = hashlib.sha256()
    head = [schema.SCHEMA_VERSION, listing.format, listing.source, num_shards, max_size, listing.class_names]
    digest.update(json.dumps(head).encode())
    for row in listing.rows:
        fields = [row.position, row.key, row.image, row.captions, row.label]
        digest.update(json.dumps(fields).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _stamp(path):
    """[size, mtime in ns] of an image file (None for one that is missing or unreadable)."""
    try:
        return list(storage.size_and_mtime(path))  # never opens it: a FIFO or device is only looked at
    except (OSError, ValueError):
        return None


def source_fingerprints(rows, num_shards):
    """One fingerprint per shard of the image files its rows read (row i is in shard i mod N):
    their paths with sizes and modification times (a tar's, for WebDataset rows).

    Sizes and times, not hashes: any tool that rewrites a file changes its time, and a stat
    costs no read, where hashing would read the whole source on every rerun. A copy that
    keeps both (`cp -p` of a same-sized file) goes unnoticed: `overwrite` converts anew.
    """
    stamps = {}
    digests = [hashlib.sha256() for _ in range(num_shards)]
    for i, row in enumerate(rows):
        path = row.image if isinstance(row.image, str) else row.image[0]
        if path not in stamps:
            stamps[path] = _stamp(path)
        digests[i % num_shards].update(json.dumps([path, stamps[path]]).encode())
    return [d.hexdigest()[:32] for d in digests]


COMMAND = "tt data convert"
_SHARD_NAME = re.compile(r"shard-\d{5}-of-\d{5}\.tfrecord")
_FIXED_NAMES = (schema.DATASET_JSON, REJECTED, REPORT, WORK_DIR)


def _is_output_name(name):
    return name in _FIXED_NAMES or _SHARD_NAME.fullmatch(name)


def _check_out_vs_source(source, out_dir):
    """OUT may not be a source folder (an image tree, a folder of tars, the folders a tar
    glob matches), lie inside one or hold one. It may be the folder of a CSV, JSONL or
    tar file (nothing but tt's own files is ever removed there) unless the file has a
    name convert writes (a `report.json` given as the source)."""
    is_glob = not storage.exists(source) and storage.has_glob_characters(source)
    ownership.refuse_overlap(
        out_dir, ownership.glob_folders(source) if is_glob else [source], is_output_name=_is_output_name
    )


def _check_result_path(out_dir, result_path):
    """A result file (`--json`) may not be one of the files the conversion writes in `out_dir`."""
    if not result_path:
        return
    folder, name = storage.realpath(storage.dirname(result_path)), os.path.basename(result_path)
    real_out = storage.realpath(out_dir)
    ours = name.endswith(ownership.TMP) or name in (ownership.MANIFEST,) or _is_output_name(name)
    if (folder == real_out and ours) or folder == storage.realpath(os.path.join(out_dir, WORK_DIR)):
        raise InvalidValueError(
            f"result file {result_path}: the conversion writes that file in {out_dir} itself; choose another path."
        )


def _read_json_or_empty(path):
    try:
        with storage.open(path) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _legacy_entries(out_dir, fingerprint, planned):
    """What a tt without manifests provably wrote in OUT: a finished conversion whose
    report.json names this folder as its output, or an unfinished one of this very plan."""
    entries = []
    report = _read_json_or_empty(os.path.join(out_dir, REPORT))
    if report.get("fingerprint") and report.get("out") == storage.abspath(out_dir):
        shards = _read_json_or_empty(os.path.join(out_dir, schema.DATASET_JSON)).get("shards") or []
        entries += [schema.DATASET_JSON, REJECTED, REPORT]
        entries += [n for n in shards if isinstance(n, str) and _SHARD_NAME.fullmatch(n)]
    if _read_json_or_empty(os.path.join(out_dir, WORK_DIR, "plan.json")).get("fingerprint") == fingerprint:
        entries += planned
    return entries


def prepare_out_dir(folder, fingerprint, overwrite, num_shards, sources_now):
    """Returns ('fresh', 'resume' or 'complete', how many finished shards' image files changed)
    after checking what OUT (`folder`, an `ownership.OutputFolder`) holds.

    Only what `tt data convert` wrote in OUT (its manifest, `tt_cli.ownership`) is read
    as its state or replaced; a name it needs that someone else's file holds stops it.
    A finished conversion of the same plan whose image files changed since (`sources_now`,
    `source_fingerprints`) is converted anew, as a rerun of the same command should.
    """
    out_dir = folder.path
    planned = [schema.shard_name(i, num_shards) for i in range(num_shards)]
    planned += list(_FIXED_NAMES)
    if not folder.hashed():  # no manifest, or one of a tt that kept no hashes
        folder.adopt(_legacy_entries(out_dir, fingerprint, planned))
    owned = folder.owned()
    plan_path = os.path.join(out_dir, WORK_DIR, "plan.json")
    hint = "choose another output folder"
    same_plan = False
    if not overwrite:
        report = _read_json_or_empty(os.path.join(out_dir, REPORT)) if REPORT in owned else {}
        same_plan = report.get("fingerprint") == fingerprint
        if same_plan and report.get("source_fingerprints") == sources_now:
            return "complete", 0
        if WORK_DIR in owned and _read_json_or_empty(plan_path).get("fingerprint") == fingerprint:
            folder.claim(planned, hint)
            return "resume", 0
    folder.check_free(planned, hint)
    if not overwrite and not same_plan and any(storage.lexists(os.path.join(out_dir, n)) for n in owned):
        raise ConflictError(
            f"{out_dir} holds shards of a different source or settings",
            ("overwrite", True, "to replace them, or choose another output folder"),
        )
    folder.remove_owned()
    folder.claim(planned, hint)
    storage.makedirs(os.path.dirname(plan_path))
    write_json(plan_path, {"fingerprint": fingerprint})
    folder.record([f"{WORK_DIR}/plan.json"])
    if not same_plan:
        return "fresh", 0
    before = report.get("source_fingerprints") or [None] * num_shards
    return "fresh", sum(a != b for a, b in zip(before, sources_now))


MANIFEST_EVERY = 10  # seconds: convert records each finished shard, and writes its manifest this often


def _work_files(name):
    return [f"{WORK_DIR}/{name}.json", f"{WORK_DIR}/{name}.rejected.jsonl"]


def _record_shard(folder, stats):
    """Stamps a finished shard (hashed as it was written) and its work files in the manifest."""
    name = stats["shard"]
    folder.record([name], stamps={name: stats["stamp"]})
    folder.record(_work_files(name))


def _run_shards(out_dir, tasks, workers, max_size, num_shards, advance, done):
    """Runs the shard tasks in a process pool (or in this process for one worker); `done(stats)`
    after each shard, in this process."""
    if workers <= 1 or len(tasks) <= 1:
        for index, rows, source in tasks:
            done(convert_shard(out_dir, index, num_shards, rows, max_size, report_progress=advance, source=source))
        return
    progress_queue = multiprocessing.Queue()
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)), initializer=_init_worker, initargs=(progress_queue,)
    ) as pool:
        futures = [
            pool.submit(convert_shard, out_dir, i, num_shards, rows, max_size, source=source)
            for i, rows, source in tasks
        ]
        pending = set(futures)
        try:
            while pending:
                finished, pending = concurrent.futures.wait(pending, timeout=0.1)
                for future in finished:
                    done(future.result())  # re-raises a worker's error here
                while True:
                    try:
                        advance(progress_queue.get_nowait())
                    except queue_lib.Empty:
                        break
        except KeyboardInterrupt:
            # Leaving the `with` would wait for every running shard: stop the workers first.
            pool.shutdown(wait=False, cancel_futures=True)
            _terminate_workers()
            raise
        # Counts still in flight when the last future finished.
        deadline = time.time() + 1.0
        while time.time() < deadline:
            try:
                advance(progress_queue.get(timeout=0.05))
            except queue_lib.Empty:
                break


def _terminate_workers():
    """Ends this process's worker processes (the pool's, the only ones it starts) and waits for them."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=5)


def _remove_partial_files(out_dir, names):
    """Removes the temporary files of unfinished shards (ours: named after this plan's shards)."""
    work = os.path.join(out_dir, WORK_DIR)
    for name in names:
        for path in (
            os.path.join(out_dir, name + ".tmp"),
            os.path.join(work, f"{name}.rejected.jsonl.tmp"),
            os.path.join(work, f"{name}.json.tmp"),
        ):
            if storage.exists(path):
                storage.remove(path)


def _finished_stats(out_dir, name):
    """The stats of shard `name` when it is finished (the shard and its stats in place), else None."""
    stats = os.path.join(out_dir, WORK_DIR, f"{name}.json")
    if not (storage.isfile(os.path.join(out_dir, name)) and storage.isfile(stats)):
        return None
    return _read_json_or_empty(stats)


def merge_shards(out_dir, names, rejects=()):
    """(rows written, conversions, rejections, rows of each shard) of the finished shards `names`,
    from their stats in the work folder; writes `rejected.jsonl` (`rejects` of the listing and the
    shards', in source order)."""
    work = os.path.join(out_dir, WORK_DIR)
    written, conversions, rejects, per_shard = 0, collections.Counter(), list(rejects), []
    for name in names:
        with storage.open(os.path.join(work, f"{name}.json")) as f:
            stats = json.load(f)
        per_shard.append(stats["written"])
        written += stats["written"]
        conversions.update(stats["conversions"])
        with storage.open(os.path.join(work, f"{name}.rejected.jsonl")) as f:
            rejects.extend(json.loads(line) for line in f)
    rejects.sort(key=lambda r: r["position"])
    for record in rejects:
        del record["position"]
    write_json_lines(os.path.join(out_dir, REJECTED), rejects)
    return written, conversions, rejects, per_shard


def finish_out_dir(folder, names):
    """Stamps what a finished conversion wrote into `folder` (an `ownership.OutputFolder`) and
    removes its work folder. Shards finished by an earlier session that was stopped before it
    could stamp them are hashed now; the work folder stays if something in it is not tt's."""
    listed = folder.listed()
    unstamped = [n for n in names if "sha256" not in listed.get(n, {})]
    folder.record(unstamped + [w for n in unstamped for w in _work_files(n)] + [schema.DATASET_JSON, REJECTED, REPORT])
    folder.flush()
    try:
        folder.remove_owned([WORK_DIR])
    except ConflictError:
        pass


def nothing_converted(out_dir):
    return InvalidValueError(f"no row could be converted; the reasons are in {os.path.join(out_dir, REJECTED)}.")


def convert(
    source,
    out_dir,
    fmt="auto",
    image_column=None,
    caption_column=None,
    key_column=None,
    label_column=None,
    num_shards=None,
    workers=None,
    max_size=None,
    overwrite=False,
    progress=None,
    result_path=None,
):
    """Converts `source` into shards in `out_dir`; returns the report dict.

    Args:
      progress: optional `progress(total_rows)` context manager factory that
        yields an `advance(n)` function (e.g. `progress.progress_bar`).
      result_path: where the caller will write the report (checked first: not a file the
        conversion writes).
    """
    start = time.time()
    _check_out_vs_source(source, out_dir)
    _check_result_path(out_dir, result_path)
    listing = sources.list_source(source, fmt, image_column, caption_column, key_column, label_column)
    rows = listing.rows
    if num_shards is None:
        num_shards = max(1, math.ceil(len(rows) / ROWS_PER_SHARD))
    if num_shards < 1:
        raise InvalidValueError(f"{num_shards} shards: the number of shards must be at least 1.")
    num_shards = max(1, min(num_shards, len(rows)))
    workers = workers or os.cpu_count() or 1
    if not storage.seen_by_other_processes(out_dir):
        workers = 1  # shards written by worker processes would be lost with them
    fingerprint = _fingerprint(listing, num_shards, max_size)
    sources_now = source_fingerprints(rows, num_shards)
    # Inputs: the source and every file its rows read (never removed, whatever a manifest says).
    inputs = [*storage.expand(source), *(r.image if isinstance(r.image, str) else r.image[0] for r in rows)]
    folder = ownership.OutputFolder(out_dir, COMMAND, inputs)
    state, changed = prepare_out_dir(folder, fingerprint, overwrite, num_shards, sources_now)
    if state == "complete":
        with storage.open(os.path.join(out_dir, REPORT)) as f:
            report = json.load(f)
        if report["written"] == 0:  # the earlier run failed; so does this one
            raise nothing_converted(out_dir)
        report["already_complete"] = True
        return report

    names = [schema.shard_name(i, num_shards) for i in range(num_shards)]
    finished = [_finished_stats(out_dir, n) for n in names]
    # A shard finished from image files that have changed since is converted again.
    changed += sum(stats is not None and stats.get("source") != sources_now[i] for i, stats in enumerate(finished))
    up_to_date = [stats is not None and stats.get("source") == sources_now[i] for i, stats in enumerate(finished)]
    tasks = [(i, rows[i::num_shards], sources_now[i]) for i in range(num_shards) if not up_to_date[i]]
    todo_rows = sum(len(r) for _, r, _ in tasks)
    record = functools.partial(_record_shard, folder)
    folder.deferred(MANIFEST_EVERY)  # (a write per shard would be quadratic in the shards)
    try:
        if tasks and progress is None:
            _run_shards(out_dir, tasks, workers, max_size, num_shards, lambda n: None, record)
        elif tasks:
            with progress(todo_rows) as advance:
                _run_shards(out_dir, tasks, workers, max_size, num_shards, advance, record)
    except KeyboardInterrupt:
        _terminate_workers()
        _remove_partial_files(out_dir, names)
        done = sum(storage.isfile(os.path.join(out_dir, n)) for n in names)
        raise InvalidValueError(
            f"interrupted with {done} of {num_shards} shard(s) finished; run the same command again to resume."
        ) from None
    finally:
        folder.flush()  # the shards finished so far, stamped, whatever stopped the rest

    written, conversions, rejects, per_shard = merge_shards(out_dir, names, listing.rejects)
    info = schema.DatasetInfo(
        num_examples=written,
        num_shards=num_shards,
        source=f"{listing.format}:{validate.printable(listing.source)}",
        class_names=listing.class_names,
        shards=names,
        shard_examples=per_shard,
        shard_bytes=[storage.getsize(os.path.join(out_dir, n)) for n in names],
    )
    schema.write_info(out_dir, info)
    report = {
        "source": validate.printable(listing.source),
        "format": listing.format,
        "read": written + len(rejects),
        "written": written,
        "rejected": dict(sorted(collections.Counter(r["reason"] for r in rejects).items())),
        "converted": dict(sorted(conversions.items())),
        "ignored_files": listing.ignored_files,
        "num_shards": num_shards,
        "shards_converted_now": len(tasks),
        "shards_resumed": num_shards - len(tasks),
        "labelled": listing.labelled,
        "num_classes": len(listing.class_names) if listing.class_names else None,
        "seconds": round(time.time() - start, 2),
        "out": validate.printable(storage.abspath(out_dir)),
        "fingerprint": fingerprint,
        "source_fingerprints": sources_now,
        "source_changed": changed,
        "labels_ignored": listing.labels_ignored,
    }
    write_json(os.path.join(out_dir, REPORT), report)
    finish_out_dir(folder, names)
    if written == 0:
        raise nothing_converted(out_dir)
    return report
