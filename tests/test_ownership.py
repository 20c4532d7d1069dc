"""tt removes only what its manifest proves it wrote (`tt_cli/ownership.py`): fast checks of the
rule itself, TF-free and in this process, and a property test over generated manifests.

The commands' own cases (convert, export, train) are in test_tampering.py; these build a folder
the way a command would (claim, write, record), then tamper with it.
"""

import hashlib
import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_file_safety import tree_state

from tt_cli import storage
from tt_cli.errors import ConflictError
from tt_cli.ownership import MANIFEST, OutputFolder

COMMAND = "tt data convert"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def tt_output(out):
    """A folder as a command leaves it: two files and a folder of its own, all recorded."""
    folder = OutputFolder(out, COMMAND)
    folder.claim(["dataset.json", "shard.tfrecord", "work"])
    write(os.path.join(out, "dataset.json"), '{"num_examples": 2}')
    write(os.path.join(out, "shard.tfrecord"), "tt's shard bytes")
    write(os.path.join(out, "work", "plan.json"), "{}")
    folder.record(["dataset.json", "shard.tfrecord", "work"])
    return folder


def manifest(out):
    with open(os.path.join(out, MANIFEST)) as f:
        return json.load(f)


def set_manifest(out, value):
    with open(os.path.join(out, MANIFEST), "w") as f:
        json.dump(value, f)


def stamp(path):
    data = open(path, "rb").read()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def assert_one_line(error):
    assert "\n" not in str(error) and str(error).strip()


def test_removing_its_own_output_keeps_everything_else(tmp_path):
    out = str(tmp_path / "out")
    tt_output(out)
    write(os.path.join(out, "notes.txt"), "mine")
    assert sorted(OutputFolder(out, COMMAND).remove_owned()) == ["dataset.json", "shard.tfrecord", "work"]
    assert sorted(os.listdir(out)) == [MANIFEST, "notes.txt"]
    assert manifest(out)["entries"] == {}


def test_a_temporary_name_is_one_exact_name(tmp_path):
    out = str(tmp_path / "out")
    tt_output(out)
    for name in ("dataset.json.tmp", "dataset.json.tmp_notes.txt", "dataset.json.tmpl", "shard.tfrecord.tmp2"):
        write(os.path.join(out, name), f"{name}, the user's (or, for .tmp, tt's unfinished write)")
    users = {k: v for k, v in tree_state(out).items() if k != "dataset.json.tmp" and "tmp" in k}
    removed = OutputFolder(out, COMMAND).remove_owned()
    assert "dataset.json.tmp" in removed  # tt's exact temporary name for dataset.json
    after = tree_state(out)
    assert {k: after[k] for k in users} == users


@pytest.mark.parametrize(
    "name, why",
    [
        ("../afile", "not a plain name"),
        ("/etc/passwd", "an absolute path"),
        ("work/../../afile", "not a plain name"),
        ("C:\\Windows", "an absolute path"),
        ("gs://bucket/x", "an absolute path"),
        ("", "not a name"),
        (".", "not a plain name"),
        ("elsewhere/x", "nested below elsewhere"),
        ("dataset.json/x", "nested below dataset.json"),  # a file of tt's is no folder
        (MANIFEST, "the manifest itself"),
    ],
)
def test_a_manifest_with_an_entry_tt_never_writes_is_refused(tmp_path, name, why):
    out, victim = str(tmp_path / "out"), str(tmp_path / "afile")
    tt_output(out)
    write(victim, "outside OUT")
    edited = manifest(out)
    edited["entries"][name] = {"command": COMMAND, **stamp(victim)}  # even with the right stamp
    set_manifest(out, edited)
    before = tree_state(str(tmp_path))
    with pytest.raises(ConflictError, match=why) as refused:
        OutputFolder(out, COMMAND).remove_owned()
    assert_one_line(refused.value)
    assert tree_state(str(tmp_path)) == before


@pytest.mark.parametrize("text", ["not json {", "[1, 2]", '{"entries": []}', '{"entries": {"a": "tt"}}'])
def test_an_unreadable_manifest_is_refused(tmp_path, text):
    out = str(tmp_path / "out")
    tt_output(out)
    write(os.path.join(out, MANIFEST), text)
    before = tree_state(out)
    with pytest.raises(ConflictError, match="trusts none of its entries") as refused:
        OutputFolder(out, COMMAND)
    assert_one_line(refused.value)
    assert tree_state(out) == before


def test_an_input_a_changed_file_a_users_folder_and_a_symlink_are_never_removed(tmp_path):
    out = str(tmp_path / "out")
    tt_output(out)
    write(os.path.join(out, "captions.csv"), "image,caption\n")  # the running command's input
    write(os.path.join(out, "mine", "a.txt"), "the user's folder")
    write(str(tmp_path / "elsewhere" / "b.txt"), "outside OUT")
    os.symlink(str(tmp_path / "elsewhere"), os.path.join(out, "link"))
    cases = [
        ("captions.csv", stamp(os.path.join(out, "captions.csv")), "an input of this command"),
        ("mine", {"folder": True, "created": False}, "a folder tt did not create"),
        ("link", {"folder": True, "created": True}, "a symlink"),
        ("mine/a.txt", {"size": 17, "sha256": "0" * 64}, "nested below mine"),  # mine is no folder of tt's
    ]
    for name, entry, why in cases:
        edited = manifest(out)
        edited["entries"][name] = {"command": COMMAND, **entry}
        set_manifest(out, edited)
        before = tree_state(str(tmp_path))
        with pytest.raises(ConflictError, match=why):
            OutputFolder(out, COMMAND, inputs=[os.path.join(out, "captions.csv")]).remove_owned()
        assert tree_state(str(tmp_path)) == before
        edited["entries"].pop(name)
        set_manifest(out, edited)


def test_a_file_changed_since_or_added_to_tts_folder_stops_the_removal(tmp_path):
    out = str(tmp_path / "out")
    tt_output(out)
    write(os.path.join(out, "shard.tfrecord"), "the user's shard")  # same size, other bytes
    assert os.path.getsize(os.path.join(out, "shard.tfrecord")) == len("tt's shard bytes")
    before = tree_state(out)
    with pytest.raises(ConflictError, match="changed since tt wrote it"):
        OutputFolder(out, COMMAND).remove_owned()
    assert tree_state(out) == before

    out = str(tmp_path / "out2")
    tt_output(out)
    write(os.path.join(out, "work", "notes.txt"), "mine, in tt's folder")
    before = tree_state(out)
    with pytest.raises(ConflictError, match="holds notes.txt, which tt did not write"):
        OutputFolder(out, COMMAND).remove_owned()
    assert tree_state(out) == before


def test_a_log_tt_appends_to_is_its_own_while_it_begins_with_what_tt_recorded(tmp_path):
    out = str(tmp_path / "run")
    folder = OutputFolder(out, "tt train")
    folder.claim(["metrics.jsonl"])
    write(os.path.join(out, "metrics.jsonl"), '{"step": 2}\n')
    folder.record(["metrics.jsonl"], grows=True)
    with open(os.path.join(out, "metrics.jsonl"), "a") as f:
        f.write('{"step": 4}\n')  # appended after tt last recorded it (a killed run)
    assert OutputFolder(out, "tt train").remove_owned() == ["metrics.jsonl"]
    write(os.path.join(out, "metrics.jsonl"), "")
    folder = OutputFolder(out, "tt train")
    folder.record(["metrics.jsonl"], grows=True)  # an empty file vouches for nothing: no stamp
    assert "sha256" not in folder.listed().get("metrics.jsonl", {})


def test_a_checkpoint_data_file_is_bound_only_to_its_own_index(tmp_path):
    out = str(tmp_path / "out")
    tt_output(out)
    write(os.path.join(out, "notes.txt"), "mine")
    edited = manifest(out)
    edited["entries"]["notes.txt"] = {"command": COMMAND, "size": 4, "bound_to": "dataset.json"}
    set_manifest(out, edited)
    with pytest.raises(ConflictError, match="not its checkpoint's .index"):
        OutputFolder(out, COMMAND)


def test_a_checkpoint_being_written_leaves_only_tts_exact_names(tmp_path):
    out = str(tmp_path / "run")
    folder = OutputFolder(out, "tt train")
    folder.claim(["checkpoints"])
    folder.mark_pending("checkpoints/ckpt-6")
    for name in ("ckpt-6.index", "ckpt-6_temp/part-00000-of-00001.index", "ckpt-60.index", "ckpt-6.notes"):
        write(os.path.join(out, "checkpoints", name), "x")
    folder = OutputFolder(out, "tt train")
    assert folder.is_pending_leftover("checkpoints/ckpt-6.index")
    assert folder.is_pending_leftover("checkpoints/ckpt-6_temp")
    assert not folder.is_pending_leftover("checkpoints/ckpt-60.index")  # another prefix
    assert not folder.is_pending_leftover("checkpoints/ckpt-6.notes")
    folder.remove_owned(["checkpoints/ckpt-6.index", "checkpoints/ckpt-6_temp", "checkpoints/ckpt-60.index"])
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == ["ckpt-6.notes", "ckpt-60.index"]


def test_existing_paths_are_never_patterns(tmp_path):
    folder = tmp_path / "shards[1]"
    folder.mkdir()
    (folder / "a[1].tfrecord").write_text("x")
    (folder / "b.tfrecord").write_text("x")
    assert storage.expand(str(folder / "a[1].tfrecord")) == [str(folder / "a[1].tfrecord")]
    assert storage.expand(str(tmp_path / "shards?1?" / "*.tfrecord")) == [
        str(folder / "a[1].tfrecord"),
        str(folder / "b.tfrecord"),
    ]  # a path that does not exist is a glob
    assert storage.names_ending(str(folder), ".tfrecord") == ["a[1].tfrecord", "b.tfrecord"]
    assert storage.expand(str(tmp_path / "missing")) == []


# ---------------------------------------------------------------- generated manifests

TT_FILES = ("dataset.json", "shard.tfrecord", "work/plan.json")
USER_FILES = ("notes.txt", "mine/a.txt", "work.txt", "captions.csv", "work/extra.txt")  # the last one: sometimes
NAMES = (*TT_FILES, "work", "notes.txt", "work.txt", "captions.csv", "work/extra.txt", "mine", "missing.txt")
# Names tt never writes (each refuses the whole manifest), one at most per example.
BAD_NAMES = (
    "../victim.txt",
    "../outside",
    "VICTIM",
    "work/../../victim.txt",
    "dataset.json/x",
    "work/",
    "",
    ".",
    MANIFEST,
)
STAMP_KINDS = ("right", "wrong_hash", "wrong_size", "none", "grows_right", "folder_created", "folder_not")


def entry_for(root, name, kind, command):
    path = os.path.join(root, "out", *name.split("/")) if name and not name.startswith("/") else name
    entry = {"command": command}
    if kind in ("right", "grows_right") and name in USER_FILES and name != "captions.csv":
        kind = "wrong_hash"  # a user's file with its own hash forged in is beyond any proof: not generated
    if os.path.isdir(path) and not kind.startswith("folder"):
        kind = "folder_created"  # (a folder's entry as a file only refuses the manifest, as its own tests show)
    if kind in ("right", "grows_right") and os.path.isfile(path):
        entry.update(stamp(path), **({"grows": True} if kind == "grows_right" else {}))
    elif kind == "wrong_hash":
        entry.update(size=os.path.getsize(path) if os.path.isfile(path) else 3, sha256="1" * 64)
    elif kind == "wrong_size":
        entry.update(size=10**6, sha256="2" * 64)
    elif kind.startswith("folder"):
        entry.update(folder=True, created=kind == "folder_created")
    return entry


@settings(max_examples=120, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from(NAMES), st.sampled_from(STAMP_KINDS), st.sampled_from([COMMAND, COMMAND, "tt train"])
        ),
        max_size=6,
    ),
    bad=st.none() | st.tuples(st.sampled_from(BAD_NAMES), st.sampled_from(STAMP_KINDS), st.just(COMMAND)),
    subset=st.none() | st.lists(st.sampled_from(NAMES), max_size=4),
    inside=st.booleans(),
)
def test_no_generated_manifest_removes_a_file_tt_did_not_write(entries, bad, subset, inside):
    with tempfile.TemporaryDirectory() as root:
        out = os.path.join(root, "out")
        tt_output(out)
        for name in USER_FILES[: None if inside else -1]:
            write(os.path.join(out, name), f"{name}: the user's")
        write(os.path.join(root, "victim.txt"), "outside OUT")
        write(os.path.join(root, "outside", "b.txt"), "outside OUT")
        edited = manifest(out)
        victim = os.path.join(root, "victim.txt")
        for name, kind, command in entries + ([bad] if bad else []):
            name = victim if name == "VICTIM" else name
            edited["entries"][name] = entry_for(root, name, kind, command)
        set_manifest(out, edited)
        before = tree_state(root)
        user_bytes = {k: v for k, v in before.items() if k.startswith("out/") and k[4:] not in TT_FILES}
        user_bytes = {k: v for k, v in user_bytes.items() if v != "dir" and not k.endswith(MANIFEST)}
        try:
            folder = OutputFolder(out, COMMAND, inputs=[os.path.join(out, "captions.csv")])
            folder.remove_owned(subset)
        except ConflictError as e:
            assert_one_line(e)
            after = tree_state(root)
            assert {k: v for k, v in after.items() if not k.endswith(MANIFEST)} == {
                k: v for k, v in before.items() if not k.endswith(MANIFEST)
            }  # refused: nothing removed
        after = tree_state(root)
        assert after["victim.txt"] == before["victim.txt"] and after["outside/b.txt"] == before["outside/b.txt"]
        assert {k: after.get(k) for k in user_bytes} == user_bytes  # every byte of the user's, in OUT too
        removed = {k[4:] for k in before if k.startswith("out/") and k not in after}
        assert removed <= set(TT_FILES) | {"work"}, removed  # only what tt wrote
