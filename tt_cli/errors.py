"""The exceptions tt's library raises for mistakes a user can make.

Library code (everything under `tt_cli/` but `tt_cli.commands`) speaks Python: it raises
these plain exceptions with messages that name values (paths, numbers, names), never
command-line flags. The command layer (`tt_cli.commands.cli_group.TtGroup`) turns every
`TtError` into one `Error: ...` line on stderr and exit code 2; a Python caller catches them
like any other exception.

Example:
>>> from tt_cli.errors import InvalidValueError, TtError
>>> try:
...     raise InvalidValueError("shots 0: every number of shots must be at least 1.")
... except TtError as e:
...     print(e)
shots 0: every number of shots must be at least 1.
"""


class TtError(Exception):
    """Base of every error tt reports to a user as one line (no traceback): catch this one
    to handle them all.

    Args:
      reason: what went wrong, naming values.
      remedy: optional `(argument, value, words)`: calling again with `argument=value` fixes
        it, e.g. `("overwrite", True, "to replace it")`. The message says it in Python
        terms; the command layer says it as the flag (`--overwrite`) instead.
    """

    def __init__(self, reason, remedy=None):
        self.reason, self.remedy = reason, remedy
        if remedy is None:
            super().__init__(reason)
        else:
            argument, value, words = remedy
            super().__init__(f"{reason}; call again with {argument}={value!r} {words}.")


class InvalidValueError(TtError, ValueError):
    """A value the operation does not accept: a number out of its domain, an unknown name,
    a path of the wrong kind. Also a `ValueError`, which is what it is to Python code."""


class UnreadableDataError(TtError):
    """Input that is missing, unreadable or damaged: a file or shard that does not exist,
    cannot be decoded, or holds nothing usable."""


class ConflictError(TtError):
    """What is on disk is not what the operation expects: an output that holds files tt did
    not write, a run trained with other settings, a folder that is not a run directory."""
