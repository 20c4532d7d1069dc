"""The README and docs/ are checked against the code, without running anything heavy.

- Every `tt ...` command line of a fenced shell block (every line of a `bash`/`sh` block,
  the `$ ` lines of any other block) is parsed by the real Click command tree: the command
  path exists and every flag and argument parses. Nothing is invoked; the parse runs on a
  copy of the tree whose parameters do not look at the files they name (no callbacks, no
  existence checks), so a documented path need not exist.
- Every `python examples/...` or `python benchmarks/...` line is parsed by that script's own
  argparse parser (captured in one subprocess: a script may import what this process must not).
- Every relative link and image of README.md and docs/**/*.md resolves, anchors included.
- README.md stays a front page (at most 250 lines) whose Development section names the
  install and check commands that `.ci/run` runs.
"""

import contextlib
import copy
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
README_MAX_LINES = 250

SHELL_BLOCKS = {"bash", "sh", "shell", "zsh"}  # every line is a command; elsewhere only `$ ` lines
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
OPERATORS = {"&&", "||", "|", ";", "&"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SCRIPT = re.compile(r"python3? ((?:examples|benchmarks)/\w+\.py[^\n#`|]*)")


def rel(path):
    return str(path.relative_to(ROOT))


def fenced_blocks(text):
    """(language, [(line number, line), ...]) of each fenced code block of a Markdown text."""
    block, fence, language = None, None, None
    for number, line in enumerate(text.split("\n"), 1):
        match = FENCE.match(line)
        if block is None and match:
            block, fence, language = [], match.group(1), match.group(2).lower()
        elif block is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            yield language, block
            block = None
        elif block is not None:
            block.append((number, line))


def shell_lines(language, block):
    """(line number, command) for each command of a block, `\\` continuations joined."""
    lines, current = [], None
    for number, line in block:
        if current is not None:
            current = (current[0], current[1][:-1] + " " + line.strip())
        elif language in SHELL_BLOCKS and line.strip() and not line.lstrip().startswith("#"):
            current = (number, line.strip())
        elif line.startswith("$ "):
            current = (number, line[2:].strip())
        if current is not None and not current[1].endswith("\\"):
            lines.append(current)
            current = None
    return lines


def simple_commands(line):
    """The argument lists of a shell line: split at `&&`, `|`, `;`, `&`; without redirections,
    leading `VAR=value` assignments and `time`."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current, skip = [], [], False
    for token in lexer:
        if skip:
            skip = False
        elif token in OPERATORS:
            commands.append(current)
            current = []
        elif token and set(token) <= set("<>&|") and ("<" in token or ">" in token):
            skip = True  # a redirection: its target is not an argument
        else:
            current.append(token)
    commands.append(current)
    stripped = []
    for args in commands:
        while args and (ASSIGNMENT.match(args[0]) or args[0] == "time"):
            args = args[1:]
        if args:
            stripped.append(args)
    return stripped


def documented_commands():
    """(place, argument list after `tt`) of every `tt` command in a fenced block of the pages."""
    found = []
    for page in PAGES:
        for language, block in fenced_blocks(page.read_text()):
            for number, line in shell_lines(language, block):
                for args in simple_commands(line):
                    if args[0] == "tt":
                        found.append((f"{rel(page)}:{number}", args[1:]))
    return found


def documented_scripts():
    """Each distinct `python examples/X.py ...` / `python benchmarks/X.py ...` line, anywhere in the pages."""
    lines = set()
    for page in PAGES:
        lines.update(match.group(1).strip() for match in SCRIPT.finditer(page.read_text()))
    return sorted(lines)


@pytest.fixture(scope="module")
def command_tree():
    """A copy of `tt`'s Click tree whose parameters check nothing on disk while parsing."""
    from tt_cli.main import cli

    tree = copy.deepcopy(cli)
    commands = [tree]
    while commands:
        command = commands.pop()
        for param in command.params:
            if not getattr(param, "is_eager", False):
                param.callback = None  # e.g. --tokenizer reads the file, --json checks its folder
            if isinstance(param.type, click.Path) and param.type.exists:
                param.type = copy.copy(param.type)
                param.type.exists = False
        commands.extend(getattr(command, "commands", {}).values())
    return tree


def parse_command_line(tree, args):
    """Parses `tt ARGS` as Click would before invoking, without invoking: raises a
    `click.ClickException` for an unknown command or a flag or value that does not parse."""
    command, name, parent = tree, "tt", None
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        while True:
            try:
                context = command.make_context(name, list(args), parent=parent)
            except click.exceptions.Exit as e:  # --help, --version
                assert e.exit_code == 0
                return
            if not isinstance(command, click.Group):
                return
            protected = getattr(context, "_protected_args", None)
            rest = [*(context.protected_args if protected is None else protected), *context.args]
            name, command, args = command.resolve_command(context, rest)
            parent = context


COMMANDS = documented_commands()


def test_every_page_documents_some_commands():
    """The extraction itself works: the guides' commands are found (a broken fence parser finds none)."""
    places = {place.split(":")[0] for place, _ in COMMANDS}
    assert {"README.md", "docs/guide/train.md", "docs/guide/data.md", "docs/guide/eval.md"} <= places, places
    assert len(COMMANDS) >= 40


@pytest.mark.parametrize("place, args", COMMANDS, ids=[place for place, _ in COMMANDS])
def test_documented_tt_command_parses(command_tree, place, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing a parse might touch lands in the checkout
    heavy_before = {m for m in ("tensorflow", "tfrecord") if m in sys.modules}
    try:
        parse_command_line(command_tree, args)
    except click.ClickException as e:
        pytest.fail(f"{place}: `tt {shlex.join(args)}` does not parse: {e.format_message()}")
    heavy_after = {m for m in ("tensorflow", "tfrecord") if m in sys.modules}
    assert heavy_after <= heavy_before, f"parsing `tt {shlex.join(args)}` imported {heavy_after - heavy_before}"


def test_parser_refuses_what_tt_refuses(command_tree):
    """The check fails where it should: an unknown command, an unknown flag, a bad value."""
    parse_command_line(command_tree, ["eval", "zero-shot", "runs/3t", "--data", "shards_val"])
    for bad in (
        ["eval", "zero-shots", "runs/3t"],
        ["train", "--no-such-flag"],
        ["train", "--accum-steps", "N"],
        ["data", "convert", "only_the_source"],
    ):
        with pytest.raises(click.ClickException):
            parse_command_line(command_tree, bad)


def test_shell_line_splitting():
    block = [(1, "$ TF_CONFIG='{\"a\": 1}' tt train --steps 10 > log.txt &"), (2, "output"), (3, "$ time tt eval \\")]
    block.append((4, "    retrieval RUN --data d && python examples/x.py --size small"))
    commands = [args for _, line in shell_lines("console", block) for args in simple_commands(line)]
    assert commands == [
        ["tt", "train", "--steps", "10"],
        ["tt", "eval", "retrieval", "RUN", "--data", "d"],
        ["python", "examples/x.py", "--size", "small"],
    ]


# Runs in a subprocess: imports each script as `__main__` with argparse's parse_args replaced,
# keeps the first parser the script builds, and parses the documented arguments with it.
SCRIPT_CHECKER = r"""
import argparse, contextlib, io, json, os, runpy, shlex, sys

class Captured(Exception):
    pass

def capture(parser, args=None, namespace=None):
    raise Captured(parser)

parse_args, argparse.ArgumentParser.parse_args = argparse.ArgumentParser.parse_args, capture
failures = []
for line in json.load(sys.stdin):
    script, *args = shlex.split(line)
    sys.argv = [script]
    try:
        runpy.run_path(script, run_name="__main__")
        failures.append(f"{line}: the script built no argparse parser")
        continue
    except Captured as e:
        parser = e.args[0]
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            parse_args(parser, args)
    except SystemExit as e:
        if e.code:
            failures.append(f"{line}: {err.getvalue().strip().splitlines()[-1]}")
print(json.dumps(failures))
"""


def test_documented_scripts_parse():
    scripts = documented_scripts()
    assert any(s.startswith("examples/") for s in scripts) and any(s.startswith("benchmarks/") for s in scripts)
    for line in scripts:
        assert (ROOT / shlex.split(line)[0]).is_file(), f"{line}: no such script"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT_CHECKER],
        input=json.dumps(scripts),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == []


# Links: [text](target) and ![alt](target) outside code; GitHub's heading anchors (the docs
# site uses the same slugs: mkdocs.yml's toc slugify).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`\n]*`")


def prose(text):
    """`text` without fenced blocks and inline code (where a bracket is not a link)."""
    fenced = {number for _, block in fenced_blocks(text) for number, _ in block}
    lines = [line for number, line in enumerate(text.split("\n"), 1) if number not in fenced]
    return CODE_SPAN.sub("", "\n".join(lines))


def slug(heading):
    """GitHub's anchor of a heading: lower case, inline Markdown and punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.replace("`", "").strip().lower())
    return text.replace(" ", "-")


def anchors(page):
    """The heading anchors of a page, or None when the page has generated content (mkdocs checks those)."""
    text = page.read_text()
    if re.search(r"^(:::|--8<--)", text, re.M):
        return None
    fenced = {number for _, block in fenced_blocks(text) for number, _ in block}
    seen, found = {}, set()
    for number, line in enumerate(text.split("\n"), 1):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)
        if match and number not in fenced:
            base = slug(match.group(1))
            found.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
    return found


def relative_links():
    for page in PAGES:
        for match in LINK.finditer(prose(page.read_text())):
            target = match.group(1)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # not http:, mailto:, ...
                yield page, target


@pytest.mark.parametrize("page, target", list(relative_links()), ids=[f"{rel(p)}->{t}" for p, t in relative_links()])
def test_relative_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    assert resolved.exists(), f"{rel(page)}: {target} points at nothing"
    if anchor and resolved.suffix == ".md":
        names = anchors(resolved)
        assert names is None or anchor in names, f"{rel(page)}: {target}: no such heading in {resolved.name}"


def test_api_reference_covers_every_library_module():
    """Each module of `models/` and of the `tt_cli` library (not the Click layer) is on an API page:
    named by a `::: module` line, or inside a `::: package` that renders its submodules."""
    text = "\n".join(page.read_text() for page in (ROOT / "docs" / "reference" / "api").glob("*.md"))
    directives = re.findall(r"^::: ([\w.]+)\n((?:    .*\n)*)", text, re.M)
    whole = {name for name, options in directives if "members: false" not in options}
    named = {name for name, _ in directives}
    missing = []
    for path in [*(ROOT / "models").rglob("*.py"), *(ROOT / "tt_cli").rglob("*.py")]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module.endswith("__init__") or module == "tt_cli.main" or module.startswith("tt_cli.commands"):
            continue
        packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        if module not in named and not packages & whole:
            missing.append(module)
    assert not missing, f"add `::: NAME` lines to docs/reference/api/ for {missing}"


def test_readme_is_a_front_page():
    lines = README.read_text().split("\n")
    assert len(lines) - (lines[-1] == "") <= README_MAX_LINES


def test_readme_names_what_ci_runs():
    """`.ci/run` installs "exactly as the README says": each of its install and check commands
    is a command line of the README's Development section (the same arguments, without `--quiet`)."""
    words = lambda line: " ".join(t for t in shlex.split(line, comments=True) if t != "--quiet")
    readme = README.read_text()
    development = readme[readme.index("\n## Development") :]
    documented = {
        words(line) for language, block in fenced_blocks(development) for _, line in shell_lines(language, block)
    }
    steps = [
        words(line)
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if re.match(r"^(pip install|ruff|pytest|mkdocs|lint-imports)\b", line.strip())
    ]
    assert any(s.startswith("pip install") for s in steps) and any(s.startswith("mkdocs") for s in steps), steps
    for step in steps:
        assert step in documented, f"README's Development section lacks the command `{step}` that .ci/run runs"
