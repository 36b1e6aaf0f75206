"""FP8 GEMMs scaled per tensor, row-wise, and in DeepSeek's blocks (1x128 activations, 128x128 weights), measured
with cuBLAS through PyTorch on the GPU it runs on (needs a CUDA GPU and torch >= 2.10).

The shipped H200 calibration times fp8 GEMMs row-wise (``torch._scaled_mm``, a scale per token and per output
channel; wideep/calibrate/measure.py); the engines run DeepSeek's checkpoints block-scaled (DeepGEMM in SGLang
and vLLM, CUTLASS in TensorRT-LLM). This measures what the scaling costs on cuBLAS at DeepSeek-V3's shapes,
from decode (m = 8) to prefill (m = 8,192) sizes, timed as ``wideep calibrate`` times: calls replayed in a CUDA
graph, the weights rotated over copies past L2.

Run on the GPU:  PYTHONPATH=. python benchmarks/fp8_block_scaling.py [--out FILE.json]
                 python benchmarks/fp8_block_scaling.py --report FILE.json   (the table, no GPU)
"""

from __future__ import annotations

import math

from cuda_timing import main, time_us

SHAPES = ((2112, 7168), (24576, 1536), (7168, 16384), (4096, 7168), (7168, 2048))  # (n, k): fused_a .. shared down
TOKENS = (8, 64, 512, 2048, 8192)


def timings(m: int, n: int, k: int) -> dict:
    """{scaling: us} of one m x n x k fp8 GEMM with a bf16 output, per tensor, row-wise and block-scaled, each
    timed on weight copies rotated past L2."""
    import torch
    from torch.nn.functional import ScalingType, scaled_mm

    from wideep.calibrate.measure import copies_for

    a = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
    ws = [torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn) for _ in range(copies_for(n * k))]
    one = torch.ones((), device="cuda")
    rows, cols = torch.ones(m, 1, device="cuda"), torch.ones(1, n, device="cuda")
    groups = torch.ones(k // 128, m, device="cuda").t()  # 1 x 128 groups along k, m-major
    blocks = torch.ones(math.ceil(n / 128), k // 128, device="cuda").t()  # 128 x 128 weight blocks
    bf = torch.bfloat16
    return {"per_tensor": time_us([lambda w=w: torch._scaled_mm(a, w.t(), scale_a=one, scale_b=one, out_dtype=bf)
                                   for w in ws]),
            "row_wise": time_us([lambda w=w: torch._scaled_mm(a, w.t(), scale_a=rows, scale_b=cols, out_dtype=bf)
                                 for w in ws]),
            "block": time_us([lambda w=w: scaled_mm(a, w.t(), groups, ScalingType.BlockWise1x128, blocks,
                                                    ScalingType.BlockWise128x128, output_dtype=bf) for w in ws])}


def measure() -> dict:
    import torch

    rows = [{"m": m, "n": n, "k": k, "us": timings(m, n, k)} for n, k in SHAPES for m in TOKENS]
    return {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": rows}


def report(data: dict) -> str:
    lines = [f"{data['device']}, torch {data['torch']}", "",
             "| m | n | k | per-tensor us | row-wise us | block-scaled us | block / row-wise |", "|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        us = r["us"]
        lines.append(f"| {r['m']} | {r['n']} | {r['k']} | {us['per_tensor']:.1f} | {us['row_wise']:.1f} | "
                     f"{us['block']:.1f} | {us['block'] / us['row_wise']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(__doc__, measure, report)
