"""Entry point of the `tt` executable.

Command modules import TensorFlow, Keras and KerasHub only inside the command
functions that need them, so `tt --help` and the TF-free `tt data` commands
start fast.
"""

import os

import click

# Keras reads its backend once, at import; every command that imports Keras
# must see this first.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Quiet TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tt")
def cli():
    """tt: Three Towers contrastive image-text training (3T, LiT, CLIP)."""


# One line per command group; each module keeps its heavy imports inside its commands.
from tt_cli.data_commands import data; cli.add_command(data)  # noqa: E402
from tt_cli.train_command import train; cli.add_command(train)  # noqa: E402
from tt_cli.eval_commands import eval_group; cli.add_command(eval_group)  # noqa: E402
from tt_cli.bench_command import bench; cli.add_command(bench)  # noqa: E402
from tt_cli.export_commands import export; cli.add_command(export)  # noqa: E402
from tt_cli.pretrain_command import pretrain; cli.add_command(pretrain)  # noqa: E402
