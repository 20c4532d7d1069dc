"""A quiet start: TensorFlow's own start-up lines stay off the terminal unless asked for.

Importing TensorFlow and finding its devices prints lines that tell a user of tt nothing,
on every machine and whatever `TF_CPP_MIN_LOG_LEVEL` says (absl prints before it reads
it): absl's notice that logging is not set up yet, CUDA stubs that find no driver, notes
on CPU instructions and oneDNN, a failed `cuInit` where CUDA libraries are installed
without a GPU. `quiet_tensorflow_start()` makes the first import of TensorFlow in this
process catch the process's stderr (the file descriptor, where C++ writes) while
TensorFlow loads and lists its devices; it drops those lines, passes every other one on,
and says in tt's words the one thing among them that matters: a machine with an NVIDIA
driver on which TensorFlow finds no GPU. `tt --verbose`, or a `TF_CPP_MIN_LOG_LEVEL` of
the user's own, leaves TensorFlow's output as it is.

Example:
>>> [line for line in _lines_to_keep(
...     "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
...     "I0000 00:00:1796.2   10955 cudart_stub.cc:31] Could not find cuda drivers on your machine.\\n"
...     "a line of someone else's\\n")]
["a line of someone else's"]
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

LEVEL = "TF_CPP_MIN_LOG_LEVEL"
# What TensorFlow says on its way up that says nothing to a user of tt.
_START_UP = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|^[IWE]\d{4} [\d:.]+\s+\d+ (cudart_stub|cuda_platform|cuda_executor|cuda_diagnostics|cpu_feature_guard"
    r"|port|cuda_dnn|cuda_fft|cuda_blas)\.cc:\d+\]"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
    r"|oneDNN custom operations are on"
)
_NO_USABLE_GPU = re.compile(r"failed call to cuInit|Could not find cuda drivers")
NVIDIA_DRIVER = "/proc/driver/nvidia/version"


def quiet_tensorflow_start(verbose=False, warn=lambda message: print(message, file=sys.stderr)):
    """Sets how TensorFlow starts in this process: with `verbose`, all its lines (at the
    user's own `TF_CPP_MIN_LOG_LEVEL`, else 0); with a level of the user's own, as that
    level says; else quietly (level 2, and the start-up lines caught as the module says).
    `warn(message)` says what matters among them."""
    if verbose:
        os.environ.setdefault(LEVEL, "0")
        return
    if LEVEL in os.environ:
        return
    os.environ[LEVEL] = "2"
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport(warn))


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, with a loader that runs it with stderr caught."""

    def __init__(self, warn):
        self.warn = warn

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders find the real module
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self.warn)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader, warn):
        self.loader, self.warn = loader, warn

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader  # the module keeps its own loader
        with _caught_stderr() as caught:
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # where CUDA is probed (and says so)
        for line in _lines_to_keep(caught.text):
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


def _lines_to_keep(text):
    """The lines of `text` that are not TensorFlow's start-up chatter."""
    return [line for line in text.splitlines() if line.strip() and not _START_UP.search(line)]
