"""Packages tt uses only when a flag asks for them (`tt export onnx`: tf2onnx; `tt train
--wandb`: wandb), each in an extra of its own: imported on first use, and a missing one
is one line naming the extra to install.

Example:
>>> require("json", "test", "reading JSON").__name__
'json'
>>> require("no_such_package_xyz", "wandb", "W&B")
Traceback (most recent call last):
...
tt_cli.optional.MissingPackageError: W&B needs the no_such_package_xyz package: pip install 'tt[wandb]'.
"""

import importlib

from tt_cli.errors import TtError


class MissingPackageError(TtError):
    """An optional package that the requested work needs is not installed."""


def require(module, extra, purpose):
    """Imports and returns `module`; `MissingPackageError` naming `tt[extra]` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackageError(f"{purpose} needs the {module} package: pip install 'tt[{extra}]'.") from None
