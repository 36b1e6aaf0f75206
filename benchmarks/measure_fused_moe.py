"""Time the fused MoE kernel section of ``wideep calibrate`` alone on this GPU (torch, Triton, CUDA).

    python benchmarks/measure_fused_moe.py --out fused.json [--model M ...] [--shapes routed_experts.down/tp8 ...]
        [--experts 64 ...] [--dtypes fp8]

Each model's routed-expert shapes are timed at its own experts and top-k (a shape an earlier model of the
list has is not timed again). Writes {"stamp": ..., "fused": [...]} (the file rewritten after each shape, so
a run cut short keeps what it timed); docs/calibration.md says which raw record holds the shipped rows.
"""

from __future__ import annotations

import argparse
import json
import time

from wideep.calibrate.measure import Timer, measure_fused_section, stamp
from wideep.perf.kernels import CALIBRATED_TP, gemm_shapes
from wideep.specs.model import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["deepseek-v3"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", nargs="*", help="routed-expert shape names (default: all)")
    ap.add_argument("--experts", nargs="*", type=int, default=[], help="local expert counts (default: the module's)")
    ap.add_argument("--dtypes", nargs="+", default=["bf16", "fp8"], choices=["bf16", "fp8"])
    args = ap.parse_args()
    import torch

    t0 = time.time()
    record, done = {"stamp": stamp(torch), "fused": []}, set()
    for model in map(load_model, args.model):
        for shape in gemm_shapes(model, CALIBRATED_TP):
            if not shape.per_expert or (args.shapes and shape.name not in args.shapes) or (shape.n, shape.k) in done:
                continue
            done.add((shape.n, shape.k))
            record["fused"] += measure_fused_section(
                torch, Timer(torch), [shape], model.n_experts, model.top_k,
                lambda line: print(f"{time.time() - t0:7.1f}s {model.name} {line}", flush=True),
                tuple(args.experts), tuple(args.dtypes))
            with open(args.out, "w") as fh:
                json.dump(record, fh, indent=1)
    print(f"{len(record['fused'])} rows in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
