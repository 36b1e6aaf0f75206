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


def test_progress_bar_reaches_the_end():
    import io

    from wideep.core import progress
    from wideep.specs.model import load_model
    from wideep.routing.stats import synthetic_routing

    stream = io.StringIO()
    previous = progress.listen(progress.terminal_bar(stream, after_s=0.0, width=10))
    try:
        synthetic_routing(load_model("mixtral-8x7b"), "uniform", 64, layers=4)
    finally:
        progress.listen(previous)
    assert stream.getvalue().endswith("routing uniform, 64 tokens [##########] 4/4\n")


def test_json_output_has_no_progress_bar():
    """Progress goes to a terminal's stderr only: piped output stays clean."""
    r = run_cli("a2a", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--ep", "8", "--tokens", "64", "--json")
    assert r.returncode == 0 and r.stderr == ""


def test_written_files_follow_the_umask(tmp_path):
    """Files wideep writes are readable by others when the umask allows it (not mkstemp's 0600)."""
    import os

    from wideep.core.fileio import write_text_atomic
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "placement.json", "{}", "--out")
    finally:
        os.umask(old)
    assert (tmp_path / "placement.json").stat().st_mode & 0o777 == 0o644


def test_a_symlink_is_written_through_and_kept(tmp_path):
    from wideep.core.fileio import write_text_atomic

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "report.csv").write_text("old\n")
    (tmp_path / "report.csv").symlink_to("real/report.csv")
    write_text_atomic(tmp_path / "report.csv", "new\n", "--csv")
    assert (tmp_path / "report.csv").is_symlink()
    assert (tmp_path / "real" / "report.csv").read_text() == "new\n"


def test_a_pipe_is_written_into_not_replaced(tmp_path):
    """A FIFO (as /dev/stdout can be) cannot be replaced by a file: the CSV goes into it."""
    import os
    import stat
    import threading

    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    r = run_cli("compare", "--topology", "hgx-h100", "--batch", "32", "--csv", str(fifo))
    reader.join(timeout=60)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert got and got[0].startswith("system,gpu,gpus,")
