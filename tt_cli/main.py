"""Entry point of the `tt` executable.

Command modules (`tt_cli.commands`) import TensorFlow, Keras and KerasHub only inside the command
functions that need them, so `tt --help` and the TF-free `tt data` commands
start fast.
"""

import os

import click

from tt_cli.commands.cli_group import TtGroup

# Keras reads its backend once, at import; every command that imports Keras
# must see this first.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Quiet TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group(cls=TtGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tt")
def cli():
    """tt: Three Towers contrastive image-text training (3T, LiT, CLIP)."""


# One line per command group; each module keeps its heavy imports inside its commands.
from tt_cli.commands.data import data; cli.add_command(data)  # noqa: E402
from tt_cli.commands.train import train; cli.add_command(train)  # noqa: E402
from tt_cli.commands.eval import eval_group; cli.add_command(eval_group)  # noqa: E402
from tt_cli.commands.bench import bench; cli.add_command(bench)  # noqa: E402
from tt_cli.commands.export import export; cli.add_command(export)  # noqa: E402
from tt_cli.commands.pretrain import pretrain; cli.add_command(pretrain)  # noqa: E402
from tt_cli.commands.report import report; cli.add_command(report)  # noqa: E402
