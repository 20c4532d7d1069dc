"""The `--json FILE` option of every command, and the one writer of its results.

A result file follows tt's ownership rule (`tt_cli.ownership`): FILE may be new, or a
result an earlier `--json` wrote (listed, with the hash of its content, in the manifest of its
folder); any other existing file — a `dataset.json`, a shard, a file of the user's — is
refused when the flags are parsed, before any work starts.

Example:
>>> @click.command()
... @json_option("Also write the result here as JSON.")
... def hello(json_path):
...     write_result(json_path, {"hello": "world"})
"""

import os

import click

from tt_cli import jsonfile, ownership
from tt_cli.commands.option_types import OUTPUT_FILE

RESULT_COMMAND = "tt --json"


def _check(ctx, param, path):
    if path:
        ownership.prepare_file(path, RESULT_COMMAND, overwrite=None, flag="--json")
    return path


def json_option(help):
    return click.option("--json", "json_path", type=OUTPUT_FILE, callback=_check, help=help)


def write_result(path, value):
    """Writes `value` to `path` (nothing when `path` is empty) and lists it as tt's."""
    if not path:
        return
    folder = ownership.prepare_file(path, RESULT_COMMAND, overwrite=None, flag="--json")
    jsonfile.write_json(path, value)
    folder.record([os.path.basename(path)])
