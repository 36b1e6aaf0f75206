"""A fused MoE grouped GEMM in Triton, timed at the sparsity routing gives (``wideep calibrate``'s ``fused``).

Hopper engines run the routed experts as one Triton kernel over the token copies sorted by expert: each
program multiplies ``BLOCK_M`` copies of one expert by a ``BLOCK_N`` slice of that expert's weights, the rows
gathered by index, so only the experts a batch touches are read and no permute is written (SGLang's and vLLM's
``fused_moe``; fp8 as block-scaled w8a8: 128x128 weight blocks, 1x128 activation groups). PyTorch's grouped
kernels (``grouped``) give every local expert the same rows, which decode never does. This module is that
kind of kernel, written here, with a small search over tile sizes per point, as an engine's tuned configs
would pick; routing is uniform top-k over the model's experts, each rank keeping the copies of its own.

The layout (:func:`block_layout`) is numpy and runs anywhere; :func:`measure_fused` needs torch, Triton and a
CUDA GPU.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from wideep.perf.kernels import GemmShape

#: Local experts per rank measured: whole experts (EP 128, 32, 8 of 256), MoE TP slices (EP 1 and 8).
WHOLE_EXPERTS = (2, 8, 32)
SLICE_EXPERTS = (32, 256)
#: Kept copies per rank (token x expert pairs) timed, up to ``MAX_ROWS_PER_EXPERT`` per local expert.
COPIES = tuple(2**p for p in range(0, 18))
MAX_ROWS_PER_EXPERT = 512
#: Routing samples each point rotates over (different experts touched per call: no replay finds them in L2).
LAYOUTS = 8
SCALE_BLOCK = 128  # fp8 block scaling: weight blocks 128 x 128, activation groups 1 x 128
#: Tile configurations searched per point: (BLOCK_M, BLOCK_N, warps, stages), BLOCK_K = 128.
CONFIGS = ((16, 32, 4, 4), (32, 32, 4, 4), (16, 64, 4, 4), (16, 128, 4, 4), (32, 64, 4, 4), (32, 128, 4, 3),
           (64, 64, 4, 4), (64, 128, 4, 3), (64, 128, 8, 4), (128, 128, 8, 3))


def routing(tokens: int, n_experts: int, top_k: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform top-k: ``top_k`` distinct experts per token, shape (tokens, top_k)."""
    return np.argpartition(rng.random((tokens, n_experts)), top_k - 1, axis=1)[:, :top_k]


def block_layout(expert_ids: np.ndarray, local: int, block_m: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The kernel's row plan for one rank holding experts 0..``local``-1.

    ``expert_ids`` (tokens, top_k); copy c is token c // top_k's c % top_k-th choice. Returns (row ids: the
    rank's copies grouped by expert, each expert's run padded to a multiple of ``block_m`` with the sentinel
    tokens x top_k; the expert of each block of ``block_m`` rows; copies kept; experts touched).

    >>> rows, experts, kept, touched = block_layout(np.array([[0, 3], [0, 1]]), 2, 2)
    >>> rows.tolist(), experts.tolist(), kept, touched
    ([0, 2, 3, 4], [0, 1], 3, 2)
    """
    flat = expert_ids.ravel()
    copies = np.flatnonzero(flat < local)
    counts = np.bincount(flat[copies], minlength=local)
    order = copies[np.argsort(flat[copies], kind="stable")]
    rows, experts, start = [], [], 0
    for e in np.flatnonzero(counts):
        run = order[start:start + counts[e]]
        start += counts[e]
        blocks = -(-len(run) // block_m)
        rows.append(np.concatenate([run, np.full(blocks * block_m - len(run), flat.size)]))
        experts += [e] * blocks
    return (np.concatenate(rows or [np.zeros(0)]).astype(np.int32), np.array(experts, dtype=np.int32), int(copies.size),
            int(np.count_nonzero(counts)))


def rank_tokens(copies: int, n_experts: int, top_k: int, local: int) -> int:
    """Tokens of the EP group that give a rank of ``local`` experts about ``copies`` copies."""
    return max(1, math.ceil(copies * n_experts / (top_k * local)))


@functools.lru_cache(maxsize=1)
def kernel():
    """The Triton kernel (compiled on first use; Triton imported here, so the module imports without it)."""
    import triton
    import triton.language as tl

    @triton.jit
    def fused_moe(a, w, out, a_scale, w_scale, rows, block_expert, blocks_m, n, k, copies,
                  stride_a, stride_we, stride_wn, stride_out, stride_as, stride_wse, stride_wsn,
                  TOP_K: tl.constexpr, GATHER: tl.constexpr, SCALED: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
        # program -> (row block, column block), GROUP_M row blocks sharing each column block in turn (L2 reuse)
        pid = tl.program_id(0)
        blocks_n = n // BLOCK_N
        group = pid // (GROUP_M * blocks_n)
        first_m = group * GROUP_M
        size_m = tl.minimum(blocks_m - first_m, GROUP_M)
        pid_m = first_m + (pid % (GROUP_M * blocks_n)) % size_m
        pid_n = (pid % (GROUP_M * blocks_n)) // size_m

        ids = tl.load(rows + pid_m * BLOCK_M + tl.arange(0, BLOCK_M))
        valid = ids < copies
        if GATHER:  # gate_up reads the token's row, down the copy's own
            src = ids // TOP_K
        else:
            src = ids
        expert = tl.load(block_expert + pid_m).to(tl.int64)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        a_ptr = a + src[:, None].to(tl.int64) * stride_a + ks[None, :]
        w_ptr = w + expert * stride_we + cols[None, :].to(tl.int64) * stride_wn + ks[:, None]
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for kb in range(0, k // BLOCK_K):
            x = tl.load(a_ptr, mask=valid[:, None], other=0.0)
            y = tl.load(w_ptr)
            if SCALED:
                sa = tl.load(a_scale + src.to(tl.int64) * stride_as + kb, mask=valid, other=0.0)
                sw = tl.load(w_scale + expert * stride_wse + (cols // 128) * stride_wsn + kb)
                acc += tl.dot(x, y) * sa[:, None] * sw[None, :]
            else:
                acc = tl.dot(x, y, acc)
            a_ptr += BLOCK_K
            w_ptr += BLOCK_K
        o_ptr = out + ids[:, None].to(tl.int64) * stride_out + cols[None, :]
        tl.store(o_ptr, acc.to(out.dtype.element_ty), mask=valid[:, None])

    return fused_moe


class Operands:
    """One (shape, local experts, dtype)'s weights (``n_weights`` copies, rotating) and scales on the GPU."""

    def __init__(self, torch, shape: GemmShape, local: int, dtype: str, n_weights: int):
        self.torch, self.shape, self.dtype = torch, shape, dtype
        self.weights = [self._weight(local) for _ in range(n_weights)]

    def _weight(self, local: int):
        torch, s = self.torch, self.shape
        w = torch.randn(local, s.n, s.k, device="cuda", dtype=torch.bfloat16) * s.k ** -0.5
        if self.dtype == "bf16":
            return w, None
        blocks = w.view(local, s.n // SCALE_BLOCK, SCALE_BLOCK, s.k // SCALE_BLOCK, SCALE_BLOCK)
        scale = blocks.abs().amax(dim=(2, 4)).float().clamp(min=1e-12) / torch.finfo(torch.float8_e4m3fn).max
        q = (blocks / scale[:, :, None, :, None]).to(torch.float8_e4m3fn).view(local, s.n, s.k)
        return q, scale.contiguous()

    def activations(self, rows: int):
        """(values, scales or None) of ``rows`` input rows of k."""
        torch, k = self.torch, self.shape.k
        x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
        if self.dtype == "bf16":
            return x, None
        groups = x.view(rows, k // SCALE_BLOCK, SCALE_BLOCK)
        scale = groups.abs().amax(dim=2).float().clamp(min=1e-12) / torch.finfo(torch.float8_e4m3fn).max
        return (groups / scale[:, :, None]).to(torch.float8_e4m3fn).view(rows, k), scale.contiguous()


def launch(ops: Operands, weight: tuple, x: tuple, out, plan: tuple, top_k: int, gather: bool,
           config: tuple) -> None:
    """One fused grouped GEMM: ``out[copy] = x[token or copy] @ W[expert]^T`` for the rows of ``plan``."""
    block_m, block_n, warps, stages = config
    rows, experts, copies = plan
    (w, ws), (a, sa) = weight, x
    n, k = ops.shape.n, ops.shape.k
    scaled = ws is not None
    grid = (experts.numel() * (n // block_n),)
    kernel()[grid](a, w, out, sa if scaled else a, ws if scaled else w, rows, experts, experts.numel(), n, k,
                   copies, a.stride(0), w.stride(0), w.stride(1), out.stride(0),
                   sa.stride(0) if scaled else 0, ws.stride(0) if scaled else 0, ws.stride(1) if scaled else 0,
                   TOP_K=top_k, GATHER=gather, SCALED=scaled, BLOCK_M=block_m, BLOCK_N=block_n,
                   BLOCK_K=SCALE_BLOCK, GROUP_M=8, num_warps=warps, num_stages=stages)


def check(torch, ops: Operands, top_k: int, gather: bool) -> float:
    """Relative error (Frobenius) of the kernel against dequantised torch products on 4 routed tokens."""
    local = ops.weights[0][0].shape[0]
    ids = routing(4, local, min(top_k, local), np.random.default_rng(1))
    rows, experts, _, _ = block_layout(ids, local, CONFIGS[0][0])
    x = ops.activations(4 if gather else ids.size)
    out = torch.zeros(ids.size, ops.shape.n, device="cuda", dtype=torch.bfloat16)
    plan = (torch.tensor(rows, device="cuda"), torch.tensor(experts, device="cuda"), ids.size)
    launch(ops, ops.weights[0], x, out, plan, ids.shape[1], gather, CONFIGS[0])
    a, ref = dequantised(torch, *x), torch.zeros_like(out, dtype=torch.float32)
    for e in np.unique(ids):
        copies = np.flatnonzero(ids.ravel() == e)
        src = copies // ids.shape[1] if gather else copies
        w = dequantised(torch, ops.weights[0][0][e], None if ops.weights[0][1] is None else ops.weights[0][1][e])
        ref[torch.tensor(copies, device="cuda")] = a[torch.tensor(src, device="cuda")] @ w.t()
    return float(((out.float() - ref).norm() / ref.norm()).item())


def dequantised(torch, values, scale):
    """bf16 values, or fp8 values times their 1 x 128 (activations) or 128 x 128 (weights) block scales, in
    float32; ``values`` (rows, k), ``scale`` (rows, k / 128) or (n / 128, k / 128)."""
    if scale is None:
        return values.float()
    full = scale.repeat_interleave(SCALE_BLOCK, dim=1)
    if scale.shape[0] != values.shape[0]:
        full = full.repeat_interleave(SCALE_BLOCK, dim=0)
    return values.float() * full


def point_calls(torch, ops: Operands, tokens: int, local: int, n_experts: int, top_k: int, gather: bool,
                config: tuple, layouts: list[np.ndarray]):
    """Calls (rotating over the weight copies and routing samples) of one point and tile configuration."""
    x = ops.activations(tokens if gather else tokens * top_k)
    out = torch.empty(tokens * top_k, ops.shape.n, device="cuda", dtype=torch.bfloat16)
    plans = []
    for ids in layouts:
        rows, experts, _, _ = block_layout(ids, local, config[0])
        plans.append((torch.tensor(rows, device="cuda"), torch.tensor(experts, device="cuda"), ids.size))
    n = max(len(ops.weights), len(plans))
    return [lambda i=i: launch(ops, ops.weights[i % len(ops.weights)], x, out, plans[i % len(plans)],
                               top_k, gather, config) for i in range(n)]


def weight_copies(shape: GemmShape, local: int, dtype: str, top_k: int, rotate_bytes: int,
                  budget_bytes: float = 24e9) -> int:
    """Weight copies that keep the fewest-token point's experts out of L2, within ``budget_bytes``."""
    per_expert = shape.n * shape.k * (2 if dtype == "bf16" else 1)
    wanted = -(-rotate_bytes // (min(top_k, local) * per_expert))
    return int(max(1, min(16, wanted, budget_bytes // (local * per_expert))))


def time_point(torch, timer, quick, ops: Operands, tokens: int, local: int, n_experts: int, top_k: int,
               gather: bool) -> dict | None:
    """{copies, touched, s, config} of one point: ``tokens`` of the EP group routed over :data:`LAYOUTS`
    samples (those that leave the rank any copy), every tile configuration timed with ``quick``, the fastest
    again with ``timer``; None where no sample leaves the rank a copy."""
    layouts = [routing(tokens, n_experts, top_k, np.random.default_rng((tokens, i))) for i in range(LAYOUTS)]
    layouts = [ids for ids in layouts if (ids < local).any()]  # a rank with none runs no kernel
    if not layouts:
        return None
    kept = [block_layout(ids, local, 16)[2:] for ids in layouts]
    timed = {c: quick.graph(point_calls(torch, ops, tokens, local, n_experts, top_k, gather, c, layouts))
             for c in CONFIGS}
    best = min(timed, key=timed.get)
    s = timer.graph(point_calls(torch, ops, tokens, local, n_experts, top_k, gather, best, layouts))
    return {"copies": float(np.mean([k for k, _ in kept])), "touched": float(np.mean([t for _, t in kept])),
            "s": s, "config": list(best)}


def measure_fused(torch, timer, quick, shapes: list[GemmShape], n_experts: int, top_k: int, rotate_bytes: int,
                  log, experts: tuple[int, ...] = (), dtypes: tuple[str, ...] = ("bf16", "fp8")) -> list[dict]:
    """Rows {shape, n, k, experts, dtype, tokens, copies, touched, s, config, check} of every routed-expert
    shape (whole: :data:`WHOLE_EXPERTS` local experts; MoE TP slices: :data:`SLICE_EXPERTS`; ``experts`` for
    both when given; at most the model's ``n_experts``), in ``dtypes``, at :data:`COPIES` kept copies;
    ``copies`` and ``touched`` are means over the routing samples, ``s`` the fastest configuration's median
    (``timer``) after a search with ``quick``."""
    rows = []
    for shape in (s for s in shapes if s.per_expert):
        gather = ".gate_up" in shape.name
        counts = experts or (SLICE_EXPERTS if "/tp" in shape.name else WHOLE_EXPERTS)
        for local in (c for c in counts if c <= n_experts):
            for dtype in dtypes:
                ops = Operands(torch, shape, local, dtype, weight_copies(shape, local, dtype, top_k, rotate_bytes))
                err = check(torch, ops, top_k, gather)
                wanted = (c for c in COPIES if c <= min(MAX_ROWS_PER_EXPERT * local, COPIES[-1]))
                for tokens in sorted({rank_tokens(c, n_experts, top_k, local) for c in wanted}):
                    row = time_point(torch, timer, quick, ops, tokens, local, n_experts, top_k, gather)
                    if row:
                        rows.append({"shape": shape.name, "n": shape.n, "k": shape.k, "experts": local,
                                     "dtype": dtype, "tokens": tokens} | row | {"check": err})
                    torch.cuda.empty_cache()
                done = [r for r in rows if (r["shape"], r["experts"], r["dtype"]) == (shape.name, local, dtype)]
                log(f"  fused {shape.name:24s} x{local:<3d} {dtype:4s} (error {err:.1e}): "
                    + " ".join(f"{r['copies']:.0f}:{r['s'] * 1e6:.1f}" for r in done[::3]) + " us")
                del ops
                torch.cuda.empty_cache()
    return rows
