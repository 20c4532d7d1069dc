"""What ARCHITECTURE.md claims of the library's code, checked by reading it (AST, no import).

The library is `tt_cli/` without the command layer (`tt_cli/commands/` and the `tt` root,
`tt_cli/main.py`). Its strings never name flags (only the command layer knows a value came
from `--batch-size`); its file operations go through `tt_cli/storage.py`, its JSON writes
through `tt_cli/jsonfile.py`, its TFRecord framing through `tt_cli/data/records.py`. Each
exception is listed below with its reason; one that no longer occurs must be removed.
(The import rules are `lint-imports`'s, in pyproject.toml.)
"""

import ast
import functools
import pathlib
import re

import pytest

from tt_cli.commands.cli_group import message_for_command_line
from tt_cli.errors import InvalidValueError, UnreadableDataError

ROOT = pathlib.Path(__file__).resolve().parents[1] / "tt_cli"
FLAG = re.compile(r"(?<![\w-])--[a-z]")
# File operations (a call of `open`, or of these functions of os, os.path and shutil).
OS_FILE_CALLS = {"open", "fdopen", "makedirs", "mkdir", "replace", "rename", "remove", "unlink", "rmdir", "listdir"}
OS_FILE_CALLS |= {"scandir", "walk", "stat", "lstat", "fstat", "symlink", "chmod", "utime", "truncate", "access"}
OS_PATH_FILE_CALLS = {"exists", "lexists", "isfile", "isdir", "islink", "getsize", "getmtime", "realpath"}

# (kind, module, outermost function): why it may.
ALLOWED = {
    ("flag", "demo/prepare.py", "demo_tower"): "the `tt pretrain` command the demo's third tower equals, logged",
    ("flag", "data/tfds_catalog.py", "prepare_hint"): "the flags of TFDS's own `tfds build`, not tt's",
    ("flag", "data/tfds_source.py", "resolve"): "the flag of TFDS's own `tfds build`, not tt's",
    ("file", "checkpoints.py", "readable"): "a link in tt's own temporary folder: TensorFlow reads paths as patterns",
    ("file", "storage.py", "*"): "the owner",
    ("file", "bench/memory.py", "*"): "the machine's /proc, not a user's file",
    ("file", "bench/runner.py", "_device_description"): "the machine's /proc/cpuinfo",
    ("file", "strategy.py", "_tpu_resolver"): "the machine's /dev: is there a TPU",
    ("file", "quiet.py", "exec_module"): "the machine's /proc: is there an NVIDIA driver",
    ("file", "data/validate.py", "read_image_file"): "a bounded read of one local image: needs os.open flags",
    ("json", "jsonfile.py", "*"): "the owner",
}


@functools.cache
def library_facts():
    """(module, kind, line, function, what) of every library module (see `facts`)."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        if not module.startswith("commands/") and module != "main.py":
            found += [(module, *fact) for fact in facts(ast.parse(path.read_text(encoding="utf-8")))]
    return found


def _call_name(call):
    """`open`, `os.replace`, `os.path.exists`, `shutil.rmtree`, `json.dumps`, ... or None."""
    parts, node = [], call.func
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts)) or None


def _kinds_of_call(call, inside_write):
    name = _call_name(call) or ""
    head, _, last = name.rpartition(".")
    if name == "open" or (head == "os" and last in OS_FILE_CALLS) or (head == "os.path" and last in OS_PATH_FILE_CALLS):
        yield "file", name
    if head == "shutil":
        yield "file", name
    if name == "json.dump" or (name == "json.dumps" and inside_write):
        yield "json", name
    if last == "TFRecordWriter":
        yield "tfrecord", name


def facts(tree):
    """(kind, line, outermost function or None, what) for each place in `tree` that a
    contract is about: "flag" (a string literal naming a flag; docstrings left out: they
    may say which command runs the code), "file", "json", "tfrecord" (a call)."""

    def visit(node, function, inside_write):
        body = getattr(node, "body", None)
        docstring = None
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstring = body[0].value
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and function is None:
            function = node.name
        if isinstance(node, ast.Call):
            for kind, what in _kinds_of_call(node, inside_write):
                yield kind, node.lineno, function, what
            inside_write = inside_write or (_call_name(node) or "").rpartition(".")[2] in ("write", "writelines")
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Expr) and child.value is docstring:
                continue
            if isinstance(child, ast.Constant) and isinstance(child.value, str) and FLAG.search(child.value):
                yield "flag", child.lineno, function, child.value
            yield from visit(child, function, inside_write)

    yield from visit(tree, None, False)


def violations(kind):
    """Places of `kind` the library has beyond `ALLOWED`, and allowances that match nothing."""
    found, used = [], set()
    for module, fact_kind, line, function, what in library_facts():
        if fact_kind != kind:
            continue
        key = next((k for k in [(kind, module, function), (kind, module, "*")] if k in ALLOWED), None)
        if key is None:
            found.append(f"tt_cli/{module}:{line} ({function}): {what!r}")
        used.add(key)
    stale = [f"allowance no longer needed: {k}" for k in ALLOWED if k[0] == kind and k not in used]
    return found + stale


@pytest.mark.parametrize(
    "kind, rule",
    [
        ("flag", "library strings name values, never flags (say the value, or give a remedy)"),
        ("file", "file operations go through tt_cli.storage"),
        ("json", "JSON is written through tt_cli.jsonfile"),
        ("tfrecord", "TFRecord files are written by shard_writer.ShardWriter, framed by records.frame"),
    ],
)
def test_the_library_keeps_its_single_owners(kind, rule):
    found = violations(kind)
    assert not found, f"{rule}:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source, expected",
    [
        ('raise InvalidValueError("use --batch-size 8")', [("flag", None)]),
        ('def f(n):\n    raise ValueError(f"{n} rows; pass --accum-steps 2")', [("flag", "f")]),
        ('def f():\n    """Run `tt train --data D`."""\n    return 1', []),
        ("def g(p):\n    with open(p) as f:\n        return os.path.exists(p)", [("file", "g"), ("file", "g")]),
        ("f.write(json.dumps(x))\nkey = json.dumps(x)\njson.dump(x, f)", [("json", None), ("json", None)]),
        ("w = tf.io.TFRecordWriter(path)", [("tfrecord", None)]),
    ],
)
def test_the_scan_finds_what_it_looks_for(source, expected):
    assert [(kind, function) for kind, _, function, _ in facts(ast.parse(source))] == expected


def test_the_command_layer_says_remedies_and_shard_checks_as_flags():
    error = InvalidValueError("batch size 10 does not split", remedy=("batch_size", 8, "(a multiple of 4)"))
    assert str(error) == "batch size 10 does not split; call again with batch_size=8 (a multiple of 4)."
    assert message_for_command_line(error) == "batch size 10 does not split; pass --batch-size 8 (a multiple of 4)."
    damaged = UnreadableDataError("s.tfrecord: corrupt record at byte offset 0", shards="data/")
    assert str(damaged).endswith("inspect_shards('data/', verify=True) checks every shard.")
    assert message_for_command_line(damaged).endswith("; run `tt data inspect --verify data/` to check every shard.")
