"""CI runs the docstring examples of every module of `tt_cli/` and `models/`, in two pytest
processes (the top-level `conftest.py`): `pytest --doctest-modules tt_cli models` and, for the
modules that use the `tfrecord` package (which cannot share a process with TensorFlow),
`pytest --doctest-modules --tfrecord-side tt_cli models`. These checks keep a module from
falling out of both runs, or landing in the one that cannot import it."""

import ast
import doctest
import importlib.util
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENSORFLOW = {"tensorflow", "keras", "keras_hub", "tensorflow_text", "tensorflow_datasets"}


def root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_files():
    return sorted(
        p.relative_to(ROOT).as_posix() for package in ("tt_cli", "models") for p in (ROOT / package).rglob("*.py")
    )


def runs_collecting(conftest, path):
    """The doctest runs (False: the first, True: `--tfrecord-side`) that collect `path`."""
    runs = []
    for tfrecord_side in (False, True):
        options = {"doctestmodules": True, "tfrecord_side": tfrecord_side}
        config = types.SimpleNamespace(getoption=options.__getitem__)
        if not conftest.pytest_ignore_collect(ROOT / path, config):
            runs.append(tfrecord_side)
    return runs


def test_each_module_is_in_exactly_one_doctest_run():
    conftest = root_conftest()
    files = module_files()
    assert conftest.TFRECORD_SIDE <= set(files), f"no such module: {sorted(conftest.TFRECORD_SIDE - set(files))}"
    for path in files:
        assert runs_collecting(conftest, path) == [path in conftest.TFRECORD_SIDE], path
    # Outside tt_cli/ and models/ (the tests themselves) nothing is ignored, in either run.
    assert runs_collecting(conftest, "tests/test_docs.py") == [False, True]


def _path_of(module):
    """The file of a module of this project (a package's __init__.py), or None."""
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path.relative_to(ROOT).as_posix()
    return None


def _imported(tree):
    """Module names imported by the statements of `tree` that run at import time (not in functions)."""
    names, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.If | ast.Try | ast.With):
            pending += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
    return names


def _direct_imports(path):
    """(project files, outside packages) that importing `path`, or running its examples, imports."""
    source = (ROOT / path).read_text()
    names = _imported(ast.parse(source))
    for test in doctest.DocTestFinder().find(types.ModuleType("m", source[: source.find('"""', 3) + 3])):
        for example in test.examples:
            try:
                names += _imported(ast.parse(example.source))
            except SyntaxError:  # a continued example's fragment
                pass
    files, outside = set(), set()
    for name in names:
        parts = name.split(".")
        found = [_path_of(".".join(parts[:i])) for i in range(1, len(parts) + 1)]  # parent packages run first
        files |= {f for f in found if f}
        if not any(found):
            outside.add(parts[0])
    return files - {path}, outside


def _reach(path, cache):
    """Every outside package that importing `path` (or running its examples) loads, transitively."""
    if path not in cache:
        cache[path] = set()  # a cycle adds nothing new
        files, outside = _direct_imports(path)
        for file in files:
            outside |= _reach(file, cache)
        cache[path] = outside
    return cache[path]


def test_tfrecord_users_are_on_the_tfrecord_side_and_load_no_tensorflow():
    conftest, cache = root_conftest(), {}
    for path in module_files():
        reach = _reach(path, cache)
        if "tfrecord" in reach:
            assert path in conftest.TFRECORD_SIDE, f"{path} imports tfrecord: add it to TFRECORD_SIDE in conftest.py"
        if path in conftest.TFRECORD_SIDE:
            assert not reach & TENSORFLOW, f"{path} runs with tfrecord but imports {sorted(reach & TENSORFLOW)}"


def test_no_example_is_skipped():
    """An example runs at tiny size or is prose: a `+SKIP` would pass CI without running."""
    parse = doctest.DocTestParser().get_examples  # every `>>>` line of the file, docstrings or not
    skipped = [
        path for path in module_files() if any(e.options.get(doctest.SKIP) for e in parse((ROOT / path).read_text()))
    ]
    assert not skipped, f"examples marked +SKIP in {skipped}"
