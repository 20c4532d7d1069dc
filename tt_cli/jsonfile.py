"""Writes JSON files for every command: `--json` results, `run.json`, `dataset.json`.

Atomic (a temporary file renamed into place, so a crash never leaves half a file), the
parent directory made when missing, and an unwritable path is one clear line. Local
paths and URLs alike (`tt_cli.storage`).

Example:
>>> write_json("/tmp/tt-example/result.json", {"top1": 0.8})
"""

import json

from tt_cli import storage
from tt_cli.errors import InvalidValueError


def write_json(path, value):
    if not path:
        return
    try:
        storage.makedirs(storage.dirname(path))
        with storage.open(path + ".tmp", "w") as f:
            f.write(json.dumps(value, indent=2, ensure_ascii=False))
        storage.replace(path + ".tmp", path)
    except OSError as e:
        raise InvalidValueError(f"{path}: cannot write ({e.strerror or e}).")
