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
WEIGHT = FiniteRange(min=0, max=1)  # a convex weight: [0, 1]
SEED = click.IntRange(min=0, max=2**32 - 1)  # what NumPy's (and so Keras') seeding accepts
INT32 = 2**31 - 1  # token ids and tensor sizes are int32 in TensorFlow and SentencePiece
BATCH = click.IntRange(min=1, max=INT32)  # what memory allows is checked by tt_cli.step_memory
TEXT_LEN = click.IntRange(min=2, max=INT32)  # at least one piece and the EOS
VOCAB_SIZE = click.IntRange(min=MIN_VOCAB_SIZE, max=INT32)

# `models.SCALES`' names. A constant here because importing `models` imports Keras, which
# `tt --help` must not wait for; tests/test_cli_errors.py checks that the two agree.
SCALE_NAMES = ("ti16", "s16", "s32", "b16", "b32", "l16", "l32", "h14", "tiny", "small")
SCALE = click.Choice(SCALE_NAMES)


class LibraryChecked(click.ParamType):
    """A flag whose value the library checks (one check, for the CLI and the Python API alike):
    `check(text) -> value` raises `tt_cli.errors.InvalidValueError`, which becomes Click's
    "Invalid value for '--flag'" line. `check` is imported when a value arrives, so `tt --help`
    imports nothing of the library."""

    def __init__(self, name, check):
        self.name, self._check = name, check

    def convert(self, value, param, ctx):
        from tt_cli.errors import InvalidValueError

        try:
            return self._check(value)
        except InvalidValueError as e:
            self.fail(str(e), param, ctx)


def _shots(text):
    from tt_cli.errors import InvalidValueError
    from tt_cli.eval.fewshot import check_shots

    if isinstance(text, tuple):
        return check_shots(text)
    try:
        return check_shots(tuple(int(s) for s in text.split(",") if s.strip()))
    except ValueError as e:
        if isinstance(e, InvalidValueError):
            raise
        raise InvalidValueError(f"{text}: give comma-separated integers, e.g. 1,5,10,25.") from None


def _alpha(text):
    from tt_cli.eval.ensemble import parse_alpha

    return parse_alpha(text)


class AutoOr(click.ParamType):
    """'auto', or a number of `number_type`."""

    def __init__(self, number_type):
        self.number_type = number_type
        self.name = f"auto|{number_type.name}"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return self.number_type.convert(value, param, ctx)


SHOTS = LibraryChecked("shots", _shots)  # images per class, comma-separated: 1,5,10,25
ALPHA = LibraryChecked("auto|alpha", _alpha)  # an ensemble weight in [0, 1], or 'auto'
L2_REG = AutoOr(NON_NEGATIVE)  # a ridge strength, or 'auto' (leave-one-out)


class OutputPath(click.Path):
    """A path a command writes: local, or a URL of a store that outlives the command, never
    a store inside tt's own process (`ram://`, `memory://`), gone when the command exits.
    (From Python those stay allowed: a test's process keeps them.)"""

    def convert(self, value, param, ctx):
        from tt_cli import storage

        if storage.lives_in_process(value):
            self.fail(
                f"{value} would be written into this tt process's memory and be gone when it exits; "
                "give a local path or a bucket URL.",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


OUTPUT = OutputPath()
OUTPUT_FOLDER = OutputPath(file_okay=False)
OUTPUT_FILE = OutputPath(dir_okay=False)


def tokenizer_file(ctx, param, path):
    """Callback of `--tokenizer`: a SentencePiece model, checked while flags are parsed."""
    from tt_cli.data.tokenizer import check_sentencepiece_file
    from tt_cli.errors import TtError

    if path is not None:
        try:
            check_sentencepiece_file(path)
        except TtError as e:
            raise type(e)(f"{param.opts[0]} {e}") from None
    return path
