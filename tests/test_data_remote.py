"""`tt data convert` and `tt data inspect` with the source, the shards and the --json files
given as `file://` URLs (the TF-free commands reach URLs through fsspec, as they would gs://),
and the same as plain paths; and fsspec's `memory://`, which the CLI refuses as an output
(it would be gone when `tt` exits) but the Python API writes into.

The whole path runs in one subprocess (the TF-free commands may not share a process with
TensorFlow, which pytest may have loaded, and memory:// lives inside one process): it writes
the source, runs the real `tt` commands through Click, and reports what it finds."""

import json
import subprocess
import sys

import pytest
from support.data_corpus import ENV

SCRIPT = r"""
import io, json, sys
import fsspec
import numpy as np
from click.testing import CliRunner
from PIL import Image
from tt_cli.main import cli

root = sys.argv[1]
fs, base = fsspec.core.url_to_fs(root)
base = base.rstrip("/")
def put(name, data):
    fs.makedirs(fs._parent(f"{base}/{name}"), exist_ok=True)
    fs.pipe_file(f"{base}/{name}", data)
def get(name):
    return fs.cat_file(f"{base}/{name}")
rows = []
for i in range(6):
    png = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(png, "PNG")
    put(f"src/img/{i}.png", png.getvalue())
    rows.append({"image": f"img/{i}.png", "caption": f"shade {i}"})
rows.append({"image": "img/missing.png", "caption": "not there"})
put("src/captions.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())

def tt(*args):
    result = CliRunner().invoke(cli, list(args))
    return [result.exit_code, result.output]
report = {"root": root}
# Two workers: on memory:// (private to this process) convert keeps the shards in this process.
report["convert"] = tt("data", "convert", f"{root}/src/captions.jsonl", f"{root}/out", "--workers", "2",
                       "--num-shards", "2", "--json", f"{root}/convert.json")
if root.startswith("file://"):  # memory:// refused as the CLI's output; from Python, one process keeps it
    report["memory_cli"] = tt("data", "convert", f"{root}/src/captions.jsonl", "memory://tt-test/out")
    from tt_cli.data.convert import convert
    memory = convert(f"{root}/src/captions.jsonl", "memory://tt-test/out", workers=2, num_shards=2)
    report["memory_api"] = [memory["written"], sorted(fsspec.filesystem("memory").ls("/tt-test/out", detail=False))]
report["again"] = tt("data", "convert", f"{root}/src/captions.jsonl", f"{root}/out", "--workers", "1",
                     "--num-shards", "2")
report["inspect"] = tt("data", "inspect", f"{root}/out", "--verify", "--samples", "0", "--json", f"{root}/inspect.json")
report["listing"] = sorted(name.rsplit("/", 1)[-1] for name in fs.ls(f"{base}/out", detail=False))
report["convert_json"] = json.loads(get("convert.json"))
report["inspect_json"] = json.loads(get("inspect.json"))
put("out/notes.txt", b"the user's own")
report["overwrite"] = tt("data", "convert", f"{root}/src/captions.jsonl", f"{root}/out", "--workers", "1",
                         "--num-shards", "3", "--overwrite")
report["notes"] = get("out/notes.txt").decode()
import importlib.util
if importlib.util.find_spec("gcsfs") is None:  # the extra is not installed: one line naming it
    report["gs"] = tt("data", "inspect", "gs://tt-test-bucket/shards")
report["tensorflow_loaded"] = "tensorflow" in sys.modules
print(json.dumps(report))
"""


@pytest.mark.parametrize("where", ["url", "local"])
def test_convert_and_inspect_with_every_path_on_one_filesystem(where, tmp_path):
    root = f"file://{tmp_path}" if where == "url" else str(tmp_path)
    result = subprocess.run([sys.executable, "-c", SCRIPT, root], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["convert"][0] == 0, report["convert"][1]
    written = report["convert_json"]
    assert written["written"] == 6 and written["rejected"] == {"missing_file": 1} and written["num_shards"] == 2
    assert written["out"] == f"{root}/out"
    assert report["again"][0] == 0 and "already" in report["again"][1].lower()
    assert report["listing"] == [
        ".tt-manifest.json",
        "dataset.json",
        "rejected.jsonl",
        "report.json",
        "shard-00000-of-00002.tfrecord",
        "shard-00001-of-00002.tfrecord",
    ]
    assert report["inspect"][0] == 0, report["inspect"][1]
    summary = report["inspect_json"]
    assert summary["num_examples"] == 6 and [s["examples"] for s in summary["shards"]] == [3, 3]
    assert summary["corrupt"] == []
    # --overwrite replaces tt's shards only; a file it did not write stops nothing and stays.
    assert report["overwrite"][0] == 0, report["overwrite"][1]
    assert report["notes"] == "the user's own"
    if where == "url":
        assert report["memory_cli"][0] == 2 and "gone when it exits" in report["memory_cli"][1]
        written, listing = report["memory_api"]
        assert written == 6 and [n.rsplit("/", 1)[-1] for n in listing if n.endswith(".tfrecord")] == [
            "shard-00000-of-00002.tfrecord",
            "shard-00001-of-00002.tfrecord",
        ]
    if "gs" in report:
        assert report["gs"][0] == 2 and "pip install 'tt[gcs]'" in report["gs"][1]
    assert not report["tensorflow_loaded"]


def test_urls_keep_their_scheme_and_local_paths_are_unchanged(tmp_path):
    import os

    from tt_cli import storage

    assert storage.abspath("gs://bucket/runs/../data//shards") == "gs://bucket/data/shards"
    assert storage.dirname("gs://bucket/data/dataset.json") == "gs://bucket/data"
    assert storage.dirname("gs://bucket") == "gs://bucket"  # never above the bucket
    assert storage.realpath("gs://bucket/a/./b") == "gs://bucket/a/b" and not storage.islink("gs://bucket/a")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    assert storage.realpath(str(link)) == os.path.realpath(link) == str(tmp_path / "target")
    assert storage.dirname("x.json") == os.getcwd()
