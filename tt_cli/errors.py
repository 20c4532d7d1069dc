"""The one exception type for mistakes a user can make.

Click prints a `ClickException` as a single `Error: ...` line on stderr and exits
with its `exit_code`, so raising `UserError` anywhere below a command gives the
user one clear line and a non-zero exit instead of a traceback.
"""

import click


class UserError(click.ClickException):
    """Bad input from the user: a path, a flag, a file that cannot be read."""

    exit_code = 2
