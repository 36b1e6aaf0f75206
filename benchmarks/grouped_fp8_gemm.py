"""A library fp8 grouped GEMM at the expert layouts behind DeepEP, beside SGLang's DeepGEMM rows and wideep's file.

Behind DeepEP low-latency a rank's experts are one grouped GEMM pair over a layout the dispatch kernel wrote
(SGLang: DeepGEMM's masked kernels). DeepGEMM is not on the lent GPUs, so this times PyTorch's own fp8 grouped
GEMM (``torch._scaled_grouped_mm``: CUTLASS, row-wise scales; rows padded to 16 a group) at DeepSeek-V3's expert
shapes (gate+up 4,096 x 7,168 and down 7,168 x 2,048), G local experts of m rows each, weights rotated past L2,
in a CUDA graph; the SiLU-mul between the GEMMs is not timed. Each point is a row of
benchmarks/data/aic_sglang_deepep_moe.csv: EP = 256 / G, tokens a rank = m x G / 8 (AIC's uniform pattern).
The report sets the three side by side: this kernel, SGLang's DeepGEMM pair (+ its SiLU-mul and quantisation)
and wideep's routed experts on the GPU's file (H200: the Triton fused MoE measured on the device; H100: DeepGEMM's
published figures).

Run (GPU):  python benchmarks/grouped_fp8_gemm.py --out grouped.json
     (CPU): python benchmarks/grouped_fp8_gemm.py --report benchmarks/data/h100_grouped_fp8_gemm.json
"""

from __future__ import annotations

import math

from cuda_timing import main, time_us

SHAPES = {"gate_up": (4096, 7168), "down": (7168, 2048)}  # (n, k) of one DeepSeek-V3 expert
LOCAL_EXPERTS = (1, 2, 4, 8, 16, 32)
TOKENS_PER_RANK = (1, 2, 4, 8, 16, 32, 64, 128)
ALIGN = 16  # rows per group the grouped kernel needs
ROTATE_BYTES = 512e6  # weights rotated over at least this many bytes


def points() -> list[tuple[int, int]]:
    """(local experts G, rows per expert m) with at least one row per expert."""
    return [(g, 8 * t // g) for g in LOCAL_EXPERTS for t in TOKENS_PER_RANK if 8 * t >= g and 8 * t % g == 0]


def check(torch) -> float:
    """Relative error of one grouped product (3 experts of 32 rows) against float32 on the same fp8 inputs."""
    g, rows, n, k, fp8 = 3, 32, 256, 512, torch.float8_e4m3fn
    a, w = torch.randn(g * rows, k, device="cuda").to(fp8), torch.randn(g, n, k, device="cuda").to(fp8).transpose(1, 2)
    sa, sb = torch.rand(g * rows, device="cuda") + 0.5, torch.rand(g, n, device="cuda") + 0.5
    offs = torch.arange(1, g + 1, device="cuda", dtype=torch.int32) * rows
    got = torch._scaled_grouped_mm(a, w, sa, sb, offs=offs, out_dtype=torch.bfloat16).float()
    ref = torch.cat([(a[i * rows:(i + 1) * rows].float() * sa[i * rows:(i + 1) * rows, None]) @ (w[i].float() * sb[i])
                     for i in range(g)])
    return float((got - ref).norm() / ref.norm())


def measure() -> dict:
    import torch

    fp8, dev = torch.float8_e4m3fn, "cuda"
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "check_rel_error": check(torch),
           "points": []}
    print(f"check: relative error {out['check_rel_error']:.2e}", flush=True)
    assert out["check_rel_error"] < 1e-2, out["check_rel_error"]
    for g, m in points():
        rows = max(ALIGN, math.ceil(m / ALIGN) * ALIGN)
        offs = torch.arange(1, g + 1, device=dev, dtype=torch.int32) * rows
        total_us = 0.0
        for n, k in SHAPES.values():
            copies = max(2, min(8, math.ceil(ROTATE_BYTES / (g * n * k))))
            a = (torch.randn(g * rows, k, device=dev) * 0.5).to(fp8)
            scale_a = torch.rand(g * rows, device=dev) + 0.5
            weights = [((torch.randn(g, n, k, device=dev) * 0.5).to(fp8).transpose(1, 2),
                        torch.rand(g, n, device=dev) + 0.5) for _ in range(copies)]
            calls = [lambda w=w, s=s: torch._scaled_grouped_mm(a, w, scale_a, s, offs=offs, out_dtype=torch.bfloat16)
                     for w, s in weights]
            total_us += time_us(calls)
            del weights, calls
        out["points"].append({"experts": g, "rows_per_expert": m, "padded_rows": rows, "us": round(total_us, 2)})
        print(f"G={g:3d} m={m:5d}: {total_us:8.1f} us", flush=True)
    return out


def report(data: dict) -> str:
    from sglang_moe_validation import predict_us, rows

    from wideep.report.tables import markdown_table

    gpu = "h100-sxm" if "H100" in data["gpu"] else "h200-sxm"
    sglang = {(int(r["moe_ep_size"]), int(r["num_tokens"]) // int(r["moe_ep_size"])): 1e3 * float(r["latency"])
              for r in rows(gpu)}
    out = []
    for p in data["points"]:
        g, m = p["experts"], p["rows_per_expert"]
        ep, per_rank = 256 // g, m * g // 8
        deepgemm = sglang.get((ep, per_rank))
        wideep = predict_us(gpu, ep, per_rank)
        out.append([g, m, ep, per_rank, p["us"], round(deepgemm, 1) if deepgemm else "-", round(wideep, 1)])
    head = ["local experts", "rows each", "EP", "tokens a rank", "torch grouped fp8 us", "SGLang DeepGEMM us",
            f"wideep {gpu} file us"]
    return f"{data['gpu']}, torch {data['torch']}\n\n" + markdown_table(head, out)


if __name__ == "__main__":
    main(__doc__, measure, report)
