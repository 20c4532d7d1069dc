"""A quiet start: TensorFlow's own start-up lines stay off the terminal unless asked for.

Importing TensorFlow and finding its devices prints lines that tell a user of tt nothing,
on every machine: absl's notice that logging is not set up yet, CUDA stubs that find no
driver, notes on CPU instructions and oneDNN, a failed `cuInit` where CUDA libraries are
installed without a GPU. `TF_CPP_MIN_LOG_LEVEL` does not silence them all: absl writes
before it reads it. `quiet_tensorflow_start()` makes the first import of TensorFlow in
this process catch the process's stderr (the file descriptor, where C++ writes) while
TensorFlow loads and lists its devices, and then passes on what is asked for: with no
level of the user's own, every line but those start-up lines; with the user's own
`TF_CPP_MIN_LOG_LEVEL`, the lines of TensorFlow's log at that severity or above, and every
line that is not TensorFlow's log. The one thing among the start-up lines that matters is
said in tt's words: a machine with an NVIDIA driver on which TensorFlow finds no GPU.
Verbose, nothing is caught.

Example:
>>> caught = (
...     "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
...     "I0000 00:00:1796.2   10955 cudart_stub.cc:31] Could not find cuda drivers on your machine.\\n"
...     "E0000 00:00:1796.5   10955 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\\n"
...     "a line of someone else's\\n")
>>> lines_to_keep(caught)
["a line of someone else's"]
>>> [line[:6] for line in lines_to_keep(caught, level=2)]
['E0000 ', 'a line']
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

LEVEL = "TF_CPP_MIN_LOG_LEVEL"
# A line of TensorFlow's C++ log (absl's format): severity I, W, E or F, then date, time, thread, file:line].
_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ (\S+)\.cc:\d+\]")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_NOTICE = "All log messages before absl::InitializeLog() is called"
_CONTINUATION = re.compile(r"^To enable the following instructions: ")  # of cpu_feature_guard's line
# The files whose start-up lines say nothing to a user of tt (CUDA probes, CPU features, oneDNN).
_START_UP_FILES = {"cudart_stub", "cuda_platform", "cuda_executor", "cuda_diagnostics", "cpu_feature_guard", "port"}
_NO_USABLE_GPU = re.compile(r"failed call to cuInit|Could not find cuda drivers")
NVIDIA_DRIVER = "/proc/driver/nvidia/version"


def quiet_tensorflow_start(verbose=False, warn=lambda message: print(message, file=sys.stderr)):
    """Sets how TensorFlow starts in this process: with `verbose`, uncaught, at the user's
    own `TF_CPP_MIN_LOG_LEVEL` or else 0; otherwise caught as the module says (at level 2
    when the user set none). `warn(message)` says what matters among the lines caught."""
    if verbose:
        os.environ.setdefault(LEVEL, "0")
        return
    users_level = os.environ.get(LEVEL)
    os.environ.setdefault(LEVEL, "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport(_level(users_level), warn))


def _level(value):
    """The user's `TF_CPP_MIN_LOG_LEVEL` as a number (None: they set none)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return 0  # TensorFlow reads a level it cannot parse as 0


def lines_to_keep(text, level=None):
    """The lines of `text` (what TensorFlow printed on its way up) to pass on: with no
    `level`, all but the start-up lines; with one, all but TensorFlow's log lines below that
    severity. A log line's continuation goes with it, and absl's notice with the log line
    after it; every other line is kept."""
    kept, notice, keep = [], None, True
    for line in text.splitlines():
        if _ABSL_NOTICE in line:
            notice = line
            continue
        log = _LOG_LINE.match(line)
        if log:
            keep = log.group(2) not in _START_UP_FILES if level is None else _SEVERITY[log.group(1)] >= level
            if keep and notice:
                kept.append(notice)
            notice = None
        elif not _CONTINUATION.match(line):
            keep = True  # a line of someone else's
        if keep and line.strip():
            kept.append(line)
    return kept


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, with a loader that runs it with stderr caught."""

    def __init__(self, level, warn):
        self.level, self.warn = level, warn

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders find the real module
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self.level, self.warn)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader, level, warn):
        self.loader, self.level, self.warn = loader, level, warn

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader  # the module keeps its own loader
        with _caught_stderr() as caught:
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # where CUDA is probed (and says so)
        for line in lines_to_keep(caught.text, self.level):
            print(line, file=sys.stderr)
        if _NO_USABLE_GPU.search(caught.text) and os.path.exists(NVIDIA_DRIVER):
            self.warn(
                "warning: this machine has an NVIDIA driver, but TensorFlow finds no GPU it can use "
                "(its CUDA libraries or the driver do not match): tt runs on the CPU"
            )


class _Caught:
    text = ""


@contextlib.contextmanager
def _caught_stderr():
    """Everything written to file descriptor 2 inside the block (C++ and Python alike), as
    `.text` after it; on an exception, written out again before it propagates."""
    caught = _Caught()
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield caught
            except BaseException:
                sys.stderr.flush()
                os.dup2(saved, 2)
                capture.seek(0)
                sys.stderr.write(capture.read().decode("utf-8", "replace"))
                raise
            sys.stderr.flush()
            os.dup2(saved, 2)
            capture.seek(0)
            caught.text = capture.read().decode("utf-8", "replace")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
