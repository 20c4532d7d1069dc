"""The demo's final table: each held-out number beside what chance would score.

Chance: 1/classes for zero-shot top-1 (5/classes for top-5), and k/images for
Recall@k in both directions: a random ranking puts a caption's own image in its
top k with probability k/images, and (with every image holding the same number
of captions) one of an image's own captions in its top k with about the same.

Example:
>>> rows = demo_rows({"top1": 0.8, "image_to_text_R@1": 0.2}, num_classes=18, num_images=200)
>>> rows[0]
('zero-shot top-1', 0.8, 0.05555555555555555)
"""

from rich.table import Table

from tt_cli.console import STDOUT

ROWS = (
    ("zero-shot top-1", "top1", lambda c, n: 1 / c),
    ("zero-shot top-5", "top5", lambda c, n: min(1.0, 5 / c)),
    ("image->text R@1", "image_to_text_R@1", lambda c, n: 1 / n),
    ("image->text R@5", "image_to_text_R@5", lambda c, n: 5 / n),
    ("text->image R@1", "text_to_image_R@1", lambda c, n: 1 / n),
    ("text->image R@5", "text_to_image_R@5", lambda c, n: 5 / n),
)


def demo_rows(results, num_classes, num_images):
    """(label, value, chance) for each result present."""
    return [(label, results[key], chance(num_classes, num_images)) for label, key, chance in ROWS if key in results]


def print_demo_table(results, num_classes, num_images, title):
    table = Table(title=title, show_header=True)
    table.add_column("held-out metric")
    table.add_column("model", justify="right")
    table.add_column("chance", justify="right")
    table.add_column("x chance", justify="right")
    for label, value, chance in demo_rows(results, num_classes, num_images):
        table.add_row(label, f"{value:.3f}", f"{chance:.3f}", f"{value / chance:.1f}x")
    STDOUT.print(table)
