"""Writes JSON files for every command: `--json` results, `run.json`, `dataset.json`.

Atomic (a temporary file renamed into place, so a crash never leaves half a file), the
parent directory made when missing, and an unwritable path is one clear line.

Example:
>>> write_json("/tmp/tt-example/result.json", {"top1": 0.8})
"""

import json
import os

from tt_cli.errors import InvalidValueError


def write_json(path, value):
    if not path:
        return
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(value, f, indent=2, ensure_ascii=False)
        os.replace(path + ".tmp", path)
    except OSError as e:
        raise InvalidValueError(f"{path}: cannot write ({e.strerror}).")
