"""Time the fused MoE kernel section of ``wideep calibrate`` alone on this GPU (torch, Triton, CUDA).

    python benchmarks/measure_fused_moe.py --out fused.json [--shapes routed_experts.down/tp8 ...] [--experts 64 ...]

Writes {"stamp": ..., "fused": [...]} (the file rewritten after each shape, so a run cut short keeps what it
timed); docs/calibration.md says which raw record holds the shipped rows.
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
    ap.add_argument("--model", default="deepseek-v3")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", nargs="*", help="routed-expert shape names (default: all)")
    ap.add_argument("--experts", nargs="*", type=int, default=[], help="local expert counts (default: the module's)")
    args = ap.parse_args()
    import torch

    model = load_model(args.model)
    t0 = time.time()
    record = {"stamp": stamp(torch)}
    record["fused"] = []
    for shape in gemm_shapes(model, CALIBRATED_TP):
        if shape.per_expert and (not args.shapes or shape.name in args.shapes):
            record["fused"] += measure_fused_section(torch, Timer(torch), [shape], model.n_experts, model.top_k,
                                                     lambda line: print(f"{time.time() - t0:7.1f}s {line}", flush=True),
                                                     tuple(args.experts))
            with open(args.out, "w") as fh:
                json.dump(record, fh, indent=1)
    print(f"{len(record['fused'])} rows in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
