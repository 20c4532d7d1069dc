"""tt deletes or replaces only what it can prove it wrote (`tt_cli/ownership.py`).

Every command that can replace or remove files is pointed at (a) a folder it did not
write, (b) its own input and (c) a folder holding its input. Each must exit 2 with one
`Error:` line and leave every byte of the user's tree as it was (hashed before and
after). And `--overwrite` / `--restart` must still replace tt's own earlier output.

`tt data convert` and `tt data tokenizer` run in `tt` subprocesses (TF-free side, see
data_corpus.py); the TensorFlow-side commands run in this process through Click.
"""

import hashlib
import json
import os
import shutil

import pytest
from conftest import TINY_TRAIN_FLAGS, first_layout, run_tt
from support.data_corpus import good_rows, write_jsonl, write_wds
from support.data_corpus import run_tt as run_tt_process

MANIFEST = ".tt-manifest.json"


def tree_state(root):
    """{relative path: sha256 of the file, or "dir"} of everything under `root`."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            state[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                state[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return state


def make_project(path):
    """A user's own folder that happens to use tt's names: run.json, logs/, metrics.jsonl, shards."""
    os.makedirs(os.path.join(path, "logs"))
    files = {
        "run.json": json.dumps({"project": "mine", "owner": "me"}),
        "logs/events.out": "my own event log",
        "metrics.jsonl": '{"step": 1, "my_metric": 0.5}\n',
        "dataset.json": json.dumps({"mine": True}),
        "shard-00000-of-00001.tfrecord": "my own bytes, not a TFRecord",
        "shard-00000-of-00002.tfrecord": "my own bytes again",
        "shard-000000.tar": "a WebDataset tar of mine",
        "model.keras": "my own model file",
        "notes.txt": "do not delete",
    }
    for name, text in files.items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    return str(path)


def assert_refused(result, *words):
    """Exit 2 and exactly one `Error:` line naming `words` (a Click result or a subprocess)."""
    if hasattr(result, "returncode"):
        code, output = result.returncode, result.stderr
    else:
        code, output = result.exit_code, result.output
    lines = output.strip().splitlines()
    assert code == 2, output
    assert len(lines) == 1 and lines[0].startswith("Error:"), output
    assert "Traceback" not in output
    for word in words:
        assert word in lines[0], output


def assert_kept(root, before):
    assert tree_state(root) == before


# ---------------------------------------------------------------- tt data convert


@pytest.fixture
def sources(tmp_path):
    """A JSON Lines source with its images, and a WebDataset folder with `shard-*.tar` names."""
    root = tmp_path / "user"
    rows = good_rows(str(root), n=6, with_jpeg=False)
    write_jsonl(root / "captions.jsonl", rows)
    wds = root / "wds"
    os.makedirs(wds)
    write_wds(str(wds / "shard-000000.tar"), rows[:3], str(root))
    write_wds(str(wds / "shard-000001.tar"), rows[3:], str(root))
    return root


def test_convert_refuses_its_source_a_folder_around_it_and_others_files(sources, tmp_path):
    project = make_project(tmp_path / "project")
    before = tree_state(tmp_path)
    wds = sources / "wds"
    cases = [
        ([wds, wds], "is the input"),  # (b) the issue's `convert wdsdir wdsdir`
        ([f"{wds}/*.tar", wds], "is the input"),  # a tar glob: its folder is the input
        ([wds, wds / "out"], "lies inside the input"),
        ([wds, sources], "holds the input"),  # (c) a folder around the source
        ([sources / "captions.jsonl", project, "--num-shards", 1], "shard-00000-of-00001.tfrecord"),  # (a)
    ]
    for args, message in cases:
        result = run_tt_process("data", "convert", *args, "--overwrite", "--workers", 1, check=False)
        assert_refused(result, message)
    assert_kept(tmp_path, before)


def test_convert_overwrite_replaces_only_its_own_shards(sources, tmp_path):
    source = sources / "captions.jsonl"
    # OUT = the folder of the JSONL source: common, and nothing of the user's is removed there.
    before = tree_state(sources)
    run_tt_process("data", "convert", source, sources, "--num-shards", 3, "--workers", 1)
    # tt's own rejected.jsonl, given as the source of the next conversion: an input now.
    result = run_tt_process("data", "convert", sources / "rejected.jsonl", sources, "--overwrite", check=False)
    assert_refused(result, "rejected.jsonl of its own")
    assert (sources / "rejected.jsonl").exists()
    with open(os.path.join(sources, "shard-00001-of-00009.tfrecord"), "w") as f:
        f.write("mine, with a tt-like name")  # a user's file that tt did not write
    before["shard-00001-of-00009.tfrecord"] = tree_state(sources)["shard-00001-of-00009.tfrecord"]
    run_tt_process("data", "convert", source, sources, "--num-shards", 2, "--workers", 1, "--overwrite")
    after = tree_state(sources)
    assert {k: after[k] for k in before} == before  # every file of the user's, byte for byte
    shards = sorted(n for n in os.listdir(sources) if n.endswith(".tfrecord"))
    assert shards == [
        "shard-00000-of-00002.tfrecord",
        "shard-00001-of-00002.tfrecord",
        "shard-00001-of-00009.tfrecord",
    ]  # tt's 3-shard set replaced, the user's file kept
    manifest = json.loads((sources / MANIFEST).read_text())
    assert manifest["created_folder"] is False
    shard = sources / "shard-00000-of-00002.tfrecord"  # stamped by its content, hashed as it was written
    assert manifest["entries"][shard.name] == {
        "command": "tt data convert",
        "size": shard.stat().st_size,
        "sha256": hashlib.sha256(shard.read_bytes()).hexdigest(),
    }

    # A folder the WebDataset tars are in is refused as OUT, but their sibling is fine, and
    # --overwrite there never touches the user's `shard-*.tar` names.
    out = tmp_path / "wds_out"
    os.makedirs(out)
    shutil.copy(sources / "wds" / "shard-000000.tar", out / "shard-000000.tar")
    tar_bytes = tree_state(out)["shard-000000.tar"]
    run_tt_process("data", "convert", sources / "wds", out, "--workers", 1, "--overwrite")
    run_tt_process("data", "convert", sources / "wds", out, "--workers", 1, "--overwrite", "--num-shards", 2)
    assert tree_state(out)["shard-000000.tar"] == tar_bytes


def test_convert_output_of_an_earlier_tt_without_manifest_is_still_its_own(sources, tmp_path):
    out = tmp_path / "out"
    args = ["data", "convert", sources / "captions.jsonl", out, "--workers", 1]
    run_tt_process(*args)
    os.remove(out / MANIFEST)  # as written by tt before manifests
    assert "already complete" in run_tt_process(*args).stdout
    run_tt_process(*args, "--num-shards", 2, "--overwrite")
    assert sorted(n for n in os.listdir(out) if n.startswith("shard-")) == [
        "shard-00000-of-00002.tfrecord",
        "shard-00001-of-00002.tfrecord",
    ]


# ---------------------------------------------------------------- tt data tokenizer


def test_tokenizer_replaces_only_its_own_file(sources, tmp_path):
    shards = tmp_path / "shards"
    run_tt_process("data", "convert", sources / "captions.jsonl", shards, "--workers", 1, "--num-shards", 1)
    project = make_project(tmp_path / "project")
    before = tree_state(tmp_path)
    shard = shards / "shard-00000-of-00001.tfrecord"
    for out, message in [
        (os.path.join(project, "notes.txt"), "tt did not write it"),  # (a)
        (shard, "is the input"),  # (b)
        (shards / "dataset.json", "is the input"),
    ]:
        assert_refused(run_tt_process("data", "tokenizer", shards, out, "--vocab-size", 30, check=False), message)
    assert_kept(tmp_path, before)

    out = tmp_path / "tok.model"
    run_tt_process("data", "tokenizer", shards, out, "--vocab-size", 30)
    first = os.stat(out).st_mtime_ns
    run_tt_process("data", "tokenizer", shards, out, "--vocab-size", 31)  # its own file: replaced
    assert os.stat(out).st_mtime_ns != first
    with open(out, "wb") as f:
        f.write(b"the user's own tokenizer now")
    assert_refused(run_tt_process("data", "tokenizer", shards, out, "--vocab-size", 30, check=False), "did not write")
    assert out.read_bytes() == b"the user's own tokenizer now"


# ---------------------------------------------------------------- tt train


def test_train_refuses_a_project_folder_its_data_and_a_folder_around_it(tiny_shards, tiny_vit_preset, tmp_path):
    project = make_project(tmp_path / "project")
    before, shards_before = tree_state(tmp_path), tree_state(tiny_shards)
    base = ["train", "--data", tiny_shards, "--mode", "clip", *TINY_TRAIN_FLAGS]
    cases = [
        (["--out", project], "run.json, which tt did not write"),  # (a)
        (["--out", project, "--restart"], "run.json, which tt did not write"),
        (["--out", tiny_shards, "--restart"], "is the input"),  # (b)
        (["--out", os.path.join(tiny_shards, "run"), "--restart"], "lies inside the input"),
        (["--out", os.path.dirname(tiny_shards), "--restart"], "holds the input"),  # (c)
    ]
    for args, message in cases:
        assert_refused(run_tt(base + args), message)
    assert_kept(tmp_path, before)
    assert_kept(tiny_shards, shards_before)


@pytest.mark.slow
def test_restart_replaces_the_run_and_keeps_the_users_files(tiny_run, tiny_shards, tiny_vit_preset, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(tiny_run("3t"), out)
    (out / "notes.txt").write_text("mine")
    os.makedirs(out / "my_plots")
    (out / "my_plots" / "loss.svg").write_text("<svg/>")
    before = tree_state(out)
    checkpoint = out / "checkpoints" / "ckpt-4.index"
    written = {p: os.stat(p).st_mtime_ns for p in (checkpoint, out / "metrics.jsonl")}
    args = ["train", "--data", tiny_shards, "--out", str(out), "--pretrained", tiny_vit_preset, *TINY_TRAIN_FLAGS]

    # Written before manifests existed (and before run.json had a "format"): recognised as a
    # run directory, and resumed as before.
    os.remove(out / MANIFEST)
    (out / "run.json").write_text(json.dumps(first_layout(json.loads((out / "run.json").read_text()))))
    result = run_tt(args)
    assert result.exit_code == 0 and "already finished 4 steps" in " ".join(result.output.split()), result.output

    result = run_tt(args + ["--restart"])
    assert result.exit_code == 0, result.output
    after = tree_state(out)
    assert after["notes.txt"] == before["notes.txt"] and after["my_plots/loss.svg"] == before["my_plots/loss.svg"]
    assert all(os.stat(p).st_mtime_ns != t for p, t in written.items())  # tt's own files: written anew
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4]  # one fresh run, nothing kept from the old log
    entries = json.loads((out / MANIFEST).read_text())["entries"]
    assert {e.split("/")[0] for e in entries} == {
        "run.json",
        "model.json",
        "tokenizer.model",
        "checkpoints",
        "metrics.jsonl",
        "logs",
    }  # with the files tt wrote in its folders, each stamped
    assert all("sha256" in e or "bound_to" in e for e in entries.values() if not e.get("folder"))


# ---------------------------------------------------------------- tt export


def test_export_refuses_a_project_folder_the_run_and_a_folder_around_it(tiny_run, tmp_path):
    run = tiny_run("3t")
    project = make_project(tmp_path / "project")
    os.symlink(run, tmp_path / "link_to_run")
    before, run_before = tree_state(tmp_path), tree_state(run)
    for kind in ("savedmodel", "preset"):
        for out, message in [
            (project, "which tt did not write"),  # (a)
            (run, "is the input"),  # (b)
            (str(tmp_path / "link_to_run"), "is the input"),  # the run, through a symlink
            (os.path.join(run, "export"), "lies inside the input"),
            (os.path.dirname(run), "holds the input"),
        ]:  # (c)
            assert_refused(run_tt(["export", kind, run, str(out), "--overwrite"]), message)
    for out, message in [
        (os.path.join(project, "model.keras"), "tt did not write it"),
        (os.path.join(run, "model.keras"), "lies inside the input"),
    ]:
        assert_refused(run_tt(["export", "keras", run, out, "--overwrite"]), message)
    assert_kept(tmp_path, before)
    assert_kept(run, run_before)


@pytest.mark.slow
def test_export_overwrite_replaces_its_own_export_only(tiny_run, tmp_path):
    run = tiny_run("3t")
    out = str(tmp_path / "preset")
    assert run_tt(["export", "preset", run, out]).exit_code == 0
    weights = os.path.join(out, "model.weights.h5")
    first = os.stat(weights).st_mtime_ns
    assert_refused(run_tt(["export", "preset", run, out]), "--overwrite")
    assert run_tt(["export", "preset", run, out, "--overwrite"]).exit_code == 0
    assert os.stat(weights).st_mtime_ns != first
    # A file of the user's among tt's: the folder is no longer tt's alone.
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("my notes")
    before = tree_state(out)
    assert_refused(run_tt(["export", "preset", run, out, "--overwrite"]), "README.md")
    assert_kept(out, before)

    model = tmp_path / "exports" / "m.keras"
    assert run_tt(["export", "keras", run, str(model)]).exit_code == 0
    assert_refused(run_tt(["export", "keras", run, str(model)]), "--overwrite")
    first = os.stat(model).st_mtime_ns
    assert run_tt(["export", "keras", run, str(model), "--overwrite"]).exit_code == 0
    assert os.stat(model).st_mtime_ns != first
    with open(model, "w") as f:
        f.write("replaced by the user")  # no longer the file tt wrote
    assert_refused(run_tt(["export", "keras", run, str(model), "--overwrite"]), "tt did not write it")
    assert model.read_text() == "replaced by the user"


# ---------------------------------------------------------------- tt data embed


def test_embed_refuses_others_files_its_input_and_colliding_shard_names(tiny_shards, tiny_vit_preset, tmp_path):
    project = make_project(tmp_path / "project")
    for name in ("a", "b"):  # two folders with the same shard names, one glob over both
        shutil.copytree(tiny_shards, tmp_path / "pair" / name)
    before, shards_before = tree_state(tmp_path), tree_state(tiny_shards)
    base = ["data", "embed", "--pretrained", tiny_vit_preset, "--overwrite"]
    cases = [
        ([tiny_shards, "--out", project], "shard-00000-of-00002.tfrecord, which tt did not write"),  # (a)
        ([tiny_shards, "--out", tiny_shards], "is the input"),  # (b)
        ([tiny_shards, "--out", os.path.dirname(tiny_shards)], "holds the input"),  # (c)
        ([os.path.join(tiny_shards, "*.tfrecord"), "--out", tiny_shards], "is the input"),
        ([os.path.join(tiny_shards, "shard-00000-of-00002.tfrecord"), "--out", tiny_shards], "is the input"),
        ([str(tmp_path / "pair" / "*" / "shard-*"), "--out", str(tmp_path / "h")], "the same file name"),
    ]
    for args, message in cases:
        assert_refused(run_tt(base + args), message)
    assert_kept(tmp_path, before)
    assert_kept(tiny_shards, shards_before)

    out = tmp_path / "h"
    assert run_tt(["data", "embed", tiny_shards, "--pretrained", tiny_vit_preset, "--out", str(out)]).exit_code == 0
    (out / "notes.txt").write_text("mine")
    first = os.stat(out / "shard-00000-of-00002.tfrecord").st_mtime_ns
    one_shard = os.path.join(tiny_shards, "shard-00000-of-00002.tfrecord")  # other data than OUT's embeddings
    assert_refused(
        run_tt(["data", "embed", one_shard, "--pretrained", tiny_vit_preset, "--out", str(out)]), "--overwrite"
    )
    assert run_tt(base + [tiny_shards, "--out", str(out)]).exit_code == 0
    assert os.stat(out / "shard-00000-of-00002.tfrecord").st_mtime_ns != first
    assert (out / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- tt pretrain


@pytest.mark.slow
def test_pretrain_refuses_others_folders_and_its_data_and_overwrites_its_own(tiny_shards, tmp_path):
    project = make_project(tmp_path / "project")
    before, shards_before = tree_state(tmp_path), tree_state(tiny_shards)
    base = [
        "pretrain",
        "--data",
        tiny_shards,
        "--scale",
        "tiny",
        "--steps",
        "1",
        "--batch-size",
        "16",
        "--holdout",
        "0",
        "--overwrite",
    ]
    for out, message in [
        (project, "which tt did not write"),  # (a)
        (tiny_shards, "is the input"),  # (b)
        (os.path.dirname(tiny_shards), "holds the input"),
    ]:  # (c)
        assert_refused(run_tt(base + ["--out", out]), message)
    assert_kept(tmp_path, before)
    assert_kept(tiny_shards, shards_before)

    # tt's own earlier preset (listed in its manifest as `tt pretrain`'s; one real pretraining
    # run below is enough, XLA compiles each for ~30 s on CPU): --overwrite replaces it whole.
    from tt_cli.ownership import OutputFolder

    out = tmp_path / "preset"
    os.makedirs(out)
    for name in ("config.json", "old_weights.h5"):
        (out / name).write_text("from an earlier tt pretrain")
    OutputFolder(str(out), "tt pretrain").record(["config.json", "old_weights.h5"])
    assert run_tt(base + ["--out", str(out)]).exit_code == 0
    assert not (out / "old_weights.h5").exists()
    assert json.loads((out / "config.json").read_text())["class_name"] == "ViTBackbone"  # the new preset
    assert "tt_pretrain.json" in json.loads((out / MANIFEST).read_text())["entries"]


# ---------------------------------------------------------------- --json FILE (every command)


def test_json_result_replaces_only_an_earlier_result(sources, tmp_path):
    shards = tmp_path / "shards"
    run_tt_process("data", "convert", sources / "captions.jsonl", shards, "--workers", 1, "--num-shards", 1)
    project = make_project(tmp_path / "project")
    before = tree_state(tmp_path)
    # The dataset's own dataset.json, one of its shards, a user's file: refused before any work.
    for target in (shards / "dataset.json", shards / "shard-00000-of-00001.tfrecord", f"{project}/notes.txt"):
        result = run_tt_process("data", "inspect", shards, "--json", target, check=False)
        assert_refused(result, "--json", "tt did not write it")
    assert_kept(tmp_path, before)
    # A new file, then the same file again (tt's own result), then edited by the user: refused.
    result_path = tmp_path / "results" / "summary.json"
    run_tt_process("data", "inspect", shards, "--json", result_path)
    run_tt_process("data", "inspect", shards, "--samples", 1, "--json", result_path)
    assert len(json.loads(result_path.read_text())["samples"]) == 1
    result_path.write_text('{"mine": "edited since"}')
    assert_refused(run_tt_process("data", "inspect", shards, "--json", result_path, check=False), "--json")
    assert json.loads(result_path.read_text()) == {"mine": "edited since"}
