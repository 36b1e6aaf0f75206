"""Measure the kernels of a model on the CUDA GPU this runs on (needs the optional ``torch`` extra).

Everything is timed with CUDA events around replays of a CUDA graph (as engines run decode), after a
warm-up, and the median of repeats is kept; inputs are random (never zeros) and weights rotate over enough
copies that no replay finds them in L2. What is measured (times in seconds, in a JSON-ready dict):

- ``memory``: a read+write elementwise kernel (``mul``) from 8 KiB to 4 GiB: achieved bytes/s by size, launch and tail
  included (the curve every memory-bound kernel of the model is timed on);
- ``gemm``: every weight shape of the model (:func:`wideep.perf.kernels.gemm_shapes`) by m, in bf16
  (``torch.mm``) and fp8 e4m3 (``torch._scaled_mm``, row-wise activation and column-wise weight scales);
- ``grouped``: the routed-expert shapes for 2, 8 and 32 local experts at m tokens per expert (bf16
  ``torch._grouped_mm``, else a batched ``bmm``; fp8 ``torch._scaled_grouped_mm``, else a loop of ``_scaled_mm``);
- ``fused``: the routed-expert shapes as engines run them on Hopper, one Triton kernel over the copies
  sorted by expert at the sparsity uniform routing gives (:mod:`wideep.calibrate.fused_moe`; where Triton imports);
- ``ops``: PyTorch's own norm, top-k, gather and scatter-add at the model's sizes, as a check of the memory
  curve (engines fuse these further, so they are reported, not fitted).
"""

from __future__ import annotations

import datetime as _dt
import statistics
import subprocess

from wideep.perf.kernels import GemmShape

GEMM_M = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
GROUPED_M = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
GROUPED_EXPERTS = (2, 8, 32)
MEMORY_BYTES = tuple(2**p for p in range(12, 33))
ROTATE_BYTES = 256 * 2**20  # weights rotate over at least this much memory (H200 L2: 60 MB)
MAX_FLOP_PER_CALL = 2e13    # skip shapes whose one call would take tens of ms (lm_head at large m)


class Timer:
    """CUDA-graph replay timing on the current device."""

    def __init__(self, torch, repeats: int = 15, warmup: int = 3):
        self.torch, self.repeats, self.warmup = torch, repeats, warmup

    def events(self, fn, inner: int = 1) -> float:
        torch = self.torch
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

    def graph(self, calls: list) -> float:
        """Median seconds per call of ``calls`` (run in turn) captured once in a graph."""
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                for fn in calls:
                    fn()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for fn in calls:
                fn()
        g.replay()
        torch.cuda.synchronize()
        return self.events(g.replay) / len(calls)


def copies_for(nbytes: int, limit: int = 64) -> int:
    """How many copies of an ``nbytes`` operand keep a rotation out of L2."""
    return max(1, min(limit, -(-ROTATE_BYTES // max(nbytes, 1))))


def measure_memory(torch, timer: Timer, log) -> list[dict]:
    rows = []
    for nbytes in MEMORY_BYTES:
        n = nbytes // 2
        k = copies_for(2 * nbytes, 32)
        src = [torch.randn(n, device="cuda", dtype=torch.bfloat16) for _ in range(k)]
        dst = [torch.empty_like(s) for s in src]
        # an SM kernel (a graph turns a plain copy_ into a copy-engine memcpy, which is not what models run)
        t = timer.graph([lambda s=s, d=d: torch.mul(s, 2.0, out=d) for s, d in zip(src, dst)])
        if not torch.equal(dst[0], src[0] * 2.0):
            raise RuntimeError("memory kernel check failed")
        rows.append({"bytes": 2 * nbytes, "s": t})
        del src, dst
        log(f"  memory {2 * nbytes:>11,d} B  {t * 1e6:9.2f} us  {2 * nbytes / t / 1e12:6.3f} TB/s")
    torch.cuda.empty_cache()
    return rows


def fp8_rowwise(torch, x, dim: int):
    """e4m3 values and float32 scales along ``dim`` (rows of activations, columns of weights)."""
    fmax = torch.finfo(torch.float8_e4m3fn).max
    scale = (x.abs().amax(dim=dim, keepdim=True).float() / fmax).clamp(min=1e-12)
    return (x.float() / scale).to(torch.float8_e4m3fn), scale


def gemm_calls(torch, shape: GemmShape, m: int, dtype: str):
    """Call list (weights rotating) for one (shape, m, dtype), or None when fp8 is unavailable."""
    bf = torch.bfloat16
    w_bytes = shape.n * shape.k * (2 if dtype == "bf16" else 1)
    k_copies = copies_for(w_bytes)
    x = torch.randn(m, shape.k, device="cuda", dtype=bf)
    ws = [torch.randn(shape.n, shape.k, device="cuda", dtype=bf) * shape.k ** -0.5 for _ in range(k_copies)]
    out = torch.empty(m, shape.n, device="cuda", dtype=bf)
    if dtype == "bf16":
        return [lambda w=w: torch.mm(x, w.t(), out=out) for w in ws], (x, ws[0], out)
    xq, sx = fp8_rowwise(torch, x, 1)
    wq = [fp8_rowwise(torch, w, 1) for w in ws]  # per output channel
    del ws
    return [lambda w=w, s=s: torch._scaled_mm(xq, w.t(), scale_a=sx, scale_b=s.t(), out_dtype=bf, out=out)
            for w, s in wq], (x, None, out)


def measure_gemms(torch, timer: Timer, shapes: list[GemmShape], log) -> list[dict]:
    rows = []
    for shape in shapes:
        for dtype in ("bf16", "fp8"):
            for m in GEMM_M:
                if 2.0 * m * shape.n * shape.k > MAX_FLOP_PER_CALL:
                    continue
                try:
                    calls, _ = gemm_calls(torch, shape, m, dtype)
                    t = timer.graph(calls)
                except RuntimeError as exc:  # e.g. an fp8 layout cuBLASLt refuses
                    rows.append({"shape": shape.name, "n": shape.n, "k": shape.k, "dtype": dtype, "m": m,
                                 "error": str(exc).splitlines()[0][:160]})
                    continue
                finally:
                    torch.cuda.empty_cache()
                rows.append({"shape": shape.name, "n": shape.n, "k": shape.k, "dtype": dtype, "m": m, "s": t})
            done = [r for r in rows if r["shape"] == shape.name and r["dtype"] == dtype and "s" in r]
            log(f"  gemm {shape.name:24s} {dtype:4s} n={shape.n:6d} k={shape.k:6d}: "
                + " ".join(f"{r['m']}:{r['s'] * 1e6:.1f}" for r in done[::3]) + " us")
    return rows


def grouped_calls(torch, shape: GemmShape, experts: int, m: int, dtype: str):
    bf = torch.bfloat16
    w_bytes = experts * shape.n * shape.k * (2 if dtype == "bf16" else 1)
    k_copies = copies_for(w_bytes, 16)
    x = torch.randn(experts, m, shape.k, device="cuda", dtype=bf)
    ws = [torch.randn(experts, shape.n, shape.k, device="cuda", dtype=bf) * shape.k ** -0.5 for _ in range(k_copies)]
    if dtype == "bf16":
        try:
            torch._grouped_mm(x, ws[0].transpose(1, 2), out_dtype=bf)
            return [lambda w=w: torch._grouped_mm(x, w.transpose(1, 2), out_dtype=bf) for w in ws], "_grouped_mm"
        except (AttributeError, RuntimeError):
            pass
        out = torch.empty(experts, m, shape.n, device="cuda", dtype=bf)
        return [lambda w=w: torch.bmm(x, w.transpose(1, 2), out=out) for w in ws], "bmm"
    if hasattr(torch, "_scaled_grouped_mm"):  # one launch for every expert, row-wise scales
        try:
            xq3, sx3 = fp8_rowwise(torch, x, 2)
            wq3 = [fp8_rowwise(torch, w, 2) for w in ws]
            sx2 = sx3.squeeze(-1).contiguous()

            def grouped(w, sw):
                return torch._scaled_grouped_mm(xq3, w.transpose(1, 2), sx2, sw.squeeze(-1).contiguous(),
                                                out_dtype=bf)
            grouped(*wq3[0])
            return [lambda w=w, sw=sw: grouped(w, sw) for w, sw in wq3], "_scaled_grouped_mm"
        except RuntimeError:
            pass
    xq = [fp8_rowwise(torch, x[e], 1) for e in range(experts)]
    wq = [[fp8_rowwise(torch, w[e], 1) for e in range(experts)] for w in ws]
    del ws
    out = torch.empty(m, shape.n, device="cuda", dtype=bf)

    def loop(wl):
        for (a, sa), (b, sb) in zip(xq, wl):
            torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb.t(), out_dtype=bf, out=out)
    return [lambda wl=wl: loop(wl) for wl in wq], "_scaled_mm loop"


def measure_grouped(torch, timer: Timer, shapes: list[GemmShape], log) -> list[dict]:
    rows = []
    for shape in (s for s in shapes if s.per_expert):
        for experts in GROUPED_EXPERTS:
            for dtype in ("bf16", "fp8"):
                for m in GROUPED_M:
                    try:
                        calls, method = grouped_calls(torch, shape, experts, m, dtype)
                        t = timer.graph(calls)
                        rows.append({"shape": shape.name, "n": shape.n, "k": shape.k, "experts": experts,
                                     "dtype": dtype, "m": m, "s": t, "method": method})
                    except RuntimeError as exc:
                        rows.append({"shape": shape.name, "experts": experts, "dtype": dtype, "m": m,
                                     "error": str(exc).splitlines()[0][:160]})
                    finally:
                        torch.cuda.empty_cache()
                done = [r for r in rows if r.get("shape") == shape.name and r["experts"] == experts
                        and r["dtype"] == dtype and "s" in r]
                log(f"  grouped {shape.name:24s} x{experts:<3d} {dtype:4s}: "
                    + " ".join(f"{r['m']}:{r['s'] * 1e6:.1f}" for r in done[::3]) + " us")
    return rows


def measure_ops(torch, timer: Timer, hidden: int, n_experts: int, top_k: int, log) -> list[dict]:
    """PyTorch's unfused norm, top-k, gather and scatter-add at the model's sizes (bytes counted once)."""
    rows = []
    F = torch.nn.functional
    for tokens in (1, 16, 128, 1024, 8192):
        x = torch.randn(tokens, hidden, device="cuda", dtype=torch.bfloat16)
        w = torch.ones(hidden, device="cuda", dtype=torch.bfloat16)
        logits = torch.randn(tokens, n_experts, device="cuda", dtype=torch.float32)
        idx = torch.randint(0, tokens, (tokens * top_k,), device="cuda")
        rows_out = torch.zeros(tokens, hidden, device="cuda", dtype=torch.bfloat16)
        src = torch.randn(tokens * top_k, hidden, device="cuda", dtype=torch.bfloat16)
        ops = {"rms_norm": (lambda: F.rms_norm(x, (hidden,), w), 2 * x.numel() * 2),
               "topk": (lambda: torch.topk(logits, top_k, dim=-1), logits.numel() * 4),
               "gather": (lambda: x.index_select(0, idx), 2 * src.numel() * 2),
               "scatter_add": (lambda: rows_out.index_add_(0, idx, src), src.numel() * 2 + 2 * x.numel() * 2)}
        for name, (fn, nbytes) in ops.items():
            rows.append({"op": name, "tokens": tokens, "bytes": nbytes, "s": timer.graph([fn])})
        log(f"  ops tokens={tokens:5d}: " + " ".join(f"{r['op']}:{r['s'] * 1e6:.1f}us" for r in rows[-4:]))
    torch.cuda.empty_cache()
    return rows


def measure_fused_section(torch, timer: Timer, shapes: list[GemmShape], n_experts: int, top_k: int,
                          log, experts: tuple[int, ...] = (), dtypes: tuple[str, ...] = ("bf16", "fp8")) -> list[dict]:
    """The ``fused`` rows (Triton's fused MoE kernel; a tile search per point at 3 repeats; ``experts``: local
    expert counts instead of the module's defaults; ``dtypes``: the weight dtypes timed)."""
    from wideep.calibrate.fused_moe import measure_fused

    return measure_fused(torch, timer, Timer(torch, repeats=3, warmup=1), shapes, n_experts, top_k,
                         ROTATE_BYTES, log, experts, dtypes)


def stamp(torch) -> dict:
    """GPU, driver, library versions, clocks and date of this run."""
    info = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cublas": str(torch.backends.cuda.preferred_blas_library()) if hasattr(torch.backends.cuda, "preferred_blas_library") else "",
            "date": _dt.date.today().isoformat(), "sm_count": torch.cuda.get_device_properties(0).multi_processor_count}
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        pass
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        driver, clock, power = (p.strip() for p in q.stdout.strip().splitlines()[0].split(","))
        info |= {"driver": driver, "max_sm_clock": clock, "power_limit": power}
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        info |= {"driver": "unknown"}
    return info


def measure(shapes: list[GemmShape], hidden: int, n_experts: int, top_k: int, log=print) -> dict:
    """Run every measurement on CUDA device 0; returns the raw record (seconds, bytes)."""
    import torch  # the optional extra; the caller checks that it imports and sees a GPU

    torch.manual_seed(0)
    timer = Timer(torch)
    record = {"stamp": stamp(torch)}
    log(f"measuring on {record['stamp']['device']} (torch {torch.__version__})")
    sections = {"memory": lambda: measure_memory(torch, timer, log),
                "gemm": lambda: measure_gemms(torch, timer, shapes, log),
                "grouped": lambda: measure_grouped(torch, timer, shapes, log),
                "fused": lambda: measure_fused_section(torch, timer, shapes, n_experts, top_k, log),
                "ops": lambda: measure_ops(torch, timer, hidden, n_experts, top_k, log)}
    for name, run in sections.items():
        try:
            record[name] = run()
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            record[name] = []
            record.setdefault("errors", {})[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            log(f"  {name} failed: {record['errors'][name]}")
    return record
