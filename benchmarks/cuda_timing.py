"""What the GPU measurement scripts share (benchmarks/sm_carveout.py, benchmarks/fp8_block_scaling.py): CUDA-graph
timing, and a command line that measures (``--out FILE.json``) or prints a saved measurement (``--report FILE``,
no GPU needed)."""

from __future__ import annotations

import argparse
import json
from typing import Callable


def time_us(calls: list[Callable[[], object]]) -> float:
    """Median us per call of ``calls`` run in turn inside one captured CUDA graph (``wideep calibrate``'s
    timer): no host launch time, and weights rotated over copies (one per call) so that L2 does not hold them."""
    import torch

    from wideep.calibrate.measure import Timer

    return Timer(torch).graph(calls) * 1e6


def main(doc: str, measure: Callable[[], dict], report: Callable[[dict], str]) -> None:
    """Measure and print ``report`` of it (``--out``: also save the JSON), or print a saved one (``--report``)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0].replace("\n", " "))
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
