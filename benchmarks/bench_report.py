"""HTML report benchmark: the page for all seven catalog systems, its size, and how fast a browser draws it.

Searches DeepSeek-R1 at ISL/OSL 1024/1024 on every catalog system (as ``wideep search --topology ... --html``
does; the search itself is timed apart), builds the page, and loads it in headless Chromium when installed:
the render time is the wall time to load, lay out and screenshot the page minus the same for an empty page,
median of five. ``--page`` times an existing page instead of searching. Targets (issue 12): under 2 MB, under 2 s in the browser.

Run: python benchmarks/bench_report.py [--gpus N] [--out FILE] [--page FILE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from wideep.core.catalog import list_ids
from wideep.plan import PlanSpec
from wideep.plan.search import Targets, cost_ratio, search
from wideep.report.pages import search_page

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def load_s(chromium: str, page: Path, profile: Path) -> float:
    """Wall seconds for Chromium to start, load and lay out ``page``, and take a screenshot of it."""
    t = time.perf_counter()
    subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={profile}.png",
                    "--window-size=1200,2000", page.as_uri()], capture_output=True, timeout=120, check=True)
    return time.perf_counter() - t


def render_s(chromium: str, page: Path, tmp: Path, repeats: int = 5) -> float:
    """Median seconds of loading ``page`` minus those of an empty page (browser start-up left out)."""
    empty = tmp / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>")
    full = [load_s(chromium, page, tmp / f"p{i}") for i in range(repeats)]
    base = [load_s(chromium, empty, tmp / f"e{i}") for i in range(repeats)]
    return statistics.median(full) - statistics.median(base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=None, help="At most this many GPUs per EP group (default: all).")
    ap.add_argument("--out", default=None, help="Keep the page here (default: a temporary file).")
    ap.add_argument("--page", default=None, help="Only time the browser on this page.")
    args = ap.parse_args()
    if args.page:
        with tempfile.TemporaryDirectory() as tmp:
            page = Path(args.page)
            print(f"{page}: {page.stat().st_size / 1e6:.2f} MB; browser render "
                  f"{render_s(shutil.which('chromium'), page, Path(tmp)):.2f} s")
        return
    systems = list_ids("systems")
    spec = PlanSpec(model="deepseek-r1", isl=1024, osl=1024)
    t = time.perf_counter()
    result = search(spec, systems, Targets(), "both", args.gpus)
    search_s = time.perf_counter() - t
    t = time.perf_counter()
    html = search_page(result, cost_ratio(result), spec, Targets(), "benchmarks/bench_report.py")
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        page = Path(args.out) if args.out else tmp / "report.html"
        page.write_text(html)
        size = page.stat().st_size
        chromium = shutil.which("chromium")
        browser = f"{render_s(chromium, page, tmp):.2f} s" if chromium else "not measured (no chromium)"
    print(f"{len(systems)} systems ({', '.join(systems)}), deepseek-r1 ISL/OSL 1024/1024")
    print(f"search {search_s:.1f} s; page build {build_s:.2f} s; page {size / 1e6:.2f} MB (target < 2 MB); "
          f"browser render {browser} (target < 2 s)")


if __name__ == "__main__":
    main()
