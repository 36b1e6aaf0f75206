"""The examples of README.md and docs/*.md run as written and print what they show (timings aside).

Refresh them with ``python tools/refresh_examples.py`` after a change that moves a number."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import run_cli

README = Path(__file__).resolve().parent.parent / "README.md"
DOCS = sorted((README.parent / "docs").glob("*.md"))
#: Commands whose output holds a measured runtime, compared on their first (header) line only.
TIMED = ("place",)


def examples() -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) of every ```-block that starts with ``$ wideep``."""
    found = []
    text = "\n".join(path.read_text() for path in [README, *DOCS])
    for block in re.findall(r"```\n(\$ wideep .*?)\n```", text, flags=re.S):
        first, *rest = block.splitlines()
        found.append((first[2:], rest))
    return found


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    install = "python3 -m venv .venv && .venv/bin/pip install '.[test,report]' && .venv/bin/wideep plan"
    assert text.index(install) < text.index(".venv/bin/python -m pytest") < text.index("## Quickstart")


@pytest.mark.parametrize("command,expected", examples(), ids=[c for c, _ in examples()])
def test_readme_example(command, expected, tmp_path):
    args = shlex.split(command)[1:]
    result = run_cli(*args, cwd=tmp_path)
    output = (result.stdout + result.stderr).rstrip("\n").splitlines()
    assert result.returncode == (2 if any("wideep: error" in line for line in expected) else 0), result.stderr
    if args[0] in TIMED:
        assert output[0] == expected[0]
    else:
        assert output == expected
