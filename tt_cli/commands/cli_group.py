"""The root Click group of `tt`: where a library error becomes what the user sees.

The library raises `tt_cli.errors.TtError` (plain Python exceptions naming values); this group
is the one place that turns them into Click's `Error: ...` line on stderr and exit code 2, for
every command and subcommand below it, including errors raised while their flags are parsed
(option callbacks run inside `invoke`).
"""

import click

from tt_cli.errors import TtError

USER_ERROR_EXIT = 2  # Click's own exit code for a bad flag; tt's user errors share it
# Library arguments whose flag is not `--` + the argument's name with dashes.
FLAG_OF_ARGUMENT = {"fmt": "--format"}


class ReportedError(click.ClickException):
    """A `TtError` on its way to the user: Click prints it as one `Error:` line."""

    exit_code = USER_ERROR_EXIT


class TtGroup(click.Group):
    """A `click.Group` that reports a `TtError` from any command below it as one line, exit 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TtError as e:
            raise ReportedError(message_for_command_line(e)) from None


def message_for_command_line(error):
    """The error's line, with a remedy said as the flag that gives it, and damaged shards
    with the command that checks every one."""
    advice = []
    if error.remedy is not None:
        argument, value, words = error.remedy
        flag = FLAG_OF_ARGUMENT.get(argument, "--" + argument.replace("_", "-"))
        given = flag if value is True else f"{flag} {value}"
        advice.append(f"pass {given} {words}")
    if error.shards is not None:
        advice.append(f"run `tt data inspect --verify {error.shards}` to check every shard")
    return "; ".join([error.reason, *advice]) + "." if advice else str(error)
