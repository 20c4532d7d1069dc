"""The examples/ scripts: quickstart and python_api run end to end at their smallest size;
the longer ones (compare_modes, bring_your_own_classifier, multiworker) parse `--help`
and print the commands they would run with `--dry-run`.

Each script runs in a subprocess exactly as a user runs it (`python examples/X.py`).
"""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tt_cli.demo.shapes import CLASS_NAMES

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_example(name, *args, timeout=600):
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, f"{name}.py"), *map(str, args)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    return result.stdout


def tt_commands(stdout):
    """The `$ tt ...` command lines an example printed, as argument lists (without `tt`)."""
    return [shlex.split(line[len("$ tt ") :]) for line in stdout.splitlines() if line.startswith("$ tt ")]


def flag(args, name):
    return args[args.index(name) + 1]


@pytest.mark.slow
def test_quickstart_runs_the_whole_path(tmp_path):
    work = tmp_path / "qs"
    out = run_example("quickstart", "--size", "smallest", "--workdir", work)
    commands = [args[:2] if args[0] in ("data", "eval", "export") else args[:1] for args in tt_commands(out)]
    assert commands == [
        ["data", "convert"],
        ["data", "convert"],
        ["pretrain"],
        ["train"],
        ["eval", "zero-shot"],
        ["eval", "retrieval"],
        ["export", "savedmodel"],
    ]
    # The user-style source and what each command produced.
    lines = (work / "data" / "train" / "captions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 128 and (work / "data" / "train" / first["image"]).is_file() and first["captions"]
    train_info = json.loads((work / "data" / "train_shards" / "dataset.json").read_text())
    assert train_info["num_examples"] == 128 and set(train_info["class_names"]) <= set(CLASS_NAMES)
    assert (work / "pretrained_vit" / "config.json").is_file()
    run = json.loads((work / "run_3t" / "run.json").read_text())
    assert run["config"]["mode"] == "3t" and run["resolved"]["third_towers"][0]["preset"].endswith("pretrained_vit")
    assert (work / "export_3t" / "saved_model.pb").is_file()
    zero_shot = json.loads((work / "zero_shot.json").read_text())["models"][0]
    retrieval = json.loads((work / "retrieval.json").read_text())["models"][0]
    assert zero_shot["step"] == 6 and 0 <= zero_shot["top1"] <= zero_shot["top5"] <= 1
    assert all(0 <= retrieval[f"{d}_R@{k}"] <= 1 for d in ("image_to_text", "text_to_image") for k in (1, 5, 10))
    # The query through the SavedModel ranked the class prompts and named the best one.
    best = re.search(r"best-matching caption: 'a (.+)'", out)
    assert best and best.group(1) in CLASS_NAMES, out[-2000:]
    scores = [float(s) for s in re.findall(r"^  ([+-]\d\.\d{3})  a ", out, re.M)]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)


@pytest.mark.slow
def test_python_api_trains_with_model_fit(tmp_path):
    work = tmp_path / "api"
    out = run_example("python_api", "--size", "smallest", "--workdir", work)
    assert re.search(r"^training 3t for 6 steps", out, re.M), out
    assert re.search(r"^6/6 ", out, re.M), out  # Keras' fit progress line of the 3T model
    loss = float(re.search(r"^final loss (\d+\.\d+)", out, re.M).group(1))
    assert 0 < loss < 10
    metrics = dict(re.findall(r"(\w+(?:@1)?) (\d+\.\d)%", out.split("held-out:")[1].splitlines()[0]))
    assert set(metrics) == {"zero_shot_top1", "image_to_text_R@1", "text_to_image_R@1", "chance_top1"}
    assert all(0 <= float(v) <= 100 for v in metrics.values())
    assert float(metrics["chance_top1"]) == pytest.approx(100 / 18, abs=0.05)
    assert (work / "model_3t.keras").is_file() and (work / "tokenizer.model").is_file()
    assert "reloaded, same image embeddings: True" in out
    assert json.loads((work / "train_shards" / "dataset.json").read_text())["num_examples"] == 96


@pytest.mark.parametrize(
    "name", ["quickstart", "compare_modes", "bring_your_own_classifier", "multiworker", "python_api"]
)
def test_help(name):
    out = run_example(name, "--help")
    assert out.startswith("usage:") and "--workdir" in out


def dry_run(name, tmp_path):
    work = tmp_path / name
    out = run_example(name, "--dry-run", "--workdir", work)
    assert not work.exists(), "a dry run must not write anything"
    return tt_commands(out), out, str(work)


def test_compare_modes_dry_run_trains_three_modes_alike(tmp_path):
    commands, _, work = dry_run("compare_modes", tmp_path)
    trains = [args for args in commands if args[0] == "train"]
    assert [flag(a, "--mode") for a in trains] == ["clip", "lit", "3t"]
    budget = lambda a: [flag(a, f) for f in ("--data", "--steps", "--batch-size", "--lr", "--scale")]
    assert budget(trains[0]) == budget(trains[1]) == budget(trains[2])
    assert "--pretrained" not in trains[0] and flag(trains[1], "--pretrained") == flag(trains[2], "--pretrained")
    evals = [args for args in commands if args[0] == "eval"]
    assert sorted(a[1] for a in evals) == ["retrieval", "retrieval", "zero-shot", "zero-shot"]
    ensembles = [a for a in evals if "--ensemble" in a]
    assert len(ensembles) == 2 and all(a[2] == os.path.join(work, "run_3t") for a in ensembles)
    assert all(flag(a, "--ensemble") == os.path.join(work, "run_lit") for a in ensembles)


def test_bring_your_own_classifier_dry_run(tmp_path):
    commands, _, work = dry_run("bring_your_own_classifier", tmp_path)
    assert [a[:2] if a[0] in ("data", "eval") else a[:1] for a in commands] == [
        ["data", "convert"],
        ["pretrain"],
        ["data", "convert"],
        ["data", "convert"],
        ["data", "embed"],
        ["train"],
        ["eval", "zero-shot"],
    ]
    folder_convert, pretrain, embed, train = commands[0], commands[1], commands[4], commands[5]
    assert folder_convert[2].endswith("labelled_images") and flag(pretrain, "--data") == folder_convert[3]
    preset = flag(pretrain, "--out")
    assert flag(embed, "--pretrained") == preset == flag(train, "--pretrained")
    assert flag(train, "--embeddings") == flag(embed, "--out") and flag(train, "--mode") == "3t"
    assert flag(train, "--data") == embed[2]  # the shards the embeddings were made for


def test_multiworker_dry_run_starts_two_workers(tmp_path):
    commands, out, work = dry_run("multiworker", tmp_path)
    assert [a[:2] for a in commands[:2]] == [["data", "convert"], ["pretrain", "--data"]]
    assert flag(commands[0], "--num-shards") == "2"
    workers = [line for line in out.splitlines() if line.startswith("$ TF_CONFIG=")]
    assert len(workers) == 2
    configs = [json.loads(shlex.split(line[2:])[0][len("TF_CONFIG=") :]) for line in workers]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}]
    assert configs[0]["cluster"] == configs[1]["cluster"] and len(set(configs[0]["cluster"]["worker"])) == 2
    # Apart from TF_CONFIG, every worker runs the same command.
    assert workers[0].split(" tt ", 1)[1].split(" > ")[0] == workers[1].split(" tt ", 1)[1].split(" > ")[0]


def documented_commands():
    """`python examples/X.py ...` lines of the README and of the examples' own docstrings."""
    root = os.path.dirname(EXAMPLES)
    sources = [os.path.join(root, "README.md")] + sorted(
        os.path.join(EXAMPLES, f) for f in os.listdir(EXAMPLES) if f.endswith(".py") and f != "example_utils.py"
    )
    commands = set()
    for path in sources:
        if os.path.isfile(path):
            for match in re.finditer(r"python (examples/\w+\.py[^\n#`]*)", open(path).read()):
                commands.add(match.group(1).strip())
    return sorted(commands)


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_lines_parse(command):
    """Every documented example command names a script that accepts its flags and values
    (argparse validates them before it reaches the trailing --help)."""
    script, *args = shlex.split(command)
    assert os.path.isfile(os.path.join(os.path.dirname(EXAMPLES), script)), command
    out = run_example(os.path.basename(script)[:-3], *args, "--help")
    assert out.startswith("usage:")
