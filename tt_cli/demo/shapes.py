"""A deterministic synthetic captioned image set: coloured shapes on noisy backgrounds.

Each image shows one shape of one colour at one of four positions and one of two
sizes. Captions name the attributes in varied wording; the label is the
(colour, shape) class, so the same images serve zero-shot classification
("a photo of a red circle.") and retrieval.

Example:
>>> rows = list(shape_rows(4, seed=0, image_size=32))
>>> rows[0]["texts"][0]
'the bottom left has a small orange square'
"""

import io

import numpy as np
from PIL import Image, ImageDraw

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (150, 60, 190),
    "orange": (240, 140, 30),
}
SHAPES = ("circle", "square", "triangle")
POSITIONS = {"top left": (0.3, 0.3), "top right": (0.7, 0.3), "bottom left": (0.3, 0.7), "bottom right": (0.7, 0.7)}
SIZES = {"small": 0.16, "large": 0.26}
CLASS_NAMES = [f"{c} {s}" for c in COLORS for s in SHAPES]
TEMPLATES = (
    "a {size} {color} {shape} in the {position}",
    "{color} {shape}, {position}",
    "a picture of a {color} {shape} at the {position}",
    "the {position} has a {size} {color} {shape}",
)


def _draw(color, shape, position, size, rng, image_size):
    background = rng.integers(90, 170, size=3)
    pixels = np.clip(background + rng.normal(0, 18, (image_size, image_size, 3)), 0, 255).astype("uint8")
    image = Image.fromarray(pixels)
    cx, cy = (np.array(POSITIONS[position]) + rng.uniform(-0.05, 0.05, 2)) * image_size
    r = SIZES[size] * image_size * rng.uniform(0.9, 1.1)
    draw = ImageDraw.Draw(image)
    fill = tuple(int(v) for v in np.clip(np.array(COLORS[color]) + rng.normal(0, 12, 3), 0, 255))
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def shape_rows(count, seed, image_size=64):
    """Yields `count` rows {"image" (PNG bytes), "texts", "label", "key"}."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        color = list(COLORS)[rng.integers(len(COLORS))]
        shape = SHAPES[rng.integers(len(SHAPES))]
        position = list(POSITIONS)[rng.integers(len(POSITIONS))]
        size = list(SIZES)[rng.integers(len(SIZES))]
        words = dict(color=color, shape=shape, position=position, size=size)
        texts = [t.format(**words) for t in rng.permutation(TEMPLATES)[:2]]
        yield {
            "image": _draw(color, shape, position, size, rng, image_size),
            "texts": texts,
            "label": CLASS_NAMES.index(f"{color} {shape}"),
            "key": f"{seed}-{i:06d}",
        }


def write_demo_split(out_dir, count, seed, image_size=64, num_shards=4):
    from tt_cli.data.tf_shards import write_shards

    return write_shards(
        out_dir,
        shape_rows(count, seed, image_size),
        num_shards,
        source=f"tt demo shapes (seed {seed})",
        class_names=CLASS_NAMES,
    )
