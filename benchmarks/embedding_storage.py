"""Bytes on disk of an embedding folder of `tt data embed` against the combined copy earlier
versions wrote (every data record again, with its embedding inside), for the demo's data.

Makes the demo's training split as `tt train` without `--data` does (6,000 coloured-shape
images at 32 px, 2 shards), embeds it with the demo's third tower (`--pretrained`,
default: the demo's cached tower) into an embedding folder, writes the combined copy
from the two (`tests/support/combined_shards.py`), and prints the bytes of each.

Usage:
    python benchmarks/embedding_storage.py --pretrained ~/.cache/tt/demo-tower-v1-tiny-4000ex-600steps-s3
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "support"))


def folder_bytes(folder):
    """Bytes of the shards and dataset.json (tt's manifest and plan left out: they do not grow with the data)."""
    names = [n for n in os.listdir(folder) if n.endswith(".tfrecord") or n == "dataset.json"]
    return sum(os.path.getsize(os.path.join(folder, n)) for n in names)


def main():
    from tt_cli.demo.prepare import cache_root, demo_split
    from tt_cli.demo.settings import DEMO

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrained", default=os.path.join(cache_root(), "demo-tower-v1-tiny-4000ex-600steps-s3"))
    parser.add_argument("--work", default="/tmp/embedding_storage")
    args = parser.parse_args()

    from combined_shards import write_combined

    from tt_cli.data.embed import embed_shards

    data = demo_split(os.path.join(args.work, "demo_data"), "train", DEMO.num_train, DEMO.train_seed, 32)
    embeddings = os.path.join(args.work, "train_h")
    summary = embed_shards(data, args.pretrained, embeddings, batch_size=256, strategy="default")
    combined = write_combined(data, embeddings, os.path.join(args.work, "train_combined"))
    sizes = {
        "data": folder_bytes(data),
        "embedding_folder": folder_bytes(embeddings),
        "combined_copy": folder_bytes(combined),
    }
    print(
        json.dumps(
            {
                "examples": DEMO.num_train,
                "dim": summary["dim"],
                "bytes": sizes,
                "embedding_bytes_per_example": round(sizes["embedding_folder"] / DEMO.num_train, 1),
                "combined_over_embedding_folder": round(sizes["combined_copy"] / sizes["embedding_folder"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
