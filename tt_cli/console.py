"""The one stdout and the one stderr console of every tt command.

Results (tables, summaries) go to STDOUT, progress, logs and warnings to STDERR, so that
`tt ... > result.txt` keeps only the results. One console per stream lets a progress bar
or status spinner on STDERR redraw around every other line printed there.

Example:
>>> from tt_cli.console import STDERR, STDOUT
>>> STDOUT.print("[bold]tt train[/] runs/demo")   # rich markup; plain text when not a terminal
tt train runs/demo
>>> STDERR.print("step 10 loss 4.2")   # progress and warnings: stderr
"""

from rich.console import Console


def _stdout():
    # Piped output (logs, CI) gets a width that fits tt's widest table (tt bench's)
    # instead of rich's 80 columns; a terminal keeps its own width.
    console = Console()
    return console if console.is_terminal else Console(width=140)


STDOUT = _stdout()
STDERR = Console(stderr=True)
