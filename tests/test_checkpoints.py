"""`tt_cli.checkpoints`: a run's checkpoints are tt's own record, saved, rotated and restored
through its manifest, with no path read as a pattern. A `tf.train.Checkpoint` of one variable
stands for a model here (fast); the whole `tt train` path is in test_damaged_runs.py."""

import os

import pytest
from test_file_safety import tree_state

from tt_cli.checkpoints import RunCheckpoints
from tt_cli.errors import ConflictError, UnreadableDataError
from tt_cli.ownership import OutputFolder


def saver(run, keep=2, worker=None):
    import tensorflow as tf

    value = tf.Variable([0.0, 0.0])
    notes = []
    checkpoints = RunCheckpoints(tf.train.Checkpoint(value=value), run, keep, worker, notes.append)
    return checkpoints, value, notes


def save(checkpoints, value, step):
    value.assign([float(step), -float(step)])
    checkpoints.save(checkpoint_number=step)


def test_saves_are_recorded_rotated_and_restored_below_a_bracketed_path(tmp_path):
    run = str(tmp_path / "runs[1]" / "a*b?")  # every character a glob would read
    OutputFolder(run, "tt train").claim(["checkpoints", "metrics.jsonl", "logs"])
    checkpoints, value, notes = saver(run)
    for step in (2, 4, 6):
        save(checkpoints, value, step)
    assert checkpoints.steps() == [6, 4]  # keep=2: ckpt-2 removed, provably tt's
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == [
        "ckpt-4.data-00000-of-00001",
        "ckpt-4.index",
        "ckpt-6.data-00000-of-00001",
        "ckpt-6.index",
    ]  # and no TensorFlow `checkpoint` file, whose paths anyone could edit
    value.assign([0.0, 0.0])
    assert RunCheckpoints(value_checkpoint(value), run).restore_latest() == 6
    assert value.numpy().tolist() == [6.0, -6.0]


def value_checkpoint(value):
    import tensorflow as tf

    return tf.train.Checkpoint(value=value)


def test_a_damaged_newest_checkpoint_is_skipped_named_and_then_replaced(tmp_path):
    run = str(tmp_path / "run")
    OutputFolder(run, "tt train").claim(["checkpoints"])
    checkpoints, value, notes = saver(run, keep=3)
    for step in (2, 4):
        save(checkpoints, value, step)
    data = os.path.join(run, "checkpoints", "ckpt-4.data-00000-of-00001")
    os.truncate(data, os.path.getsize(data) - 1)
    with pytest.raises(UnreadableDataError, match="ckpt-4.data-00000-of-00001 changed since tt wrote it"):
        RunCheckpoints(value_checkpoint(value), run).restore_latest()  # eval, export: the newest, or one line
    resumed, value, notes = saver(run, keep=3)
    assert resumed.restore_newest() == 2 and value.numpy().tolist() == [2.0, -2.0]
    assert notes == [
        f"skipped the damaged checkpoint {run}/checkpoints/ckpt-4 ({os.path.basename(data)} changed "
        f"since tt wrote it); resuming from {run}/checkpoints/ckpt-2"
    ]
    assert resumed.steps() == [2]  # set aside: no longer a checkpoint to resume from ...
    save(resumed, value, 4)  # ... but still tt's (its .index is intact): saving step 4 replaces it
    assert resumed.steps() == [4, 2]


def test_all_damaged_refuses_and_changes_nothing(tmp_path):
    run = str(tmp_path / "run")
    OutputFolder(run, "tt train").claim(["checkpoints"])
    checkpoints, value, _ = saver(run)
    save(checkpoints, value, 2)
    with open(os.path.join(run, "checkpoints", "ckpt-2.index"), "r+b") as f:
        f.write(b"\0\0\0\0")  # same size, other bytes
    before = tree_state(run)
    with pytest.raises(UnreadableDataError, match="none of its checkpoints is intact") as refused:
        saver(run)[0].restore_newest()
    assert refused.value.remedy[0] == "restart" and tree_state(run) == before


def test_an_interrupted_save_leaves_tts_exact_names_and_foreign_ones_stop_a_save(tmp_path):
    run = str(tmp_path / "run")
    OutputFolder(run, "tt train").claim(["checkpoints"])
    checkpoints, value, _ = saver(run)
    save(checkpoints, value, 2)
    folder = os.path.join(run, "checkpoints")
    OutputFolder(run, "tt train").mark_pending("checkpoints/ckpt-4")  # killed while TensorFlow wrote ckpt-4
    os.makedirs(os.path.join(folder, "ckpt-4_temp"))
    with open(os.path.join(folder, "ckpt-4_temp", "part-00000-of-00001.index"), "w") as f:
        f.write("partial")
    checkpoints, value, _ = saver(run)
    save(checkpoints, value, 6)  # the leftovers of ckpt-4 go, as tt's exact names
    assert not os.path.exists(os.path.join(folder, "ckpt-4_temp"))
    with open(os.path.join(folder, "ckpt-8.index"), "w") as f:
        f.write("the user's")
    assert checkpoints.unrecorded() == ["ckpt-8.index"]
    with pytest.raises(ConflictError, match="ckpt-8.index exists and tt did not write it"):
        save(checkpoints, value, 8)
    assert open(os.path.join(folder, "ckpt-8.index")).read() == "the user's"


def test_a_workers_copies_keep_a_manifest_of_their_own_that_the_chief_respects(tmp_path):
    run = str(tmp_path / "run")
    chief = OutputFolder(run, "tt train")
    chief.claim(["checkpoints"])
    checkpoints, value, _ = saver(run)
    save(checkpoints, value, 2)
    worker, value, _ = saver(run, worker=1)
    save(worker, value, 2)
    assert worker.steps() == [2] and os.path.isfile(os.path.join(run, "checkpoints", ".worker-1", ".tt-manifest.json"))
    with open(os.path.join(run, "checkpoints", ".worker-1", "notes.txt"), "w") as f:
        f.write("mine")
    before = tree_state(run)
    with pytest.raises(ConflictError, match="not listed as written by tt train"):
        OutputFolder(run, "tt train").remove_owned(["checkpoints"])
    assert tree_state(run) == before
    os.remove(os.path.join(run, "checkpoints", ".worker-1", "notes.txt"))
    assert OutputFolder(run, "tt train").remove_owned(["checkpoints"]) == ["checkpoints"]
    assert not os.path.exists(os.path.join(run, "checkpoints"))
