"""Writes JSON for every command: `--json` results, `run.json`, `dataset.json`, `tt.json`,
`rejected.jsonl`, and the JSON lines of `metrics.jsonl`.

A JSON file is written atomically (a temporary file renamed into place, so a crash never
leaves half a file); JSON lines are appended. The parent directory is made when missing,
and an unwritable path is one clear line. Local paths and URLs alike (`tt_cli.storage`).

Example:
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> write_json(os.path.join(folder, "result.json"), {"top1": 0.8})
>>> append_json_lines(os.path.join(folder, "metrics.jsonl"), [{"step": 1}, {"step": 2}])
>>> open(os.path.join(folder, "metrics.jsonl")).read().splitlines()
['{"step": 1}', '{"step": 2}']
"""

import json

from tt_cli import storage
from tt_cli.errors import InvalidValueError


def write_json(path, value):
    if not path:
        return
    _write_atomically(path, lambda f: f.write(json.dumps(value, indent=2, ensure_ascii=False)))


def write_json_lines(path, records):
    """One JSON object per line (`rejected.jsonl`). A lone surrogate left in a string (text
    that was not UTF-8) is written as `\\udcff`, so one stray row never fails the file."""
    _write_atomically(path, lambda f: f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _write_atomically(path, write):
    try:
        storage.makedirs(storage.dirname(path))
        with storage.open(path + ".tmp", "w", encoding="utf-8", errors="backslashreplace") as f:
            write(f)
        storage.replace(path + ".tmp", path)
    except OSError as e:
        raise InvalidValueError(f"{path}: cannot write ({e.strerror or e}).")


def append_json_lines(path, values):
    """Appends one line of JSON per value of `values` to `path` (made when missing)."""
    try:
        storage.makedirs(storage.dirname(path))
        with storage.open(path, "a") as f:
            f.write("".join(json.dumps(value, ensure_ascii=False) + "\n" for value in values))
    except OSError as e:
        raise InvalidValueError(f"{path}: cannot write ({e.strerror or e}).")
