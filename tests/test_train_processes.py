"""`tt train` as separate processes: killed and resumed, and two workers together."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY_TRAIN_FLAGS

from tt_cli.checkpoints import RunCheckpoints

TT = shutil.which("tt") or os.path.join(os.path.dirname(sys.executable), "tt")
ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1"}


def train_args(shards, out, steps, mode="clip", extra=()):
    flags = list(TINY_TRAIN_FLAGS)
    flags[flags.index("--steps") + 1] = str(steps)
    return [TT, "train", "--data", shards, "--out", out, "--mode", mode, "--deterministic", *flags, *extra]


def checkpoint_values(path):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(path)
    # Model weights, optimizer slots and the step; not the checkpoint's own bookkeeping.
    names = [n for n, _ in tf.train.list_variables(path) if n.startswith(("model/", "optimizer/"))]
    return {n: reader.get_tensor(n) for n in names}


# Random crops, each step in 2 micro-batches (gradient caching) and the sigmoid loss, whose
# biases must be restored too: the resume position counts records, whatever the micro-batching,
# and the crops are drawn from the records' positions. (The un-augmented stream resumes as
# exactly: tests/test_image_size_augment.py.)
AUGMENT_ACCUM_SIGMOID = ("--augment", "--accum-steps", "2", "--loss", "sigmoid")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tiny_shards, tmp_path):
    steps = 8
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    subprocess.run(
        train_args(tiny_shards, straight, steps, extra=AUGMENT_ACCUM_SIGMOID),
        env=ENV,
        check=True,
        capture_output=True,
        timeout=300,
    )

    process = subprocess.Popen(
        train_args(tiny_shards, killed, steps, extra=AUGMENT_ACCUM_SIGMOID),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not os.path.exists(os.path.join(killed, "checkpoints", "ckpt-4.index")):
        assert process.poll() is None and time.monotonic() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(killed, "checkpoints", f"ckpt-{steps}.index"))

    resumed = subprocess.run(
        train_args(tiny_shards, killed, steps, extra=AUGMENT_ACCUM_SIGMOID),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr
    a = checkpoint_values(os.path.join(straight, "checkpoints", f"ckpt-{steps}"))
    b = checkpoint_values(os.path.join(killed, "checkpoints", f"ckpt-{steps}"))
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    logged = [json.loads(l) for l in open(os.path.join(killed, "metrics.jsonl"))]
    assert logged[-1]["step"] == steps and "bias_image_text" in logged[-1]  # the sigmoid loss's bias
    run = json.load(open(os.path.join(killed, "run.json")))
    assert (run["config"]["accum_steps"], run["config"]["loss"]) == (2, "sigmoid")


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_together_to_identical_weights(tiny_shards, tmp_path):
    out = str(tmp_path / "multiworker")
    workers = [f"localhost:{p}" for p in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**ENV, "TF_CONFIG": json.dumps(tf_config)}
        processes.append(
            subprocess.Popen(
                train_args(tiny_shards, out, 4), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [p.communicate(timeout=300) for p in processes]
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["resolved"]["strategy"] == "MultiWorkerMirroredStrategy" and run["resolved"]["replicas"] == 2
    chief = checkpoint_values(os.path.join(out, "checkpoints", "ckpt-4"))
    other = checkpoint_values(os.path.join(out, "checkpoints", ".worker-1", "ckpt-4"))
    assert chief.keys() == other.keys() and len(chief) > 10
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_stops(tiny_shards, tmp_path):
    out = str(tmp_path / "run")
    args = train_args(tiny_shards, out, 10_000)
    args[args.index("--checkpoint-every") + 1] = "10000"
    process = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = os.path.join(out, "metrics.jsonl")
    deadline = time.monotonic() + 240
    while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
        assert process.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "stopped by signal" in err and "Traceback" not in err
    latest = RunCheckpoints(None, out).latest_checkpoint  # the run's own record, in its manifest
    assert latest is not None and int(latest.rsplit("-", 1)[1]) >= 2
