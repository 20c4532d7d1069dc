"""A quiet start: no TensorFlow, absl or oneDNN line before tt's own, unless asked for."""

import os
import re
import subprocess
import sys

import pytest
from support.data_corpus import ENV, tt_command

from tt_cli import quiet

# TensorFlow's C++ log lines (absl's format): severity, date, time, thread, file:line].
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\]")
# What TensorFlow 2.21 prints on its way up on a CPU machine with the CUDA stubs of its wheel.
START_UP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796455669.291469   10955 cudart_stub.cc:31] Could not find cuda drivers on your machine, \
GPU will not be used.
I0000 00:00:1796455669.355818   10955 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available \
CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate \
compiler flags.
I0000 00:00:1796455673.1   10955 port.cc:153] oneDNN custom operations are on. You may see slightly different \
numerical results due to floating-point round-off errors from different computation orders.
E0000 00:00:1796459124.432458   21096 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call \
to cuInit: UNKNOWN ERROR (303)
"""


def test_start_up_lines_are_dropped_and_every_other_line_kept():
    other = "E0000 00:00:1.5   7 checkpoint_reader.cc:12] a checkpoint cannot be read\nsome Python warning"
    assert quiet.lines_to_keep(START_UP + other) == other.splitlines()
    # At the user's own level: TensorFlow's lines of that severity and above, with their notice.
    lines = START_UP.splitlines()
    assert quiet.lines_to_keep(START_UP + other, level=2) == [lines[-1], *other.splitlines()]
    assert quiet.lines_to_keep(START_UP + other, level=0) == (START_UP + other).splitlines()
    assert quiet.lines_to_keep(START_UP, level=3) == []


def test_who_decides_the_level(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # a finder added here is dropped after
    monkeypatch.delenv(quiet.LEVEL, raising=False)
    quiet.quiet_tensorflow_start(verbose=True)
    assert os.environ[quiet.LEVEL] == "0"
    monkeypatch.setenv(quiet.LEVEL, "3")
    quiet.quiet_tensorflow_start(verbose=False)  # the user's own level stands
    assert os.environ[quiet.LEVEL] == "3"
    monkeypatch.delenv(quiet.LEVEL)
    quiet.quiet_tensorflow_start(verbose=False)
    assert os.environ[quiet.LEVEL] == "2"


@pytest.mark.slow
def test_a_tensorflow_command_says_only_its_own_lines_unless_verbose(tiny_shards, tmp_path):
    """`tt train` refusing an image size once TensorFlow has started: its error line alone on
    stderr; with `tt --verbose`, TensorFlow's own lines before it (TensorFlow logs at level 0
    on every platform it ships for: CUDA stubs, CPU features, devices)."""
    env = {k: v for k, v in ENV.items() if k != quiet.LEVEL}
    args = ["train", "--data", tiny_shards, "--scale", "tiny", "--image-size", "33", "--out", str(tmp_path / "r")]
    error = "Error: image size 33: must be a multiple of the tiny scale's patch size 8"
    runs = {}
    for verbose in ([], ["--verbose"]):
        result = subprocess.run(tt_command() + verbose + args, capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith(error), result.stderr
        runs[bool(verbose)] = result.stderr.splitlines()
    assert runs[False] == runs[True][-1:]
    assert any(CPP_LOG_LINE.match(line) for line in runs[True][:-1]), runs[True]
