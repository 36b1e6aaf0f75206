"""Files the CLI writes: the SVG picture, and nothing half-written when a write fails."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conftest import run_cli


def test_compare_svg_draws_one_line_per_system(tmp_path):
    path = tmp_path / "curves.svg"
    r = run_cli("compare", "--topology", "hgx-h100", "--topology", "gb200-nvl72", "--svg", str(path))
    assert r.returncode == 0, r.stderr
    root = ET.parse(path).getroot()
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "hgx-h100" in labels and "gb200-nvl72" in labels


def test_unwritable_output_is_one_line_and_leaves_nothing(tmp_path):
    missing = tmp_path / "no-such-dir" / "report.csv"
    r = run_cli("compare", "--topology", "hgx-h100", "--csv", str(missing))
    assert r.returncode == 2 and "--csv" in r.stderr and "Traceback" not in r.stderr
    assert not missing.parent.exists()


def test_failed_run_writes_no_file(tmp_path):
    """Bad input is found before anything is written."""
    out = tmp_path / "placement.json"
    r = run_cli("place", "--model", "deepseek-v3", "--topology", "hgx-h100", "--gpus", "32", "--redundant", "31",
                "--routing", "uniform", "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert list(tmp_path.iterdir()) == []
