"""The Click layer of `tt`: one module per command group (flags in, a library call, a report out).

`tt_cli.main` assembles them under the root group `TtGroup` (`cli_group.py`), the one place
that turns the library's `tt_cli.errors.TtError` into one `Error: ...` line and exit code 2.
Flags are validated here, with Click types (`option_types.py`), before any library code runs;
the library below names values, never flags.
"""
