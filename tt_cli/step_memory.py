"""Sizes no step can hold are refused before anything is built, and running out of memory
later is one line naming the sizes, not a traceback.

`check_step_fits` is a floor, not an estimate: each term is one tensor a training step
must hold whole (nothing else counted), compared with this machine's physical memory.
Past it (a batch size of 10^11, a text length of 10^8) the input pipeline would fill the
memory gathering one batch, or TensorFlow would fail deep inside the first step. Sizes
below the floor are tried; when TensorFlow (or Python) then runs out of memory,
`out_of_memory_named` turns its error into one line.

Example:
>>> from models.scales import get_scale
>>> check_step_fits(get_scale("tiny"), batch_size=64, replicas=1, max_text_len=32)
>>> try:
...     check_step_fits(get_scale("tiny"), batch_size=10**11, replicas=1, max_text_len=32)
... except InvalidValueError as e:
...     print(str(e).split(":")[0])
batch size 100000000000
"""

import contextlib
import os
import sys

from tt_cli.errors import InvalidValueError

FLOAT = 4  # bytes of a float32


def physical_memory():
    """Bytes of memory of this machine (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_step_fits(scale, batch_size, replicas, max_text_len, vocab_size=None, accum_steps=1, memory=None):
    """`InvalidValueError` naming the size when one tensor a step must hold exceeds `memory`
    (default: this machine's). `scale`: a `models.scales.Scale` (widths, heads, image size);
    `vocab_size`: the text embedding table's rows when known before building (None: skipped)."""
    memory = memory or physical_memory()
    if not memory:
        return
    rows = max(1, batch_size // replicas)  # of one replica
    micro = max(1, rows // accum_steps)  # what one forward pass of the towers holds
    floors = [
        (f"batch size {batch_size}", "a replica's decoded images", rows * scale.image_size**2 * 3),
        (f"batch size {batch_size}", "a replica's image-text similarities", rows * batch_size * FLOAT),
        (
            f"text length {max_text_len}",
            "one text layer's attention scores",
            micro * scale.num_heads * max_text_len**2 * FLOAT,
        ),
        (f"text length {max_text_len}", "the text position embeddings", max_text_len * scale.width * FLOAT),
    ]
    if vocab_size:
        floors.append((f"vocabulary size {vocab_size}", "the token embeddings", vocab_size * scale.width * FLOAT))
    for value, what, needed in floors:
        if needed > memory:
            raise InvalidValueError(
                f"{value}: {what} alone would take {needed / 2**30:,.0f} GiB, more than this machine's "
                f"{memory / 2**30:,.0f} GiB; choose a smaller one."
            )


@contextlib.contextmanager
def out_of_memory_named(**sizes):
    """Inside: TensorFlow's ResourceExhaustedError or a MemoryError becomes one `InvalidValueError`
    naming `sizes` (e.g. batch_size=..., max_text_len=...). TensorFlow is not imported here."""
    try:
        yield
    except Exception as e:
        tf = sys.modules.get("tensorflow")
        if not (isinstance(e, MemoryError) or (tf is not None and isinstance(e, tf.errors.ResourceExhaustedError))):
            raise
        message = (getattr(e, "message", None) or str(e) or type(e).__name__).strip().splitlines()[0][:200]
        named = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sizes.items() if v is not None)
        raise InvalidValueError(
            f"out of memory with {named} ({message}); smaller values fit (or, for the batch, more accum steps)."
        ) from None
