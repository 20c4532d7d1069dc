"""Click types for the numeric options of every command: each number's real domain.

Click checks them while parsing, so a number out of range gets one line naming the
flag ("Invalid value for '--steps': 0 is not in the range x>=1.") and exit code 2,
before any model, dataset or TensorFlow is touched.
"""

import math

import click

from tt_cli.data.tokenizer import MIN_VOCAB_SIZE


class FiniteRange(click.FloatRange):
    """A `click.FloatRange` that also refuses nan and inf (which pass every comparison
    check or none, and would end deep inside training)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number.", param, ctx)
        return number


COUNT = click.IntRange(min=1)  # steps, batch sizes, intervals, workers, pixels
COUNT_OR_ZERO = click.IntRange(min=0)  # warm-up steps, sample rows
POSITIVE = FiniteRange(min=0, min_open=True)  # learning rates, epochs
NON_NEGATIVE = FiniteRange(min=0)  # weight decay, loss weights, clipping norms
FRACTION = FiniteRange(min=0, max=1, max_open=True)  # a held-out share: [0, 1)
SEED = click.IntRange(min=0, max=2**32 - 1)  # what NumPy's (and so Keras') seeding accepts
TEXT_LEN = click.IntRange(min=2)  # at least one piece and the EOS
VOCAB_SIZE = click.IntRange(min=MIN_VOCAB_SIZE)
