"""Shared test helpers: run the installed ``wideep`` command, write small data files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def wideep_command() -> list[str]:
    """The installed console script beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "wideep"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("wideep")
    if found is None:
        pytest.skip("the wideep command is not installed")
    return [found]


def run_cli(*args: str, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run ``wideep ARGS`` and capture its output as text."""
    return subprocess.run(wideep_command() + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def cli():
    """Fixture form of :func:`run_cli`."""
    return run_cli
