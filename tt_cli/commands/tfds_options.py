"""The flags of TFDS datasets (`--data tfds:NAME[/CONFIG]:SPLIT`), declared once for every
command that reads data: where they are prepared, and which features hold tt's fields."""

import click

TFDS_DATA_DIR = click.option(
    "--tfds-data-dir",
    type=click.Path(file_okay=False),
    help="Where TFDS datasets (tfds:NAME[/CONFIG]:SPLIT) are prepared.  "
    "[default: TFDS's own, ~/tensorflow_datasets or $TFDS_DATA_DIR]",
)
TFDS_FIELDS = click.option(
    "--tfds-fields",
    metavar="FIELD=FEATURE,...",
    help="For a TFDS dataset tt does not know: its features holding image, caption, label and key, "
    "e.g. image=image,caption=captions/text,label=label.",
)


def tfds_options(command):
    """Both flags, as `tfds_data_dir` and `tfds_fields` arguments of `command`."""
    return TFDS_DATA_DIR(TFDS_FIELDS(command))
