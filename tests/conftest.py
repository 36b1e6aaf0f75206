"""Shared test helpers: run ``wideep`` (in this process, or the installed command), write small data files."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout
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


#: Warnings Python's default filters hide in a fresh process.
QUIET_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def run_cli(*args: str, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run ``wideep ARGS`` through its entry point (:func:`wideep.cli.main`) in this process, as a shell would
    see it: exit code, stdout and stderr as text (no interpreter start per call; :func:`run_process` starts
    the installed command itself)."""
    from wideep.cli import main

    out, err, argv, here, code = io.StringIO(), io.StringIO(), sys.argv, os.getcwd(), 0
    try:
        sys.argv = ["wideep", *args]
        if cwd is not None:
            os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        for w in caught:  # what a fresh interpreter prints on stderr (its default filters hide the others)
            if not issubclass(w.category, QUIET_WARNINGS):
                err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno))
    finally:
        sys.argv = argv
        os.chdir(here)
    return subprocess.CompletedProcess(["wideep", *args], code, out.getvalue(), err.getvalue())


def run_process(*args: str, cwd: str | Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed ``wideep ARGS`` command in a process of its own and capture its output as text."""
    return subprocess.run(wideep_command() + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.fixture
def cli():
    """Fixture form of :func:`run_cli`."""
    return run_cli


def with_misses(cases):
    """Validation ``cases`` as test parameters, each with a listed ``miss`` a strict xfail giving it as the reason."""
    return [pytest.param(c, marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=c.miss)) if c.miss else c
            for c in cases]
