"""A run with checkpoints never silently starts over (issue #22, "Damaged runs silently start
over"): tt resumes from the newest intact checkpoint it recorded, says which, or refuses with
one line; no path is read as a glob pattern.

One tiny trained run (the session's `tiny_run`) is copied per case; each case asserts the
outcome and that the user's bytes are unchanged (`test_file_safety.tree_state`).
"""

import json
import os
import shutil

import pytest
from conftest import TINY_TRAIN_FLAGS, first_layout, run_tt
from test_file_safety import MANIFEST, assert_refused, tree_state

from tt_cli.checkpoints import RunCheckpoints
from tt_cli.run_dir import load_run

pytestmark = pytest.mark.slow


def train(shards, run, *extra):
    return run_tt(["train", "--data", shards, "--out", run, "--mode", "clip", *TINY_TRAIN_FLAGS, *extra])


def output(result):
    return "".join(result.output.split())  # rich wraps long lines, even inside a path


def said(text):
    return "".join(text.split())


def checkpoint_files(run):
    return {k: v for k, v in tree_state(os.path.join(run, "checkpoints")).items()}


def test_a_garbage_checkpoint_file_and_brackets_in_the_path_resume_from_tts_checkpoints(
    tiny_run, tiny_shards, tmp_path
):
    run = str(tmp_path / "runs[1]" / "clip[a*]")
    shutil.copytree(tiny_run("clip"), run)
    with open(os.path.join(run, "checkpoints", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "../../../elsewhere"\ngarbage \x00\x01')  # not tt's: never read
    before = checkpoint_files(run)
    result = train(tiny_shards, run)
    assert result.exit_code == 0, result.output
    assert said(f"resuming {run} from checkpoints/ckpt-4 at step 4/4") in output(result)
    assert said("already finished 4 steps") in output(result)
    assert checkpoint_files(run) == before

    # eval and export read it too (they said "no finished checkpoint yet; train it").
    assert load_run(run).step == 4
    keras_out = str(tmp_path / "clip.keras")
    assert run_tt(["export", "keras", run, keras_out]).exit_code == 0 and os.path.getsize(keras_out) > 0

    # Starting over would remove checkpoints/, which now holds a file tt did not write.
    before = tree_state(run)
    assert_refused(train(tiny_shards, run, "--restart"), "holds checkpoint, which tt did not write")
    assert tree_state(run) == before


def test_a_run_of_an_earlier_tt_with_a_garbage_checkpoint_file_resumes(tiny_run, tiny_shards, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(tiny_run("clip"), run)
    os.remove(os.path.join(run, MANIFEST))  # as tt wrote runs before manifests, with their run.json
    run_json = os.path.join(run, "run.json")
    with open(run_json) as f:
        old = first_layout(json.load(f))
    with open(run_json, "w") as f:
        json.dump(old, f)
    with open(os.path.join(run, "checkpoints", "checkpoint"), "w") as f:
        f.write("garbage")
    result = train(tiny_shards, run)
    assert result.exit_code == 0, result.output
    assert said("from checkpoints/ckpt-4 at step 4/4") in output(result)
    assert RunCheckpoints(None, run).steps() == [4, 2]  # adopted: hashed and listed in a new manifest


def test_a_damaged_newest_checkpoint_is_named_and_the_run_resumes_from_the_one_before(tiny_run, tiny_shards, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(tiny_run("clip"), run)
    data = os.path.join(run, "checkpoints", "ckpt-4.data-00000-of-00001")
    os.truncate(data, os.path.getsize(data) // 2)
    result = train(tiny_shards, run)
    assert result.exit_code == 0, result.output
    log = output(result)
    assert said(f"skipped the damaged checkpoint {run}/checkpoints/ckpt-4 (ckpt-4.data-00000-of-00001 changed") in log
    assert said("from checkpoints/ckpt-2 at step 2/4") in log
    assert load_run(run).step == 4  # trained again from step 2, and ckpt-4 written anew (tt's own, provably)
    steps = [json.loads(line)["step"] for line in open(os.path.join(run, "metrics.jsonl"))]
    assert steps == [2, 4, 4]


def test_a_run_whose_checkpoints_are_all_damaged_is_refused_not_started_over(tiny_run, tiny_shards, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(tiny_run("clip"), run)
    for step in (2, 4):
        index = os.path.join(run, "checkpoints", f"ckpt-{step}.index")
        os.truncate(index, 10)
    before = tree_state(run)
    result = train(tiny_shards, run)
    assert_refused(result, "none of its checkpoints is intact", "ckpt-4.index changed", "pass --restart")
    after = tree_state(run)
    assert {k: v for k, v in after.items() if k != MANIFEST} == {k: v for k, v in before.items() if k != MANIFEST}
