"""Time of `wideep search` for one model over the seven catalog systems, both serving modes.

    python benchmarks/bench_search.py [--model deepseek-v3] [--gpus N]

Prints wall and CPU seconds (CPU time, this process's and its search workers', is what a loaded machine does
not distort) and the candidates planned. ``--workers 1`` searches in this process. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time

from wideep.core.catalog import list_ids
from wideep.plan import PlanSpec
from wideep.plan.search import Targets, search


def cpu_s() -> float:
    """CPU seconds of this process and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="deepseek-v3")
    ap.add_argument("--gpus", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="search processes (default: one per CPU core)")
    args = ap.parse_args()
    systems = list_ids("systems")
    wall, cpu = time.perf_counter(), cpu_s()
    result = search(PlanSpec(model=args.model), systems, Targets(), "both", args.gpus, workers=args.workers)
    wall, cpu = time.perf_counter() - wall, cpu_s() - cpu
    points = sum(r["candidates"] for r in result.values())
    print(f"search {args.model} over {len(systems)} systems, both modes: {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"{points:,} feasible points")


if __name__ == "__main__":
    main()
