"""Entry point of the `tt` executable.

Command modules (`tt_cli.commands`) import TensorFlow, Keras and KerasHub only inside the command
functions that need them, so `tt --help` and the TF-free `tt data` commands
start fast. TensorFlow starts quietly (`tt_cli.quiet`) unless `tt --verbose` asks.
"""

import os

import click

from tt_cli.commands.cli_group import TtGroup

# Keras reads its backend once, at import; every command that imports Keras
# must see this first.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@click.group(cls=TtGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tt")
@click.option(
    "--verbose",
    is_flag=True,
    help="Show all of TensorFlow's start-up lines (else hidden; a TF_CPP_MIN_LOG_LEVEL of yours shows its level's).",
)
def cli(verbose):
    """tt: Three Towers contrastive image-text training (3T, LiT, CLIP)."""
    from tt_cli.console import STDERR
    from tt_cli.quiet import quiet_tensorflow_start

    quiet_tensorflow_start(verbose, warn=lambda m: STDERR.print(f"{m}; `tt --verbose` shows TensorFlow's own words."))


# Each command module keeps its heavy imports inside its commands.
from tt_cli.commands.bench import bench  # noqa: E402
from tt_cli.commands.data import data  # noqa: E402
from tt_cli.commands.eval import eval_group  # noqa: E402
from tt_cli.commands.export import export  # noqa: E402
from tt_cli.commands.pretrain import pretrain  # noqa: E402
from tt_cli.commands.report import report  # noqa: E402
from tt_cli.commands.train import train  # noqa: E402

for command in (data, train, eval_group, bench, export, pretrain, report):
    cli.add_command(command)
