"""The docstring examples of `tt_cli/` and `models/` run in two pytest processes, because the
`tfrecord` package cannot share a process with TensorFlow (a duplicate protobuf symbol):

    pytest --doctest-modules tt_cli models                      # every module but TFRECORD_SIDE
    pytest --doctest-modules --tfrecord-side tt_cli models      # only TFRECORD_SIDE

A new module lands in the first run unless it is listed here; `tests/test_doctest_sides.py`
checks that each module is in exactly one run and that every module importing `tfrecord` is
listed. (The tests in `tests/` are untouched by this file: it only ignores paths under
`tt_cli/` and `models/`, and only when collecting doctests.)
"""

from pathlib import Path

ROOT = Path(__file__).parent

# The TF-free modules that import `tfrecord` (at import time, or in their example).
TFRECORD_SIDE = frozenset(
    {
        "tt_cli/data/convert.py",
        "tt_cli/data/example_codec.py",
        "tt_cli/data/inspect.py",
        "tt_cli/data/make_tokenizer.py",
        "tt_cli/data/shard_reader.py",
    }
)


def pytest_addoption(parser):
    parser.addoption(
        "--tfrecord-side",
        action="store_true",
        help="with --doctest-modules: run the examples of the modules that use the tfrecord package "
        "(they cannot share a process with TensorFlow), and only those",
    )


def doctest_side(path):
    """'tfrecord' or 'tensorflow': the doctest run of the module at `path` (relative to the root)."""
    return "tfrecord" if Path(path).as_posix() in TFRECORD_SIDE else "tensorflow"


def pytest_ignore_collect(collection_path, config):
    if not config.getoption("doctestmodules") or collection_path.suffix != ".py":
        return None
    try:
        relative = collection_path.relative_to(ROOT)
    except ValueError:
        return None
    if relative.parts[0] not in ("tt_cli", "models"):
        return None
    wanted = "tfrecord" if config.getoption("tfrecord_side") else "tensorflow"
    return True if doctest_side(relative) != wanted else None
