#!/usr/bin/env python3
"""Measure the calibration figures of wideep's performance model on one NVIDIA GPU.

Standalone: it needs PyTorch with CUDA, which is *not* a wideep dependency, and it
imports nothing from wideep. It prints a TOML document (the format of
``topologies/calibration/<gpu>.toml``) to stdout and progress to stderr.

What it measures (CUDA events, warm-up, median of repeats; every input random,
never zeros):

1. HBM bandwidth: a device-to-device copy of a 4 GiB buffer (bytes read + bytes
   written per second) and a read-only ``sum`` of a 4 GiB bf16 tensor.
2. Dense GEMM 8192 x 8192 x 8192 in bf16 (``torch.matmul``) and, if
   ``torch._scaled_mm`` works, in fp8 e4m3 with per-tensor scales. The figure
   written is sustained (CUDA-graph replays of back-to-back products, as a busy
   server runs them, clocks held down by the power cap); a short burst after a
   pause (3 warm-ups, mean of 10 products) is reported as a comment.
3. Expert-GEMM efficiency versus tokens per expert m, for DeepSeek-V3 expert shapes
   (hidden 7168, expert FFN 2048): up/gate [m x 7168] x [7168 x 4096] and down
   [m x 2048] x [2048 x 7168], for 8 experts at once. bf16 through ``torch.bmm``
   (one batched call; this is the figure written to the data file), bf16 through a
   loop of 8 ``torch.mm`` and ``torch._grouped_mm`` (reported as comments), fp8
   through a loop of 8 ``torch._scaled_mm`` (there is no batched ``_scaled_mm``).
   Each call sequence is captured in a CUDA graph and the graph replays are timed,
   so the Python launch cost stays out of the numbers.
   efficiency = roofline_time / achieved_time, with
   roofline_time = max(FLOPs / peak FLOP/s, bytes / peak HBM B/s) and bytes =
   weights + activations in + activations out, each moved once. The value written
   for each m combines the two GEMMs: (roofline_up + roofline_down) /
   (achieved_up + achieved_down).

Peaks are the datasheet figures, read from ``topologies/gpus/<gpu>.toml``
(bf16_TFLOPs, fp8_TFLOPs, hbm_TBps) when that file exists, else from the flags.

Usage::

    python benchmarks/gpu_calibrate.py --gpu h200-sxm > topologies/calibration/h200-sxm-pytorch.toml
    python benchmarks/gpu_calibrate.py --gpu h100-sxm -o topologies/calibration/h100-sxm.toml
    python benchmarks/gpu_calibrate.py --gpu my-gpu --bf16-tflops 989 --fp8-tflops 1979 --hbm-tbps 3.35

Exits with status 1 and a one-line message when PyTorch or a CUDA device is missing.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import pathlib
import statistics
import subprocess
import sys
import time

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    tomllib = None

TOKENS_PER_EXPERT = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
N_EXPERTS = 8
HIDDEN = 7168  # DeepSeek-V3 hidden_size
EXPERT_FFN = 2048  # DeepSeek-V3 moe_intermediate_size; up/gate fused -> 2 x 2048
GIB = 2**30
BYTES = {"bf16": 2, "fp8": 1}

ROOT = pathlib.Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- model


def gemm_flops(m: int, k: int, n: int, batch: int = 1) -> float:
    """FLOPs of ``batch`` products [m x k] x [k x n] (2 per multiply-add)."""
    return 2.0 * m * k * n * batch


def gemm_bytes(m: int, k: int, n: int, batch: int, in_bytes: int, out_bytes: int) -> float:
    """Fewest HBM bytes: weights [k x n] and input [m x k] read once, output [m x n] written once."""
    return float(batch) * ((k * n + m * k) * in_bytes + m * n * out_bytes)


def roofline_s(flops: float, nbytes: float, peak_flops: float, peak_Bps: float) -> float:
    """Roofline time: the larger of the compute time and the memory time at datasheet peaks."""
    return max(flops / peak_flops, nbytes / peak_Bps)


# --------------------------------------------------------------------------- peaks


def load_peaks(args: argparse.Namespace) -> dict:
    """Datasheet peaks (FLOP/s, B/s): flags override the catalog file ``topologies/gpus/<gpu>.toml``."""
    peaks = {"bf16_TFLOPs": None, "fp8_TFLOPs": None, "hbm_TBps": None, "source": "flags"}
    path = ROOT / "topologies" / "gpus" / f"{args.gpu}.toml"
    if tomllib is not None and path.is_file():
        with path.open("rb") as fh:
            spec = tomllib.load(fh)
        for key in ("bf16_TFLOPs", "fp8_TFLOPs", "hbm_TBps"):
            peaks[key] = spec.get(key)
        peaks["source"] = f"topologies/gpus/{args.gpu}.toml"
    for key, flag in (("bf16_TFLOPs", args.bf16_tflops), ("fp8_TFLOPs", args.fp8_tflops),
                      ("hbm_TBps", args.hbm_tbps)):
        if flag is not None:
            peaks[key] = flag
            peaks["source"] = "flags" if peaks["source"] == "flags" else peaks["source"] + " + flags"
    missing = [k for k in ("bf16_TFLOPs", "hbm_TBps") if not peaks[k]]
    if missing:
        sys.exit(f"gpu_calibrate: no datasheet peak for {', '.join(missing)}: no file {path} "
                 "and no --bf16-tflops/--hbm-tbps flag")
    return peaks


# --------------------------------------------------------------------------- timing


class Bench:
    """Timing helpers over one CUDA device (``torch`` imported by the caller)."""

    def __init__(self, torch, repeats: int, warmup: int):
        self.torch = torch
        self.repeats = repeats
        self.warmup = warmup

    def eager(self, fn, inner: int = 1) -> float:
        """Median seconds of one ``fn()``: events around ``inner`` back-to-back calls, ``repeats`` times."""
        torch = self.torch
        for _ in range(self.warmup):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(self.repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e-3 / inner)
        return statistics.median(times)

    def graph(self, fn, inner: int | None = None) -> tuple[float, str]:
        """Median seconds of one ``fn()`` from replays of a CUDA graph of ``inner`` calls.

        Falls back to eager timing if capture fails. Returns (seconds, method).
        """
        torch = self.torch
        for _ in range(self.warmup):
            fn()
        torch.cuda.synchronize()
        if inner is None:  # aim at ~2 ms of work per replay
            t1 = self.eager(fn, inner=1)
            inner = int(min(64, max(4, 2e-3 / max(t1, 1e-7))))
        try:
            g = torch.cuda.CUDAGraph()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                fn()  # warm the side stream (cuBLAS handles, workspaces)
            torch.cuda.current_stream().wait_stream(side)
            torch.cuda.synchronize()
            with torch.cuda.graph(g):
                for _ in range(inner):
                    fn()
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001 - any capture failure -> eager timing
            log(f"  graph capture failed ({type(exc).__name__}: {exc}); timing eagerly")
            return self.eager(fn, inner=inner), "eager"
        return self.eager(g.replay, inner=1) / inner, "graph"


def rel_err(torch, out, ref) -> float:
    out, ref = out.double(), ref.double()
    return float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref))


# --------------------------------------------------------------------------- measurements


def measure_hbm(torch, bench: Bench, size_bytes: int) -> dict:
    n = size_bytes // 2
    src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    t_copy = bench.eager(lambda: dst.copy_(src), inner=1)
    assert torch.equal(dst[:: 1 << 20], src[:: 1 << 20]), "copy check failed"
    t_sum = bench.eager(lambda: src.sum(), inner=1)
    del src, dst
    torch.cuda.empty_cache()
    return {"copy_s": t_copy, "copy_Bps": 2 * size_bytes / t_copy,
            "sum_s": t_sum, "sum_Bps": size_bytes / t_sum}


def fp8_quant(torch, x):
    """Per-tensor e4m3 quantisation: returns (x_fp8, scale) with x ~= x_fp8 * scale."""
    fmax = torch.finfo(torch.float8_e4m3fn).max
    scale = (x.abs().amax().float() / fmax).clamp(min=1e-12)
    return (x.float() / scale).to(torch.float8_e4m3fn), scale.reshape(()).contiguous()


def scaled_mm(torch, a8, b8, sa, sb, out=None, fast_accum=False):
    res = torch._scaled_mm(a8, b8, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                           use_fast_accum=fast_accum, **({"out": out} if out is not None else {}))
    return res[0] if isinstance(res, tuple) else res


def measure_dense(torch, bench: Bench, n: int) -> dict:
    res = {}
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    flops = gemm_flops(n, n, n)
    # burst: after a 2 s pause, 3 warm-ups, then the mean of 10 single timed products (clocks still high)
    torch.cuda.synchronize()
    time.sleep(2.0)
    for _ in range(3):
        torch.matmul(a, b, out=c)
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(10)]
    for s0, s1 in ev:
        s0.record()
        torch.matmul(a, b, out=c)
        s1.record()
    torch.cuda.synchronize()
    res["bf16_burst_flops"] = flops / (statistics.mean(s0.elapsed_time(s1) for s0, s1 in ev) * 1e-3)
    # sustained: graph replays of 8 back-to-back products, median of the repeats (the figure written)
    t, _ = bench.graph(lambda: torch.matmul(a, b, out=c), inner=8)
    res["bf16_s"], res["bf16_flops"] = t, flops / t
    # correctness on a slice (fp32 reference of the first 256 rows)
    ref = a[:256].float() @ b.float()
    res["bf16_relerr"] = rel_err(torch, c[:256], ref)
    try:
        a8, sa = fp8_quant(torch, a)
        w8, sb = fp8_quant(torch, b.t().contiguous())  # [n_out, k] row-major -> .t() is column-major
        b8 = w8.t()
        out = scaled_mm(torch, a8, b8, sa, sb)
        res["fp8_relerr"] = rel_err(torch, out[:256], ref)
        for fast in (False, True):
            t, _ = bench.graph(lambda: scaled_mm(torch, a8, b8, sa, sb, fast_accum=fast), inner=8)
            res["fp8_fast_s" if fast else "fp8_s"] = t
        res["fp8_flops"] = flops / res["fp8_s"]
        res["fp8_fast_flops"] = flops / res["fp8_fast_s"]
    except Exception as exc:  # noqa: BLE001
        res["fp8_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        log(f"  fp8 dense GEMM failed: {res['fp8_error']}")
    del a, b, c
    torch.cuda.empty_cache()
    return res


def measure_experts(torch, bench: Bench, peaks: dict) -> dict:
    """Per-variant, per-m times of the up and down GEMMs of 8 DeepSeek-V3 experts."""
    E, H, F2, F = N_EXPERTS, HIDDEN, 2 * EXPERT_FFN, EXPERT_FFN
    dev, bf = "cuda", torch.bfloat16
    # weights in nn.Linear layout [experts, out, in]; .transpose(1, 2) is the column-major [in, out] operand
    w_up = (torch.randn(E, F2, H, device=dev, dtype=bf) * H**-0.5)
    w_dn = (torch.randn(E, H, F, device=dev, dtype=bf) * F**-0.5)
    shapes = {"up": (H, F2, w_up), "down": (F, H, w_dn)}
    fp8_ok = hasattr(torch, "_scaled_mm") and hasattr(torch, "float8_e4m3fn")
    w8 = {}
    if fp8_ok:
        for name, (_, _, w) in shapes.items():
            w8[name] = [fp8_quant(torch, w[e]) for e in range(E)]
    has_grouped = hasattr(torch, "_grouped_mm")
    variants = ["bf16_bmm", "bf16_loop"] + (["bf16_grouped"] if has_grouped else []) + (
        ["fp8_loop"] if fp8_ok else [])
    res = {v: {"up": {}, "down": {}, "method": {}, "relerr": {}, "note": {}} for v in variants}
    for m in TOKENS_PER_EXPERT:
        for name, (k, n, w) in shapes.items():
            x = torch.randn(E, m, k, device=dev, dtype=bf)
            out = torch.empty(E, m, n, device=dev, dtype=bf)
            wt = w.transpose(1, 2)
            ref = None
            if m in (1, 128):  # correctness checks against an fp32 product
                ref = torch.bmm(x.float(), wt.float())
            fns = {
                "bf16_bmm": lambda: torch.bmm(x, wt, out=out),
                "bf16_loop": lambda: [torch.mm(x[e], wt[e], out=out[e]) for e in range(E)],
            }
            if has_grouped:
                fns["bf16_grouped"] = lambda: torch._grouped_mm(x, wt, out_dtype=bf)
            if fp8_ok:
                xq = [fp8_quant(torch, x[e]) for e in range(E)]
                ws = w8[name]
                out8 = out
                try:  # cuBLASLt fp8 may want rows in multiples of 16: pad the tokens if so
                    scaled_mm(torch, xq[0][0], ws[0][0].t(), xq[0][1], ws[0][1])
                except Exception as exc:  # noqa: BLE001
                    mp = -(-m // 16) * 16
                    res["fp8_loop"]["note"][f"{name}@{m}"] = (
                        f"padded m {m} -> {mp} ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})")
                    xq = [(torch.nn.functional.pad(q.view(torch.uint8), (0, 0, 0, mp - m))
                           .view(torch.float8_e4m3fn), s) for q, s in xq]
                    out8 = torch.empty(E, mp, n, device=dev, dtype=bf)

                def fp8_loop(xq=xq, ws=ws, out8=out8):
                    for e in range(E):
                        scaled_mm(torch, xq[e][0], ws[e][0].t(), xq[e][1], ws[e][1], out=out8[e])

                fns["fp8_loop"] = fp8_loop
            for v in variants:
                try:
                    out.fill_(float("nan"))
                    if v == "fp8_loop":
                        out8.fill_(float("nan"))
                    r = fns[v]()
                    got = r if v == "bf16_grouped" else (out8[:, :m] if v == "fp8_loop" else out)
                    torch.cuda.synchronize()
                    if bool(torch.isnan(got).any()):
                        raise RuntimeError("output not fully written")
                    if ref is not None:
                        res[v]["relerr"][f"{name}@{m}"] = rel_err(torch, got, ref)
                    t, meth = bench.graph(fns[v])
                    res[v][name][m] = t
                    res[v]["method"][m] = meth
                except Exception as exc:  # noqa: BLE001
                    msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                    res[v]["note"][f"{name}@{m}"] = msg
                    log(f"  {v} {name} m={m} failed: {msg}")
            del x, out, ref, fns
        line = f"  m={m:5d}"
        for v in variants:
            tu, td = res[v]["up"].get(m), res[v]["down"].get(m)
            line += f"  {v} " + (f"{(tu + td) * 1e6:9.1f} us" if tu and td else "   failed")
        log(line)
    del w_up, w_dn, w8
    torch.cuda.empty_cache()
    return res


def summarise_experts(res: dict, peaks: dict) -> dict:
    """Per variant: lists over TOKENS_PER_EXPERT of time, TFLOP/s, efficiency (None where failed)."""
    E, H, F2, F = N_EXPERTS, HIDDEN, 2 * EXPERT_FFN, EXPERT_FFN
    hbm = peaks["hbm_TBps"] * 1e12
    out = {}
    for v, r in res.items():
        prec = "fp8" if v.startswith("fp8") else "bf16"
        peak = peaks[f"{prec}_TFLOPs"] * 1e12 if peaks.get(f"{prec}_TFLOPs") else None
        rows = []
        for m in TOKENS_PER_EXPERT:
            tu, td = r["up"].get(m), r["down"].get(m)
            if not (tu and td and peak):
                rows.append(None)
                continue
            fu, fd = gemm_flops(m, H, F2, E), gemm_flops(m, F, H, E)
            bu = gemm_bytes(m, H, F2, E, BYTES[prec], 2)
            bd = gemm_bytes(m, F, H, E, BYTES[prec], 2)
            ru, rd = roofline_s(fu, bu, peak, hbm), roofline_s(fd, bd, peak, hbm)
            rows.append({"m": m, "up_s": tu, "down_s": td, "s": tu + td,
                         "tflops": (fu + fd) / (tu + td) / 1e12,
                         "Bps": (bu + bd) / (tu + td),
                         "eff_up": ru / tu, "eff_down": rd / td, "eff": (ru + rd) / (tu + td),
                         "bound": "memory" if bu / hbm > fu / peak else "compute"})
        out[v] = rows
    return out


# --------------------------------------------------------------------------- output


def versions(torch) -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda or "unknown",
            "device": torch.cuda.get_device_name(0), "driver": "unknown", "sm_clock": ""}
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.max.sm,"
                            "power.limit", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
        parts = [p.strip() for p in q.stdout.strip().splitlines()[0].split(",")]
        info["driver"] = parts[0]
        info["sm_clock"] = f"SM clock {parts[1]} (max {parts[2]}), power limit {parts[3]}"
    except Exception:  # noqa: BLE001 - nvidia-smi missing is fine
        pass
    return info


def fmt_list(xs, digits: int = 3) -> str:
    return "[" + ", ".join(f"{x:.{digits}f}" for x in xs) + "]"


def render_toml(gpu: str, info: dict, peaks: dict, hbm: dict, dense: dict, experts: dict,
                args: argparse.Namespace, notes: str = "") -> str:
    today = _dt.datetime.now(_dt.timezone.utc).date().isoformat()
    bf_peak, fp8_peak, hbm_peak = peaks["bf16_TFLOPs"], peaks.get("fp8_TFLOPs"), peaks["hbm_TBps"]
    L = []
    L.append(f"# Measured on one {info['device']} ({gpu}) by benchmarks/gpu_calibrate.py on {today},")
    L.append(f"# torch {info['torch']}, CUDA {info['cuda']}, driver {info['driver']}. {info['sm_clock']}".rstrip())
    L.append(f"# Datasheet peaks ({peaks['source']}): bf16 {bf_peak} TFLOP/s, fp8 {fp8_peak} TFLOP/s, "
             f"HBM {hbm_peak} TB/s.")
    L.append(f"# Timing: CUDA events, {args.warmup} warm-up calls, median of {args.repeats} repeats; "
             "GEMMs timed as replays of a CUDA graph")
    L.append("# of back-to-back calls; all inputs random (never zeros).")
    L.append(f'gpu = "{gpu}"')
    L.append("")
    # ---- gemm
    bmm = experts.get("bf16_bmm", [])
    ok = [r for r in bmm if r]
    if len(ok) == len(TOKENS_PER_EXPERT):
        L.append("# Expert GEMMs, DeepSeek-V3 shapes, 8 experts: up/gate [m x 7168] x [7168 x 4096] plus down")
        L.append("# [m x 2048] x [2048 x 7168]; m = tokens per expert. efficiency = (roofline_up + roofline_down)")
        L.append("# / (achieved_up + achieved_down), roofline = max(FLOPs / peak, bytes / HBM peak), bytes = weights")
        L.append("# + activations in + out (bf16 2 B; fp8 1 B in, bf16 out).")
        L.append("# bf16: one torch.bmm call per GEMM for all 8 experts (weights as [8, in, out] column-major views).")
        fp8 = experts.get("fp8_loop", [])
        fp8_ok = fp8 and all(fp8)
        if fp8_ok:
            L.append("# fp8 (e4m3, per-tensor scales): a loop of 8 torch._scaled_mm calls, one per expert, "
                     "bf16 output, no fast accumulation.")
        L.append("# Per m (us for up+down, TFLOP/s, efficiency; up/down efficiency separately):")
        for v in ("bf16_bmm", "bf16_loop", "bf16_grouped", "fp8_loop"):
            rows = experts.get(v)
            if not rows:
                continue
            L.append(f"#   {v}:")
            for r in rows:
                if r is None:
                    continue
                L.append(f"#     m={r['m']:5d} {r['s'] * 1e6:9.1f} us {r['tflops']:7.1f} TFLOP/s "
                         f"{r['Bps'] / 1e12:5.2f} TB/s eff {r['eff']:.3f} "
                         f"(up {r['eff_up']:.3f}, down {r['eff_down']:.3f}, {r['bound']}-bound)")
        for note in notes.splitlines():
            L.append(f"#   {note}")
        L.append("[gemm]")
        L.append(f"tokens_per_expert = [{', '.join(str(m) for m in TOKENS_PER_EXPERT)}]")
        L.append(f"efficiency = {fmt_list([r['eff'] for r in bmm])}  # bf16, torch.bmm over 8 experts")
        if fp8_ok:
            L.append(f"efficiency_fp8 = {fmt_list([r['eff'] for r in fp8])}  "
                     "# fp8 e4m3, loop of 8 torch._scaled_mm")
        L.append("")
    # ---- hbm
    L.append(f"# Device-to-device copy of {args.hbm_gib} GiB (torch copy_): "
             f"{hbm['copy_Bps'] / 1e12:.3f} TB/s read+write ({hbm['copy_s'] * 1e3:.3f} ms).")
    L.append(f"# Read-only bf16 sum of {args.hbm_gib} GiB: {hbm['sum_Bps'] / 1e12:.3f} TB/s "
             f"({hbm['sum_s'] * 1e3:.3f} ms), efficiency {hbm['sum_Bps'] / 1e12 / hbm_peak:.3f}.")
    L.append("[hbm]")
    L.append(f"efficiency = {hbm['copy_Bps'] / 1e12 / hbm_peak:.3f}  "
             f"# copy read+write bandwidth / {hbm_peak} TB/s")
    L.append("")
    # ---- flops
    n = args.dense_n
    L.append(f"# Dense GEMM {n}x{n}x{n}: bf16 torch.matmul {dense['bf16_flops'] / 1e12:.1f} TFLOP/s sustained "
             f"(graph replays of 8 back-to-back products; rel. error vs fp32 {dense['bf16_relerr']:.1e});")
    L.append(f"# a short burst (3 warm-ups + mean of 10 products after a 2 s pause) reached "
             f"{dense['bf16_burst_flops'] / 1e12:.1f} TFLOP/s, before the power cap lowers the clocks.")
    if "fp8_flops" in dense and fp8_peak:
        L.append(f"# fp8 e4m3 torch._scaled_mm, per-tensor scales, bf16 out: {dense['fp8_flops'] / 1e12:.1f} "
                 f"TFLOP/s; with use_fast_accum=True {dense['fp8_fast_flops'] / 1e12:.1f} TFLOP/s "
                 f"(rel. error vs fp32 {dense['fp8_relerr']:.1e}).")
    elif "fp8_error" in dense:
        L.append(f"# fp8 torch._scaled_mm failed here: {dense['fp8_error']}")
    L.append("[flops]")
    L.append(f"efficiency = {dense['bf16_flops'] / 1e12 / bf_peak:.3f}  # bf16 / {bf_peak} TFLOP/s")
    if "fp8_flops" in dense and fp8_peak:
        L.append(f"efficiency_fp8 = {dense['fp8_flops'] / 1e12 / fp8_peak:.3f}  "
                 f"# fp8 (no fast accumulation) / {fp8_peak} TFLOP/s")
    return "\n".join(L) + "\n"


def render_notes(experts: dict, res_raw: dict) -> str:
    """Failures and correctness checks, for the log."""
    L = []
    for v, r in res_raw.items():
        for key, err in r["relerr"].items():
            L.append(f"check {v} {key}: rel. error vs fp32 {err:.2e}")
        for key, note in r["note"].items():
            L.append(f"{'note' if note.startswith('padded') else 'FAILED'} {v} {key}: {note}")
        meths = set(r["method"].values())
        if meths - {"graph"}:
            L.append(f"{v}: timing methods {sorted(meths)}")
    return "\n".join(L)


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", default="h200-sxm", help="GPU id, as in topologies/gpus/<id>.toml (default h200-sxm)")
    p.add_argument("--bf16-tflops", type=float, help="datasheet dense bf16 TFLOP/s (overrides the catalog)")
    p.add_argument("--fp8-tflops", type=float, help="datasheet dense fp8 TFLOP/s (overrides the catalog)")
    p.add_argument("--hbm-tbps", type=float, help="datasheet HBM TB/s (overrides the catalog)")
    p.add_argument("--hbm-gib", type=int, default=4, help="copy / sum buffer size in GiB (default 4)")
    p.add_argument("--dense-n", type=int, default=8192, help="dense GEMM size (default 8192)")
    p.add_argument("--repeats", type=int, default=20, help="timed repeats per measurement (median)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up calls per measurement")
    p.add_argument("--device", type=int, default=0, help="CUDA device index")
    p.add_argument("-o", "--output", help="write the TOML here instead of stdout")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("gpu_calibrate: PyTorch is not installed (pip install torch); nothing measured")
    if not torch.cuda.is_available():
        sys.exit("gpu_calibrate: PyTorch sees no CUDA device; run this on a machine with an NVIDIA GPU")
    peaks = load_peaks(args)
    torch.cuda.set_device(args.device)
    torch.manual_seed(0)
    info = versions(torch)
    log(f"gpu_calibrate: {info['device']}, torch {info['torch']}, CUDA {info['cuda']}, driver {info['driver']}")
    log(f"peaks ({peaks['source']}): bf16 {peaks['bf16_TFLOPs']} fp8 {peaks['fp8_TFLOPs']} TFLOP/s, "
        f"HBM {peaks['hbm_TBps']} TB/s")
    bench = Bench(torch, repeats=args.repeats, warmup=args.warmup)

    log("HBM ...")
    hbm = measure_hbm(torch, bench, args.hbm_gib * GIB)
    log(f"  copy {hbm['copy_Bps'] / 1e12:.3f} TB/s (read+write), sum {hbm['sum_Bps'] / 1e12:.3f} TB/s")
    log("dense GEMM ...")
    dense = measure_dense(torch, bench, args.dense_n)
    log(f"  bf16 {dense['bf16_flops'] / 1e12:.1f} TFLOP/s sustained, {dense['bf16_burst_flops'] / 1e12:.1f} burst"
        + (f", fp8 {dense['fp8_flops'] / 1e12:.1f} (fast accum {dense['fp8_fast_flops'] / 1e12:.1f})"
           if "fp8_flops" in dense else ""))
    log("expert GEMMs ...")
    raw = measure_experts(torch, bench, peaks)
    experts = summarise_experts(raw, peaks)
    notes = render_notes(experts, raw)
    if notes:
        log(notes)
    info = versions(torch) | {k: v for k, v in info.items() if k != "sm_clock"}  # clocks after load
    text = render_toml(args.gpu, info, peaks, hbm, dense, experts, args, notes)
    if tomllib is not None:
        tomllib.loads(text)  # the document must parse
    if args.output:
        pathlib.Path(args.output).write_text(text)
        log(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
