"""The README's shell examples, run as written and checked against what the README says they print.

Examples come from README.md itself, so that the README cannot drift from the behaviour: every
fenced block without a language in the sections of SECTIONS is run, command by command, in one
fresh directory per block, with the `minidistil` of this environment, offline (HF_HUB_OFFLINE=1).

The README's conventions, which this file relies on:
- a line starting with `# ` right after a command is a line of that command's stdout;
- a paragraph right after a block that starts with "prints `X`" is the stdout of its last command;
- a command commented `# needs the hub` cannot run offline: its block is skipped, saying so (a block
  mixes no such command with offline ones);
- `pip install` steps chained with `&&` set up the environment these tests run in: they are not run,
  and what they install is checked to be what is installed here.
"""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTIONS = ("Quick start", "Command line and pipelines")
HUB_MARK = "# needs the hub"
PIP_INSTALL = re.compile(r"^(python -m )?pip install ")
TIMEOUT_S = 300  # per command; the first numba run of a fresh checkout compiles its kernels


def sections(text):
    """{heading: body} of the README's sections (`## ` and `### `: a subsection is a section of its own)."""
    parts = re.split(r"^###? (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def shell_blocks(body):
    """[(block lines, the paragraph after the block)] for each fenced block without a language."""
    lines = body.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        language, end = lines[i][3:].strip(), lines.index("```", i + 1)
        if not language:
            rest = "\n".join(lines[end + 1 :]).strip()
            blocks.append((lines[i + 1 : end], rest.split("\n\n")[0]))
        i = end + 1
    return blocks


def commands(lines, after):
    """[{"command": str, "expected": [stdout lines] or None}] of one block (see the module docstring)."""
    steps = []
    pending = ""
    for line in lines:
        if pending or not line.startswith("#"):
            pending += line[:-1] + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                steps.append({"command": pending, "expected": None})
                pending = ""
        elif steps:  # "# ..." after a command: a line of its output
            steps[-1]["expected"] = (steps[-1]["expected"] or []) + [line[2:] if line.startswith("# ") else line[1:]]
    printed = re.match(r"prints `([^`]*)`", after)
    if printed and steps:
        steps[-1]["expected"] = [printed.group(1)]
    return steps


def collect():
    found = []
    for heading, body in sections(README.read_text(encoding="utf-8")).items():
        section = next((name for name in SECTIONS if heading.startswith(name)), None)
        if section is None:
            continue
        for n, (lines, after) in enumerate(shell_blocks(body), 1):
            steps = commands(lines, after)
            found.append(pytest.param(steps, id=f"{section} #{n}: {steps[0]['command'][:50]}"))
    return found


EXAMPLES = collect()


def check_setup(segment):
    """Skip unless the environment is what the README's `pip install` step `segment` makes."""
    words = segment.split()[segment.split().index("install") + 1 :]
    for word in words:
        if word.startswith("-e") or word in ("-e", "--no-deps"):
            continue
        if word.strip("\"'").startswith("."):  # this checkout, editable
            import minidistil

            if ROOT not in Path(minidistil.__file__).resolve().parents:
                pytest.skip(f"minidistil is not installed from this checkout ({segment})")
        elif "==" in word:
            name, version = word.split("==")
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                pytest.skip(f"{name} is not installed here: {segment}")
            assert installed == version, f"the README installs {name}=={version}, this environment has {installed}"


def offline_environment(workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIDISTIL_", "HF_"))}
    env.update(HF_HOME=str(workdir / "hf-home"), HF_HUB_OFFLINE="1",
               PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""))
    return env


@pytest.mark.parametrize("steps", EXAMPLES)
def test_readme_example(steps, tmp_path):
    hub = [s["command"] for s in steps if HUB_MARK in s["command"]]
    if hub:
        offline = [s["command"] for s in steps if HUB_MARK not in s["command"]]
        assert not offline, f"a block with commands that need the hub also has offline ones; split it: {offline}"
        pytest.skip(f"needs the Hugging Face hub, unreachable from the tests: {hub[0]}")
    assert shutil.which("minidistil", path=str(Path(sys.executable).parent)), "the minidistil command is not installed"
    env = offline_environment(tmp_path)
    for step in steps:
        segments = step["command"].split(" && ")
        for segment in [s for s in segments if PIP_INSTALL.match(s.strip())]:
            check_setup(segment.strip())
        command = " && ".join(s for s in segments if not PIP_INSTALL.match(s.strip()))
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"{command!r} failed ({proc.returncode}): {proc.stderr}"
        if step["expected"] is not None:
            assert proc.stdout.splitlines() == step["expected"], f"{command!r} printed {proc.stdout!r}"


def test_every_command_has_an_example():
    """Each command of the README's command list appears in an example here (run, or skipped for the hub)."""
    text = README.read_text(encoding="utf-8")
    listed = re.search(r"`minidistil ([a-z| -]+)`", sections(text)["Command line and pipelines"]).group(1)
    shown = " ".join(step["command"] for param in EXAMPLES for step in param.values[0])
    missing = [c.strip() for c in listed.split("|") if f"minidistil {c.strip()} " not in shown]
    assert not missing, f"no README example runs: {missing}"
    assert any("minidistil similarity" in s for s in shown.split(" && "))  # the quick start was found
