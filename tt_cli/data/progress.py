"""A rich progress bar with count, rate and ETA, on stderr (stdout stays for results).

Example:
>>> with progress_bar(100, "converting") as advance:
...     for _ in range(100):
...         advance(1)
"""

import contextlib

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tt_cli.console import STDERR


@contextlib.contextmanager
def progress_bar(total, description, unit="rows"):
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=STDERR, transient=False) as progress:
        task = progress.add_task(description, total=total, rate="")

        def advance(n=1, description=None):
            if description is not None:  # one bar for several steps (tt eval suite): say which
                progress.update(task, description=description)
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:,.0f} {unit}/s")

        yield advance
