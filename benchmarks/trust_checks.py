"""What tt's checks against silently wrong data cost (issue 22).

    python benchmarks/trust_checks.py tower      # fingerprint of a B/16-sized tower's weights
    python benchmarks/trust_checks.py listing    # CSV listing and the source fingerprint of a rerun

`tower`: `lockstep.tower_fingerprint` (one SHA-256 pass over the frozen tower's weights,
once per tower per command) on a randomly initialised ViT at the `b16` scale (86M
parameters, what `--pretrained imagenet21k` loads), and on the same tower again (cached).

`listing`: `sources.list_source` on a CSV of `--rows` rows (one line per row, each line
parsed and its cells counted) and `convert.source_fingerprints` (one stat per image file)
for those rows, as every `tt data convert` run, first or rerun, computes them.

The two parts run in separate processes: TensorFlow and the `tfrecord` package (which
`tt_cli.data.convert` imports) cannot share one.
"""

import argparse
import os
import tempfile
import time


def tower():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from models import PretrainedTower, get_scale, vit_backbone
    from tt_cli.data.lockstep import tower_fingerprint

    h = PretrainedTower(vit_backbone(get_scale("b16"), name="h_backbone"))
    parameters = sum(int(v.numpy().size) for v in h.backbone.weights)
    start = time.perf_counter()
    tower_fingerprint(h)
    first = time.perf_counter() - start
    start = time.perf_counter()
    tower_fingerprint(h)
    again = time.perf_counter() - start
    size = f"{parameters / 1e6:.1f}M parameters"
    print(f"tower_fingerprint, ViT b16 ({size}): {first:.2f} s; again (cached): {again * 1e6:.0f} us")


def listing(rows):
    from tt_cli.data import sources
    from tt_cli.data.convert import source_fingerprints

    with tempfile.TemporaryDirectory() as tmp:
        images = os.path.join(tmp, "images")
        os.makedirs(images)
        for i in range(1000):  # 1,000 distinct image files, each named by 1/1,000 of the rows
            open(os.path.join(images, f"{i}.jpg"), "wb").close()
        path = os.path.join(tmp, "rows.csv")
        with open(path, "w") as f:
            f.write("image,caption,key\n")
            for i in range(rows):
                f.write(f'images/{i % 1000}.jpg,"a photo, number {i}, of something",row{i}\n')
        start = time.perf_counter()
        listed = sources.list_source(path, key_column="key")
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        source_fingerprints(listed.rows, max(1, rows // 1000))
        stamped = time.perf_counter() - start
    print(f"list_source, CSV of {rows:,} rows: {seconds:.2f} s ({rows / seconds:,.0f} rows/s)")
    print(f"source_fingerprints, {rows:,} rows of 1,000 files: {stamped:.2f} s ({rows / stamped:,.0f} rows/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["tower", "listing"])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    tower() if args.part == "tower" else listing(args.rows)
