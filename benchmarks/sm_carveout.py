"""Compute beside communication kernels, measured: GEMM time with SMs held back from cuBLAS (needs a CUDA GPU).

wideep slows the compute that overlaps DeepEP's normal kernels by SMs / (SMs - 20) (``sm_slowdown`` in
wideep/perf/step.py: 1.18x on a 132-SM H200). This measures what holding SMs back does to the prefill GEMMs of
DeepSeek-V3 at 8,192 tokens per GPU (attention projections, shared expert, and one EP32 rank's 9 local experts
at 228 tokens each as a batched GEMM), bf16 and fp8 (per-tensor scales), with cuBLAS told to leave 0, 20, 24
and 32 SMs free (``torch._C._set_sm_carveout_experimental``; DeepEP's kernels hold 20-24). Wave quantisation
can make the real factor larger or smaller than the SM ratio; this is the check. Timed as ``wideep calibrate``
times: calls replayed in a CUDA graph, the weights rotated over copies past L2.

Run on the GPU:  PYTHONPATH=. python benchmarks/sm_carveout.py [--out FILE.json]
                 python benchmarks/sm_carveout.py --report FILE.json   (the table, no GPU)
"""

from __future__ import annotations

from cuda_timing import main, time_us

TOKENS = 8192
SHAPES = {  # name -> (batch, m, n, k): DeepSeek-V3 prefill GEMMs of one GPU (EP32, 8,192 tokens)
    "fused_a (q_a + kv_a)": (1, TOKENS, 2112, 7168), "q_b": (1, TOKENS, 24576, 1536),
    "o_proj": (1, TOKENS, 7168, 16384), "shared gate_up": (1, TOKENS, 4096, 7168),
    "shared down": (1, TOKENS, 7168, 2048), "experts gate_up (9 x 228)": (9, 228, 4096, 7168),
    "experts down (9 x 228)": (9, 228, 7168, 2048)}
CARVEOUTS = (0, 20, 24, 32)


def gemm_calls(batch: int, m: int, n: int, k: int, dtype: str) -> list:
    """Calls of one GEMM (batched when ``batch`` > 1) of the given shape and dtype on GPU 0, each on its own copy
    of the weights (rotated past L2)."""
    import torch

    from wideep.calibrate.measure import copies_for

    a = torch.randn(batch, m, k, device="cuda", dtype=torch.bfloat16)
    ws = [torch.randn(batch, n, k, device="cuda", dtype=torch.bfloat16)
          for _ in range(copies_for(batch * n * k * (2 if dtype == "bf16" else 1)))]
    if dtype == "bf16":
        return [lambda w=w: torch.matmul(a, w.transpose(1, 2)) for w in ws]
    a8, one = a.to(torch.float8_e4m3fn), torch.ones((), device="cuda")
    return [lambda w8=w.to(torch.float8_e4m3fn): [torch._scaled_mm(a8[i], w8[i].t(), scale_a=one, scale_b=one,
                                                                   out_dtype=torch.bfloat16) for i in range(batch)]
            for w in ws]


def measure() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    set_carveout = getattr(torch._C, "_set_sm_carveout_experimental", None)
    out = {"device": props.name, "sms": props.multi_processor_count, "torch": torch.__version__,
           "carveout_api": set_carveout is not None, "rows": []}
    if set_carveout is None:
        return out
    for name, shape in SHAPES.items():
        for dtype in ("bf16", "fp8"):
            calls = gemm_calls(*shape, dtype)
            times = {}
            for c in CARVEOUTS:
                set_carveout(c or None)
                times[c] = time_us(calls)
            set_carveout(None)
            out["rows"].append({"gemm": name, "dtype": dtype, "us": times})
    return out


def report(data: dict) -> str:
    """Markdown: each GEMM's time with 0 SMs held and its slowdown with 20, 24 and 32 held, against the SM ratio."""
    sms = data["sms"]
    head = f"{data['device']} ({sms} SMs), torch {data['torch']}"
    if not data["carveout_api"]:
        return head + ": this torch has no cuBLAS SM carve-out; nothing measured"
    lines = [head, "", "| GEMM | dtype | us (all SMs) | " + " | ".join(f"x with {c} held" for c in CARVEOUTS[1:]) + " |",
             "|---|---|---|" + "---|" * (len(CARVEOUTS) - 1),
             "| SM ratio | | | " + " | ".join(f"{sms / (sms - c):.3f}" for c in CARVEOUTS[1:]) + " |"]
    for r in data["rows"]:
        us = {int(c): t for c, t in r["us"].items()}
        lines.append(f"| {r['gemm']} | {r['dtype']} | {us[0]:.1f} | "
                     + " | ".join(f"{us[c] / us[0]:.3f}" for c in CARVEOUTS[1:]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(__doc__, measure, report)
