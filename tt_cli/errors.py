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
      shards: optional, the shards (a folder or glob, as the caller named them) one record of
        which could not be read: the others may be damaged too. The message says how to check
        every one in Python terms; the command layer names the command that does.
    """

    def __init__(self, reason, remedy=None, shards=None):
        self.reason, self.remedy, self.shards = reason, remedy, shards
        advice = []
        if remedy is not None:
            argument, value, words = remedy
            advice.append(f"call again with {argument}={value!r} {words}")
        if shards is not None:
            advice.append(f"tt_cli.data.inspect.inspect_shards({shards!r}, verify=True) checks every shard")
        super().__init__("; ".join([reason, *advice]) + "." if advice else reason)


class InvalidValueError(TtError, ValueError):
    """A value the operation does not accept: a number out of its domain, an unknown name,
    a path of the wrong kind. Also a `ValueError`, which is what it is to Python code."""


class UnreadableDataError(TtError):
    """Input that is missing, unreadable or damaged: a file or shard that does not exist,
    cannot be decoded, or holds nothing usable."""


class ConflictError(TtError):
    """What is on disk is not what the operation expects: an output that holds files tt did
    not write, a run trained with other settings, a folder that is not a run directory."""
