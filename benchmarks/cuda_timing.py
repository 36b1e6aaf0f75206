"""What the GPU measurement scripts share (benchmarks/sm_carveout.py, benchmarks/fp8_block_scaling.py): CUDA-event
timing, and a command line that measures (``--out FILE.json``) or prints a saved measurement (``--report FILE``,
no GPU needed)."""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Callable


def time_us(fn: Callable[[], object], repeats: int = 5, iters: int = 30) -> float:
    """Median over ``repeats`` of the mean time of ``iters`` back-to-back calls of ``fn``, us (CUDA events)."""
    import torch

    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) * 1e3 / iters)
    return statistics.median(samples)


def main(doc: str, measure: Callable[[], dict], report: Callable[[dict], str]) -> None:
    """Measure and print ``report`` of it (``--out``: also save the JSON), or print a saved one (``--report``)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", help="write the measurements as JSON")
    ap.add_argument("--report", help="print the table of a JSON written by --out (no GPU needed)")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as fh:
            print(report(json.load(fh)))
        return
    data = measure()
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(data, fh, indent=1)
    print(report(data))
