"""Scaling out: two worker processes on this machine train one model together.

`tt train` uses `tf.distribute.MultiWorkerMirroredStrategy` whenever `TF_CONFIG` is set.
Every worker runs the same command with the same `--out` (a shared filesystem); only
`TF_CONFIG`'s task index differs. Each worker reads its own shards (convert with at least
as many shards as workers), the global `--batch-size` is split across all replicas, and
the contrastive loss still sees the whole global batch (embeddings are all-gathered).
Worker 0 is the chief: it writes run.json, metrics and the checkpoints in `--out`.

On real machines put each host's address in "worker" and start the command on each:
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \
        tt train --data gs://bucket/shards --out gs://bucket/runs/3t ...        # on host1, index 1 on host2

Run it:
    python examples/multiworker.py --steps 10
    python examples/multiworker.py --dry-run     # only print the commands
"""

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_utils import read_json, tt, tt_executable, write_jsonl_dataset  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="Training steps (each a global batch).")
    parser.add_argument("--batch-size", type=int, default=32, help="Global batch, split across the 2 workers.")
    parser.add_argument("--num-train", type=int, default=256, help="Training examples to make.")
    parser.add_argument("--workdir", default="runs/multiworker", help="Where data and the run go.")
    parser.add_argument("--dry-run", action="store_true", help="Print the commands without running them.")
    return parser.parse_args()


def free_ports(n):
    """n ports free on localhost right now (for the workers' gRPC servers)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def main():
    args = parse_args()
    work, dry = args.workdir, args.dry_run
    data = os.path.join(work, "data")

    # Data: 2 shards, one per worker (a worker fails with a clear message if there are fewer).
    if not dry:
        write_jsonl_dataset(os.path.join(data, "train"), args.num_train, seed=1, image_size=32)
    train = os.path.join(data, "train_shards")
    tt(["data", "convert", os.path.join(data, "train", "captions.jsonl"), train, "--num-shards", 2, "--overwrite"], dry)
    # The third tower (pretrained once, before the workers start).
    preset = os.path.join(work, "pretrained_vit")
    tt(
        [
            "pretrain",
            "--data",
            train,
            "--out",
            preset,
            "--overwrite",
            "--steps",
            6,
            "--scale",
            "tiny",
            "--batch-size",
            16,
        ],
        dry,
    )

    # The same command for every worker; TF_CONFIG says who is who.
    run = os.path.join(work, "run_3t")
    command = [
        "train",
        "--data",
        train,
        "--out",
        run,
        "--mode",
        "3t",
        "--pretrained",
        preset,
        "--scale",
        "tiny",
        "--steps",
        args.steps,
        "--batch-size",
        args.batch_size,
        "--vocab-size",
        40,
        "--max-text-len",
        16,
        "--lr",
        1e-3,
        "--log-every",
        max(1, args.steps // 5),
    ]
    command = [str(c) for c in command]
    # A fresh run each time (the workers would otherwise resume from an earlier one's checkpoints).
    print(f"$ rm -rf {shlex.quote(run)}")
    if not dry:
        shutil.rmtree(run, ignore_errors=True)
    workers = [f"localhost:{p}" for p in free_ports(2)]
    processes, logs = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        log = os.path.join(work, f"worker-{index}.log")
        print(f"$ TF_CONFIG={shlex.quote(tf_config)} {shlex.join(['tt', *command])} > {log} 2>&1 &", flush=True)
        if dry:
            continue
        os.makedirs(work, exist_ok=True)
        logs.append(open(log, "w"))
        processes.append(
            subprocess.Popen(
                [tt_executable(), *command],
                stdout=logs[-1],
                stderr=subprocess.STDOUT,
                env={**os.environ, "TF_CONFIG": tf_config},
            )
        )
    if dry:
        return
    print("$ wait", flush=True)
    start = time.perf_counter()
    codes = [p.wait() for p in processes]
    for f in logs:
        f.close()
    for index, code in enumerate(codes):
        with open(os.path.join(work, f"worker-{index}.log")) as f:
            tail = [line.rstrip() for line in f if line.strip()][-3:]
        print(f"# worker {index} exited with {code}; last lines of its log:")
        print("\n".join(f"#   {line}" for line in tail))
    if any(codes):
        sys.exit("error: a worker failed; see its log above.")
    info = read_json(os.path.join(run, "run.json"))
    print(
        f"trained {args.steps} steps in {time.perf_counter() - start:.0f} s with {info.get('strategy')} over "
        f"{info.get('replicas')} replicas; the chief's run directory: {run}"
    )


if __name__ == "__main__":
    main()
