"""The folder tree is the architecture: every import of a wideep module points down the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wideep"

# Layer of each top-level module or subpackage; an import must go to a strictly lower layer or stay
# inside its own subpackage. Siblings of equal rank (traffic, perf) never import each other.
RANK = {"core": 0, "specs": 1, "routing": 2, "slots": 3, "traffic": 4, "perf": 4, "placement": 5,
        "calibrate": 5, "plan": 6, "report": 7, "testing": 8, "cli": 8, "__main__": 9, "__init__": 0}


def unit_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def wideep_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "wideep":
            parts = node.module.split(".")
            names += [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name.split(".")[1] for a in node.names if a.name.startswith("wideep.")]
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "_catalog" not in p.parts)


def test_every_unit_has_a_rank():
    assert {unit_of(p) for p in MODULES} <= set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    unit = unit_of(path)
    for target in wideep_imports(path):
        if target in ("__version__",) or target == unit:
            continue
        assert RANK[target] < RANK[unit], f"{unit} (layer {RANK[unit]}) imports {target} (layer {RANK[target]})"
