"""Rerun every ``$ wideep ...`` example of README.md and docs/*.md and write its real output back.

    python tools/refresh_examples.py           # rewrite the files in place
    python tools/refresh_examples.py --check   # exit 1 if any example's output changed

Each example is a fenced block whose first line is ``$ wideep <args>``; the lines after it are the output.
Commands run in a scratch folder (files they write do not land in the repository). tests/test_readme.py
compares the same blocks on every test run.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```\n(\$ wideep [^\n]*)\n(.*?)```", flags=re.S)


def run(command: str, cwd: str) -> str:
    args = shlex.split(command)[1:]
    wideep = Path(sys.executable).parent / "wideep"
    result = subprocess.run([str(wideep), *args], capture_output=True, text=True, cwd=cwd)
    return (result.stdout + result.stderr).rstrip("\n")


def refresh(text: str, cwd: str) -> str:
    return BLOCK.sub(lambda m: f"```\n{m.group(1)}\n{run(m.group(1)[2:], cwd)}\n```", text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    check = ap.parse_args().check
    changed = []
    with tempfile.TemporaryDirectory() as cwd:
        for path in FILES:
            old = path.read_text()
            new = refresh(old, cwd)
            if new != old:
                changed.append(path.name)
                if not check:
                    path.write_text(new)
    print(("changed: " if changed else "unchanged") + ", ".join(changed))
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
