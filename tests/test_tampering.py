"""A manifest is not trusted as written: tampered manifests, tt-like names of the user's and
the commands' own inputs, through `tt data convert` and `tt export` (issue #22, "Still
deleting what tt did not write").

Every case asserts the outcome and that every byte outside tt's own outputs is unchanged
(the tree hashed before and after, `test_file_safety.tree_state`). The convert cases run in
one subprocess (the TF-free commands cannot share a process with TensorFlow): it runs the real
`tt` command through Click case after case and reports the exit codes, the output and the
tree after each.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import TINY_TRAIN_FLAGS, run_tt
from support.data_corpus import ENV, good_rows, write_jsonl
from test_file_safety import MANIFEST, assert_refused, tree_state

from tt_cli.errors import ConflictError

CONVERT_SCRIPT = r"""
import json, os, shutil, sys
from click.testing import CliRunner
sys.path.insert(0, sys.argv[2])
from test_file_safety import tree_state
from tt_cli.main import cli

root, cases = sys.argv[1], json.loads(sys.argv[3])
out = os.path.join(root, "out")
source = os.path.join(out, "captions.jsonl")  # the source lies in OUT (allowed: tt removes none of it)

def tt(*args):
    result = CliRunner().invoke(cli, ["data", "convert", *map(str, args), "--workers", "1"])
    return {"code": result.exit_code, "stderr": result.stderr, "tree": tree_state(root)}

report = {"first": tt(source, out, "--num-shards", 2)}
with open(os.path.join(out, MANIFEST := ".tt-manifest.json")) as f:
    good = json.load(f)
for name in ("report.json.tmpl", "dataset.json.tmp_notes.txt"):  # the user's, with tt-like names
    with open(os.path.join(out, name), "w") as f:
        f.write("the user's " + name)
report["user_names"] = tt(source, out, "--num-shards", 3, "--overwrite")
with open(os.path.join(out, MANIFEST)) as f:
    good = json.load(f)
for case, entries in cases.items():
    tampered = json.loads(json.dumps(good))
    tampered["entries"].update(entries)
    with open(os.path.join(out, MANIFEST), "w") as f:
        json.dump(tampered, f)
    report[case] = tt(source, out, "--num-shards", 2, "--overwrite")
with open(os.path.join(out, MANIFEST), "w") as f:
    json.dump(good, f)
fresh = os.path.join(root, "fresh")
report["json_into_out"] = tt(source, fresh, "--json", os.path.join(fresh, "dataset.json"))
report["json_into_out"]["fresh_exists"] = os.path.exists(fresh)
print(json.dumps(report))
"""


def stamp_of(path):
    import hashlib

    data = open(path, "rb").read()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_convert_overwrite_removes_nothing_a_manifest_merely_claims(tmp_path):
    root = tmp_path / "user"
    out = root / "out"
    rows = good_rows(str(out), n=6, with_jpeg=False)  # OUT/images/ of the user's, read by the source
    write_jsonl(out / "captions.jsonl", rows)
    (root / "afile").write_text("outside OUT")
    (root / "victim").mkdir()
    (root / "victim" / "precious.txt").write_text("outside OUT")
    (out / "notes.txt").write_text("mine")
    command = {"command": "tt data convert"}
    images = {f"images/{n}": dict(command, **stamp_of(out / "images" / n)) for n in os.listdir(out / "images")}
    cases = {  # each with the stamps a forger would copy in: right sizes and hashes
        "parent": {"../afile": dict(command, **stamp_of(root / "afile"))},
        "absolute": {str(root / "afile"): dict(command, **stamp_of(root / "afile"))},
        "deep": {"../../user/victim": dict(command, folder=True, created=True)},
        "users_folder": {"images": dict(command, folder=True, created=True), **images},
        "own_input": {"captions.jsonl": dict(command, **stamp_of(out / "captions.jsonl"))},
        "unstamped": {"notes.txt": command},
    }
    result = subprocess.run(
        [sys.executable, "-c", CONVERT_SCRIPT, str(root), os.path.dirname(__file__), json.dumps(cases)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["first"]["code"] == 0, report["first"]["stderr"]

    # A temporary name is one exact name: the user's report.json.tmpl and dataset.json.tmp_notes.txt stay.
    done = report["user_names"]
    assert done["code"] == 0, done["stderr"]
    for name in ("report.json.tmpl", "dataset.json.tmp_notes.txt"):
        assert (out / name).read_text() == "the user's " + name
    assert "out/shard-00002-of-00003.tfrecord" in done["tree"]  # the conversion itself went ahead

    before = done["tree"]
    for case, why in [
        ("parent", "'../afile', not a plain name"),
        ("absolute", "an absolute path"),
        ("deep", "not a plain name"),
        ("users_folder", "an input of this command"),
        ("own_input", "an input of this command"),
        ("unstamped", "no content hash"),
    ]:
        refused = report[case]
        assert refused["code"] == 2, (case, refused["stderr"])
        lines = refused["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:") and why in lines[0], (case, lines)
        changed = {k for k in set(before) | set(refused["tree"]) if before.get(k) != refused["tree"].get(k)}
        assert changed <= {f"out/{MANIFEST}"}, (case, changed)  # nothing removed, the manifest as tampered

    # --json naming a file the conversion writes is refused before any work, not after it.
    early = report["json_into_out"]
    assert early["code"] == 2 and "the conversion writes that file" in early["stderr"], early["stderr"]
    assert not early["fresh_exists"]


# ---------------------------------------------------------------- tt export


def test_export_overwrite_never_follows_a_manifest_out_of_out(tiny_run, tmp_path):
    from tt_cli.export import from_run

    run = tiny_run("clip")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("outside the export folder")
    out = tmp_path / "exports" / "sm"
    out.mkdir(parents=True)
    (out / "saved_model.pb").write_text("an earlier export, as the manifest says")
    manifest = {
        "manifest": 2,
        "created_by": "tt export savedmodel",
        "created_folder": True,
        "entries": {
            "saved_model.pb": {"command": "tt export savedmodel", **stamp_of(out / "saved_model.pb")},
            "../../victim": {"command": "tt export savedmodel", "folder": True, "created": True},
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest))
    before, run_before = tree_state(tmp_path), tree_state(run)
    assert_refused(run_tt(["export", "savedmodel", run, str(out), "--overwrite"]), "'../../victim'")
    with pytest.raises(ConflictError, match="not a plain name"):  # the library call alike
        from_run.savedmodel(run, str(out), overwrite=True)
    assert tree_state(tmp_path) == before and tree_state(run) == run_before


# ---------------------------------------------------------------- tt train --restart


def test_restart_never_follows_a_manifest_out_of_the_run(tiny_run, tiny_shards, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run("clip"), run)
    (tmp_path / "victim").write_text("outside the run")
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["entries"]["../victim"] = {"command": "tt train", **stamp_of(tmp_path / "victim")}
    (run / MANIFEST).write_text(json.dumps(manifest))
    before = tree_state(tmp_path)
    args = ["train", "--data", tiny_shards, "--out", str(run), "--mode", "clip", *TINY_TRAIN_FLAGS, "--restart"]
    assert_refused(run_tt(args), "'../victim', not a plain name")
    assert tree_state(tmp_path) == before
