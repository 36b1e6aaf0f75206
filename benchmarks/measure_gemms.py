"""Time the GEMM section of ``wideep calibrate`` alone on this GPU (torch, CUDA), for several models' shapes.

    python benchmarks/measure_gemms.py --out gemms.json --model qwen3-235b-a22b glm-4.5 ...

Each model's weight shapes (whole and one rank's slices under tensor parallelism 2, 4, 8) are timed in bf16 and
fp8 at ``wideep calibrate``'s m values; a shape (n, k) an earlier model of the list has, or one in ``--skip``
(raw records), is not timed again. Writes {"stamp": ..., "gemm": [...]}, rewritten after each model.
"""

from __future__ import annotations

import argparse
import json
import time

from wideep.calibrate.measure import Timer, measure_gemms, stamp
from wideep.perf.kernels import CALIBRATED_TP, gemm_shapes
from wideep.specs.model import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip", nargs="*", default=[], help="raw records whose gemm rows' shapes are not timed again")
    args = ap.parse_args()
    import torch

    done = set()
    for path in args.skip:
        with open(path) as fh:
            done |= {(r["n"], r["k"]) for r in json.load(fh)["gemm"]}
    t0 = time.time()
    record = {"stamp": stamp(torch), "gemm": []}
    for model in map(load_model, args.model):
        shapes = [s for s in gemm_shapes(model, CALIBRATED_TP) if not s.per_expert and (s.n, s.k) not in done]
        done |= {(s.n, s.k) for s in shapes}
        rows = measure_gemms(torch, Timer(torch), shapes, lambda line: print(f"{time.time() - t0:7.1f}s {line}",
                                                                              flush=True))
        record["gemm"] += [r | {"model": model.id} for r in rows]
        with open(args.out, "w") as fh:
            json.dump(record, fh, indent=1)
    print(f"{len(record['gemm'])} rows in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
