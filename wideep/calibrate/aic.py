"""NVIDIA AIConfigurator's silicon-measured kernel tables as a calibration source (optional ``aic`` extra).

The PyPI package ``aiconfigurator-core`` (Apache-2.0) ships parquet tables per system, engine and version
under ``aiconfigurator_core/systems/data/<system>/``. wideep reads these (docs/sources.md, section 4):

- ``moe/<engine>/<version>/moe_perf.parquet``: one rank's routed-expert layer (routing, permute, both grouped
  GEMMs, activation, unpermute), the model's expert shape (DeepSeek-V3's, gpt-oss's, ...; TensorRT-LLM's table
  by default, vLLM's or SGLang's with ``--aic-engine``), balanced routing, ``moe_tp_size`` 1, 2, 4 and 8
  (each expert's slice), latency in ms,
  ``num_tokens`` counted across the EP group -> ``[[grouped_gemm]]`` curves with ``covers = "moe_layer"``
  (the step model then adds no permute / SiLU / unpermute kernels of its own), less the work the op does on
  every one of the group's tokens (:func:`token_work`: a DeepEP rank routes, quantises and finalizes only its
  own tokens, which the step model counts as ``layer_kernels``);
- ``gemm/<engine>/<version>/gemm_perf.parquet``: ``y[m, n] = x[m, k] W`` by (m, n, k) and dtype, latency in ms
  -> ``[[gemm_shape]]`` curves for the measured shapes nearest the model's;
- ``mla/<engine>/<version>/generation_mla_perf.parquet``: the MLA decode attention kernel by batch, cached
  tokens (``step``) and KV dtype, latency in ms -> ``[attention]`` efficiencies (:func:`attention_from_mla`);
- ``attention/trtllm/<version>/generation_attention_perf.parquet``: the grouped-query decode attention kernel
  by batch, heads, KV heads, head dim, window, cached tokens and KV dtype -> ``[attention_gqa]``
  (:func:`attention_from_gqa`);
- ``comm/<engine>/<version>/custom_allreduce_perf.parquet`` where the system has it: the engine's bf16
  all-reduce by GPUs and ``message_size`` (elements), latency in ms -> ``[[allreduce]]`` (bytes, us).

Reading parquet needs ``pyarrow``; the same rows saved as CSV (benchmarks/data/aic_*.csv) need nothing.
"""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path

import numpy as np

from wideep.calibrate.fit import gemm_roofline_s
from wideep.core.errors import InputError
from wideep.perf.kernels import CALIBRATED_TP, gemm_shapes, tp_shard
from wideep.routing.stats import from_topk
from wideep.slots import contiguous_phy2log
from wideep.traffic.touched import busiest_touched, touched_slots
from wideep.specs.hardware import GPU
from wideep.specs.model import Model

#: AIC dtype -> wideep: fp8 block-scaled; mxfp4 as Blackwell runs gpt-oss, MXFP4 weights x MXFP8 activations
DTYPES = {"bfloat16": "bf16", "fp8_block": "fp8", "nvfp4": "nvfp4", "w4a8_mxfp4_mxfp8": "mxfp4"}
#: ... and as Hopper runs it, weight-only (MXFP4 weights x 16-bit activations): a GPU whose mxfp4 GEMMs compute
#: in bf16 reads these MoE rows as its mxfp4
WEIGHT_ONLY_DTYPES = {"w4a16_mxfp4": "mxfp4"}
AIC_SYSTEMS = {"h100-sxm": "h100_sxm", "h200-sxm": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200",
               "b300": "b300_sxm", "gb300": "gb300"}
MOE_TP_SIZES = (1,) + CALIBRATED_TP  # MoE tensor-parallel sizes read from the MoE table
#: The engines whose tables ``--aic-engine`` reads, and their versions (the package's current ones; trtllm the default)
ENGINE_VERSIONS = {"trtllm": "1.3.0rc20", "sglang": "0.5.14", "vllm": "0.24.0"}
#: TensorRT-LLM's trtllm-gen MoE kernel, which its ``moe_config.backend: TRTLLM`` runs, as SGLang's table names it
#: (``--moe-runner-backend flashinfer_trtllm``), and the kernels that are not it. TensorRT-LLM's own table times FP8
#: block-scaled MoE on Blackwell with DeepGEMM only (B200, MoE TP8, one token: 105 us; trtllm-gen 36 us) and nvfp4
#: on B300 and GB300 with CUTLASS only (its min-latency rows exist on B200 and GB200): for a dtype whose rows are
#: all DeepGEMM's or CUTLASS's, SGLang's trtllm-gen rows join (:func:`borrowed_trtllm_gen`).
TRTLLM_GEN_MOE = ("sglang", "sglang_flashinfer_trtllm_moe")
NOT_TRTLLM_GEN = {"deepgemm", "moe_torch_flow_cutlass", "moe_torch_flow_nongated"}


def data_root(path: str | None) -> Path:
    """The ``systems/data`` folder: ``path`` as given, else the one inside the installed package."""
    if path and path != "auto":
        root = Path(path)
        if not root.is_dir():
            raise InputError(f"no such folder: {path}", "--from-aic")
        return root
    try:
        import aiconfigurator_core
    except ImportError:
        raise InputError("needs the aiconfigurator-core package (pip install 'wideep[aic]') or a path to its "
                         "systems/data folder", "--from-aic") from None
    return Path(aiconfigurator_core.__file__).resolve().parent / "systems" / "data"


def read_rows(path: Path) -> list[dict]:
    """Rows of a parquet (pyarrow) or CSV table as dicts."""
    if path.suffix == ".csv":
        try:
            with path.open() as fh:
                return list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"cannot read the table: {exc}", str(path)) from None
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("reading AIConfigurator's parquet tables needs pyarrow (pip install 'wideep[aic]')",
                         str(path)) from None
    if not path.is_file():
        raise InputError("no such table in the AIConfigurator data", str(path))
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises its own types for a corrupt or foreign file
        raise InputError(f"cannot read the parquet table: {' '.join(str(exc).split())[:200]}", str(path)) from None


def from_rows(build, rows: list[dict], path: Path, gpu: GPU, model: Model):
    """``build(rows, gpu, model)``; a table missing a column or holding a non-number raises on ``path``."""
    try:
        return build(rows, gpu, model)
    except (KeyError, ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
        raise InputError(f"not an AIConfigurator table of the expected layout ({type(exc).__name__}: {exc})",
                         str(path)) from None


def balanced_topk(tokens: int, n_experts: int, top_k: int) -> np.ndarray:
    """AIConfigurator's "balanced" routing of its MoE collector, shape (tokens, top_k) of expert ids.

    Token i takes experts (i + j x stride) mod E, j < top_k, stride = ceil(E / top_k); with fewer tokens
    than the stride token i starts at floor(i x stride / tokens) instead, so the tokens spread over all
    experts (docs/sources.md, section 4).

    >>> balanced_topk(2, 8, 2).tolist()
    [[0, 4], [2, 6]]
    """
    stride = -(-n_experts // top_k)
    i = np.arange(tokens)[:, None]
    start = i if tokens >= stride else (i * stride) // tokens
    return (start + np.arange(top_k)[None, :] * stride) % n_experts


@functools.lru_cache(maxsize=None)
def balanced_active(tokens: int, ep: int, model: Model) -> float:
    """Experts the busiest rank's grouped GEMM reads under :func:`balanced_topk` (counted, contiguous layout)."""
    ids = balanced_topk(tokens, model.n_experts, model.top_k)
    stats = from_topk(ids[None].astype(np.int32), model.n_experts)
    sel, hit = touched_slots(contiguous_phy2log(1, model.n_experts, model.n_experts), stats, ep, tokens,
                             model.top_k)
    return busiest_touched(sel, hit)


#: EP sizes over which AIC's MoE rows separate per-token from per-row work: few enough local experts that
#: their rows set the rest (at EP 8 TensorRT-LLM's nvfp4 CUTLASS kernel costs ~8 us per local expert beyond its
#: rows: 277 us at 64 tokens on GB200 EP8, 100 at EP16), enough that the grouped GEMM runs alike (not 1-2)
TOKEN_FIT_EPS = (16, 32, 64)
#: Mean relative miss of the per-N fits above which the rows do not follow the split (no per-token work taken out)
TOKEN_FIT_MISS = 0.10


def token_work(rows: list[dict]) -> tuple[float, float]:
    """(fixed s, s per token) of the work AIC's MoE op does for every one of its ``num_tokens`` N, whatever
    the EP size: one rank's op routes, quantises and finalizes all N tokens of the EP group, besides its
    local experts' rows. So latency(N, ep) = fixed + per_token x N + rows(N) / ep: fitted per N over
    :data:`TOKEN_FIT_EPS` (intercept = fixed + per_token x N), then over N. (0, 0) where the rows hold fewer
    than three EP sizes at three token counts, miss their fits by more than :data:`TOKEN_FIT_MISS` on average,
    or give a negative part. ``rows``: one kernel, dtype and MoE TP size.
    """
    by_tokens: dict[int, dict[int, float]] = {}
    for r in rows:
        if int(r["moe_ep_size"]) in TOKEN_FIT_EPS:
            by_tokens.setdefault(int(r["num_tokens"]), {})[int(r["moe_ep_size"])] = float(r["latency"]) * 1e-3
    points, misses = [], []
    for tokens, lat in sorted(by_tokens.items()):
        if len(lat) >= 3:
            inv_ep, seconds = np.array([1.0 / ep for ep in lat]), np.array(list(lat.values()))
            slope, intercept = np.polyfit(inv_ep, seconds, 1)
            misses += list(np.abs(intercept + slope * inv_ep - seconds) / seconds)
            points.append((tokens, intercept))
    if len(points) < 3 or np.mean(misses) > TOKEN_FIT_MISS:
        return 0.0, 0.0
    per_token, fixed = np.polyfit(*np.array(points).T, 1)
    return (float(fixed), float(per_token)) if fixed > 0 and per_token > 0 else (0.0, 0.0)


def moe_dtypes(gpu: GPU) -> dict[str, str]:
    """AIC MoE dtype -> wideep dtype on ``gpu``: MXFP4 with MXFP8 activations where it has FP4 tensor cores,
    weight-only MXFP4 where its mxfp4 GEMMs compute in bf16 (Hopper)."""
    if gpu.compute_dtype("mxfp4") != "bf16":
        return DTYPES
    return {k: v for k, v in DTYPES.items() if v != "mxfp4"} | WEIGHT_ONLY_DTYPES


def model_rows(rows: list[dict], model: Model, dtypes: dict[str, str]) -> list[dict]:
    """The rows of ``model``'s expert shape, balanced routing, a dtype wideep reads and a MoE TP size it keeps."""
    return [r for r in rows
            if int(r["hidden_size"]) == model.hidden and int(r["inter_size"]) == model.expert_ffn
            and int(r["topk"]) == model.top_k and int(r["num_experts"]) == model.n_experts
            and int(r["moe_tp_size"]) in MOE_TP_SIZES and r["distribution"] == "balanced"
            and r["moe_dtype"] in dtypes]


def grouped_from_moe(rows: list[dict], gpu: GPU, model: Model) -> list[dict]:
    """One curve per EP size and MoE tensor-parallel size (``experts`` = local experts, each GEMM the rank's
    slice, :func:`~wideep.perf.kernels.tp_shard`; ``moe_tp`` the slice's MoE TP size where above 1): m = copies
    per expert touched as a plan estimates them at that many tokens (the even spread), efficiency = roofline of
    the experts AIC's balanced routing read (:func:`balanced_active`) / the layer's time beyond its fixed time
    (``fixed_us``, :func:`layer_fixed_s`; a plan adds it once per layer), at each token count the fastest
    kernel's. The layer's time is the measured one
    less the per-token work over the EP group's tokens of the kernel that ran it (:func:`token_work`; a plan
    counts that on each GPU's own tokens, ``layer_kernels``). A row of another engine's table (``borrowed``)
    counts no faster than its experts' roofline: that harness routes otherwise (AIConfigurator's SGLang rows
    beat the roofline of the experts a balanced pattern touches: B200, FP8, EP1, 64 tokens, 939 against 1,220 us)."""
    whole = [g for g in gemm_shapes(model) if g.per_expert]
    dtypes = moe_dtypes(gpu)
    mine = model_rows(rows, model, dtypes)
    kernels: dict[tuple, list[dict]] = {}
    for r in mine:
        kernels.setdefault((r["moe_dtype"], int(r["moe_tp_size"]), r.get("kernel_source", "")), []).append(r)
    work = {key: token_work(kernel_rows) for key, kernel_rows in kernels.items()}
    by_ep: dict[tuple, dict[int, tuple[float, ...]]] = {}  # (tp, ep, dtype) -> tokens -> (measured s, m, roof s, layer s)
    for r in mine:
        ep, tp, tokens, dt = int(r["moe_ep_size"]), int(r["moe_tp_size"]), int(r["num_tokens"]), dtypes[r["moe_dtype"]]
        experts = model.n_experts // ep
        copies = tokens * model.top_k / ep  # on every rank, balanced
        # keyed by the m a plan sees at this many tokens: random routing's, the even-spread estimate (a random
        # sample touches about as many experts: +4%, tests/test_touched.py); the roofline is the one of the
        # experts AIC's balanced routing read, more where copies are about as many as experts (32 tokens of
        # gpt-oss, 128 experts: all 128 against 81)
        spread = max(min(1.0, copies), experts * -np.expm1(-copies / experts))
        read = balanced_active(tokens, ep, model)
        m = copies / spread
        roof_s = sum(gemm_roofline_s(gpu, dt, copies / read, g.n, g.k, read)
                     for g in (tp_shard(g, tp) for g in whole))
        measured_s = float(r["latency"]) * 1e-3
        if r.get("borrowed"):  # another harness, which routes otherwise: no faster than the experts' bytes at peak
            measured_s = max(measured_s, roof_s)
        work_fixed_s, per_token_s = work[r["moe_dtype"], tp, r.get("kernel_source", "")]
        layer_s = max(measured_s - per_token_s * tokens, min(work_fixed_s, measured_s))
        points = by_ep.setdefault((tp, ep, dt), {})  # the kernel an engine would pick: the faster as measured
        if tokens not in points or measured_s < points[tokens][0]:
            points[tokens] = (measured_s, m, roof_s, layer_s)
    curves = []
    for (tp, ep, dt), points in sorted(by_ep.items()):
        by_tokens = no_faster_with_more_tokens({tokens: p[1:] for tokens, p in points.items()})
        fixed_s = layer_fixed_s(by_tokens)
        pts = {}  # one point per m; at one copy per expert (several token counts) the most tokens' row
        for tokens in sorted(by_tokens):
            m, roof_s, layer_s = by_tokens[tokens]
            pts[m] = min(1.0, roof_s / max(layer_s - fixed_s, roof_s))
        pts = sorted(pts.items())
        slice_name = f"/tp{tp}" if tp > 1 else ""
        for g in (tp_shard(g, tp) for g in whole):  # one efficiency for both GEMMs: their times add up to the layer's
            curves.append({"shape": f"{g.name}{slice_name}.moe_layer", "n": g.n, "k": g.k,
                           "experts": model.n_experts // ep,
                           "dtype": dt, "m": [p[0] for p in pts], "efficiency": [p[1] for p in pts],
                           "covers": "moe_layer", "fixed_us": round(fixed_s * 1e6, 2)}
                          | ({"moe_tp": tp} if tp > 1 else {}))
    return curves


def no_faster_with_more_tokens(by_tokens: dict[int, tuple[float, float, float]]) -> dict:
    """One EP and MoE TP size's rows (tokens -> (m, roofline s, layer s)) with each layer time at least the
    one of fewer tokens: a token count where another kernel (or another harness) wins is not let dip below the
    curve (B300, FP8, EP1, all 256 experts read: 1,495 us at m = 48 after 2,043 at m = 32)."""
    out, slowest_s = {}, 0.0
    for tokens in sorted(by_tokens):
        m, roof_s, layer_s = by_tokens[tokens]
        slowest_s = max(slowest_s, layer_s)
        out[tokens] = (m, roof_s, slowest_s)
    return out


def layer_fixed_s(by_tokens: dict[int, tuple[float, float, float]]) -> float:
    """Seconds of one MoE layer that do not grow with the experts it reads (routing, launches, the sort and
    the finalize), from one EP and MoE TP size's rows (tokens -> (m, roofline s of the experts touched, layer
    s)): the fewest tokens' layer time beyond its experts' roofline. There every rank touches one expert or a
    few, and the time is almost all fixed (B300, SGLang's TensorRT-LLM MoE, nvfp4, EP8: 36 us at one token,
    of which 3 us is the expert's bytes at the HBM peak); an efficiency alone charged it again for every
    further expert a rank touched (four experts: ~130 us against the table's 46 us at four tokens)."""
    _, roof_s, layer_s = by_tokens[min(by_tokens)]
    return max(0.0, layer_s - roof_s)


def shapes_from_gemm(rows: list[dict], gpu: GPU, model: Model) -> list[dict]:
    """For each of the model's weight shapes, whole and one rank's slice under tensor parallelism 2, 4 and 8,
    the measured (n, k) nearest it, by dtype: m -> efficiency."""
    table: dict[tuple, list[tuple[int, float]]] = {}
    for r in rows:
        if r["gemm_dtype"] in DTYPES:
            key = (int(r["n"]), int(r["k"]), DTYPES[r["gemm_dtype"]])
            table.setdefault(key, []).append((int(r["m"]), float(r["latency"]) * 1e-3))
    if not table:
        return []
    measured = np.array([(n, k) for n, k, _ in table], dtype=float)
    curves, done = [], set()
    for g in gemm_shapes(model, CALIBRATED_TP):
        if g.per_expert:
            continue
        dist = np.abs(np.log(measured[:, 0] / g.n)) + np.abs(np.log(measured[:, 1] / g.k))
        n, k = (int(v) for v in measured[int(dist.argmin())])
        for dt in DTYPES.values():
            if (n, k, dt) in table and (n, k, dt) not in done:
                done.add((n, k, dt))
                pts = sorted(dict(table[n, k, dt]).items())
                curves.append({"shape": f"aic {n}x{k}", "n": n, "k": k, "dtype": dt, "m": [p[0] for p in pts],
                               "efficiency": [min(1.0, gemm_roofline_s(gpu, dt, m, n, k) / s) for m, s in pts]})
    return curves


#: Efficiencies tried by :func:`attention_from_mla` (a grid: two numbers, a few hundred rows)
EFFICIENCY_GRID = np.round(np.arange(0.10, 1.0001, 0.01), 2)
#: Fixed time per sequence tried, as the score FLOPs of that many more cached tokens at the peak
SEQUENCE_TOKENS_GRID = np.arange(0.0, 4000.1, 16.0)
#: Rows of the MLA table within this many times its fastest are launch- and ramp-bound, not roofline-bound
ROOFLINE_ROWS = 8.0
#: ... and rows with fewer cached tokens are bound by the query and output (128 heads x 1,088 values per token,
#: which the step model does not count): from 2,048 tokens on the KV is at least 90% of the kernel's bytes
KV_BOUND_CONTEXT = 2048


def fastest_us(rows: list[dict]) -> float:
    """The fastest row's latency, us (0 without rows): a GPU's per-kernel floor (launch and tail under a CUDA
    graph) as its engine runs the smallest problems of the table."""
    return min((float(r["latency"]) for r in rows), default=0.0) * 1e3


def one_rank_mla(rows: list[dict], model: Model) -> list[dict]:
    """The MLA decode rows of ``model``'s heads on one rank."""
    return [r for r in rows if int(r["num_heads"]) == model.attention.heads and int(r["tp_size"]) == 1]


#: The memory side of the MLA kernel is fitted on the rows of one rank of this attention TP: DeepSeek's 128 heads
#: leave 16 a rank, 30 score FLOPs per cached byte in bf16, far below every GPU's ridge (at 128 heads, 242 FLOPs
#: per byte, the kernel is near the ridge and its bytes cannot be told from its FLOPs)
MLA_MEMORY_TP = 8


def mla_row_work(r: dict, model: Model) -> tuple[float, float, float]:
    """(score FLOPs, KV bytes, FLOPs of one more cached token for every sequence) of one MLA decode row, one
    layer of ``model`` at the row's heads a rank, as the step model counts them."""
    from wideep.perf.memory import Precision, kv_read_bytes_per_sequence

    kv = DTYPES.get(r["kv_cache_dtype"], r["kv_cache_dtype"])
    share = int(r["num_heads"]) / model.attention.heads
    batch, context = int(r["batch_size"]), int(r["isl"]) + int(r["step"])
    one_more = model.score_flops_per_token(1.0) - model.score_flops_per_token(0.0)
    return (batch * model.score_flops_per_token(context) * share / model.layers,
            batch * kv_read_bytes_per_sequence(model, context, Precision(kv=kv)) / model.layers,
            batch * one_more * share / model.layers)


def mla_points(rows: list[dict], model: Model, heads: int) -> dict[str, list[tuple[float, float, float, float]]]:
    """{KV dtype: [(:func:`mla_row_work`, seconds)]} of the MLA rows at ``heads`` query heads a rank, at least
    :data:`ROOFLINE_ROWS` times those rows' fastest and :data:`KV_BOUND_CONTEXT` tokens long."""
    mine = [r for r in rows if int(r["num_heads"]) == heads]
    floor_s = fastest_us(mine) * 1e-6
    sides: dict[str, list[tuple[float, float, float, float]]] = {"bf16": [], "fp8": []}
    for r in mine:
        kv, seconds = DTYPES.get(r["kv_cache_dtype"], r["kv_cache_dtype"]), float(r["latency"]) * 1e-3
        if kv in sides and seconds >= ROOFLINE_ROWS * floor_s and int(r["isl"]) + int(r["step"]) >= KV_BOUND_CONTEXT:
            sides[kv].append((*mla_row_work(r, model), seconds))
    return sides


def attention_from_mla(rows: list[dict], gpu: GPU, model: Model) -> dict:
    """``[attention]`` of ``gpu`` from the MLA decode kernel's rows, timed as the step model times ``attn_core``
    (score FLOPs over the cached tokens, the KV they read, plus a fixed work per sequence), on the rows at least
    :data:`ROOFLINE_ROWS` times their fastest and :data:`KV_BOUND_CONTEXT` tokens long (:func:`mla_points`).

    The KV side, ``hbm_efficiency`` (bf16 cache) and ``hbm_efficiency_fp8``, is fitted on one rank of
    :data:`MLA_MEMORY_TP` (``model``'s heads / 8 a rank, memory-bound), the FLOPs at their peak; the FLOP side on
    ``model``'s heads on one rank (the other rows: 64 to 1 heads a rank, held out, benchmarks/mla_validation.py).
    There the rows' efficiency rises with the context at every batch (B200, 1,024 sequences, fp8: 0.39 of the
    peak at 2,048 tokens, 0.62 at 16,384), which a fixed time per sequence (loading and quantising its query,
    writing its output) explains, counted as the score FLOPs of ``sequence_tokens`` more cached tokens at the peak
    (so that it scales with another model's heads; at the peak, so that it does not trade against the
    efficiency): ``flops_efficiency`` and ``sequence_tokens`` are fitted together on the bf16-KV rows,
    ``flops_efficiency_fp8`` (against the fp8 peak: the kernel multiplies in fp8) and ``sequence_tokens_fp8`` on
    the fp8-KV rows (least squares in log time, the KV side at its fitted efficiency). Without rows at the
    memory side's heads, ``hbm_efficiency`` is the one that explains the model's rows alone (FLOPs at their
    peak) and the FLOP side is fitted with the KV at its peak. Every model's decode attention takes these
    (AIConfigurator times other attention kernels elsewhere; not read)."""
    sides = mla_points(one_rank_mla(rows, model), model, model.attention.heads)
    if not sides["bf16"]:
        return {}
    memory = mla_points(rows, model, model.attention.heads // MLA_MEMORY_TP)
    bf16, fp8, hbm = gpu.flops("bf16"), gpu.flops(gpu.compute_dtype("fp8") or "bf16"), gpu.hbm_Bps
    if memory["bf16"]:
        e_h = roofline_fit(memory["bf16"], bf16, hbm, flops_efficiency=1.0)[0]
        e_h8 = roofline_fit(memory["fp8"], fp8, hbm, flops_efficiency=1.0)[0] if memory["fp8"] else e_h
        out = {"hbm_efficiency": e_h, "hbm_efficiency_fp8": e_h8}
    else:
        e_h = e_h8 = 1.0
        out = {"hbm_efficiency": roofline_fit(sides["bf16"], bf16, hbm, flops_efficiency=1.0)[0]}
    e_f, tokens = roofline_fit(sides["bf16"], bf16, hbm, hbm_efficiency=e_h)
    out |= {"flops_efficiency": e_f, "sequence_tokens": tokens}
    if sides["fp8"] and gpu.compute_dtype("fp8"):
        e_f8, tokens8 = roofline_fit(sides["fp8"], fp8, hbm, hbm_efficiency=e_h8)
        out |= {"flops_efficiency_fp8": e_f8, "sequence_tokens_fp8": tokens8}
    return out


#: The one shape the grouped-query attention kernel is fitted on: (query heads, KV heads, head dim) of one rank,
#: Llama-3.1-70B's on one GPU (gpt-oss's, Qwen3's and every other catalog GQA shape, and the windows, are held out)
GQA_FIT_SHAPE = (64, 8, 128)
#: Rows that time the work units alone: at most this many cached tokens and at least this many sequences (the
#: KV they stream is a few percent of their time)
GQA_UNIT_CONTEXT, GQA_UNIT_BATCH = 16, 256
#: Rows that give the streaming ramp: at least this many times the table's fastest (launch-bound rows say nothing
#: of the rate), their units' time at most this share of theirs (the stream binds)
GQA_RAMP_ROWS, GQA_UNIT_SHARE = 1.2, 0.3
#: The ramp's sizes (KV bytes one call reads, from 256 KiB doubling up to 1 GiB, as far as the rows reach), each
#: the median of the rows within a factor GQA_RAMP_SPREAD of it
GQA_RAMP_BYTES, GQA_RAMP_SPREAD = tuple(2 ** k for k in range(18, 31)), math.exp(0.5)
#: GQA rows fitted have at least this many sequences (fewer leave most SMs idle: TensorRT-LLM then splits each
#: sequence's context over blocks, which a serving batch does not need)
GQA_MIN_BATCH = 8


def gqa_row(r: dict) -> tuple[float, float, float]:
    """(KV bytes read, sequences x KV heads, seconds) of one generation-attention row (no window: every cached
    token of every KV head, K and V)."""
    kv = DTYPES.get(r["kv_cache_dtype"], r["kv_cache_dtype"])
    batch, context, heads = int(r["batch_size"]), int(r["isl"]) + int(r["step"]), int(r["num_key_value_heads"])
    return (batch * context * heads * int(r["head_dim"]) * 2 * (1 if kv == "fp8" else 2), batch * heads,
            float(r["latency"]) * 1e-3)


def attention_from_gqa(rows: list[dict], gpu: GPU) -> dict:
    """``[attention_gqa]`` of ``gpu`` from the grouped-query decode kernel's rows (TensorRT-LLM's
    ``generation_attention`` table) at :data:`GQA_FIT_SHAPE`, no window, at least :data:`GQA_MIN_BATCH`
    sequences, per KV dtype (the fp8 cache runs another kernel); one shape serves every model. Time = the longer
    of KV bytes / (HBM x e(bytes)) and sequences x KV heads x ``kv_head_us`` (the work units and the stream
    overlap), at least ``floor_us`` (the fastest row): ``kv_head_us`` is the median time per unit of the
    short-context rows (:data:`GQA_UNIT_CONTEXT`), and e a ramp over the KV bytes of one call (``ramp_bytes``,
    ``ramp_efficiency``; ``hbm_efficiency`` its largest) from the rows the stream binds (:func:`stream_ramp`).
    A dtype whose rows give no unit time or no ramp is left out; {} without the bf16 one."""
    sides: dict[str, list] = {"bf16": [], "fp8": []}
    for r in rows:
        if ((int(r["num_heads"]), int(r["num_key_value_heads"]), int(r["head_dim"])) == GQA_FIT_SHAPE
                and not int(r["window_size"]) and int(r["batch_size"]) >= GQA_MIN_BATCH):
            context = int(r["isl"]) + int(r["step"])
            short = context <= GQA_UNIT_CONTEXT and int(r["batch_size"]) >= GQA_UNIT_BATCH
            sides.setdefault(DTYPES.get(r["kv_cache_dtype"], r["kv_cache_dtype"]), []).append((*gqa_row(r), short))
    out = {}
    for kv in ("bf16", "fp8"):
        points = sides[kv]
        if not any(p[3] for p in points):
            continue  # no short-context rows: the unit time is not measured
        floor_s = min(p[2] for p in points)
        unit_s = float(np.median([t / n for _, n, t, short in points if short]))
        ramp = stream_ramp(points, unit_s, floor_s, gpu.hbm_Bps)
        if ramp[0]:
            suffix = "" if kv == "bf16" else "_fp8"
            out |= {f"hbm_efficiency{suffix}": ramp[1][-1], f"kv_head_us{suffix}": round(unit_s * 1e6, 5),
                    f"floor_us{suffix}": round(floor_s * 1e6, 2), f"ramp_bytes{suffix}": ramp[0],
                    f"ramp_efficiency{suffix}": ramp[1]}
    return out if "kv_head_us" in out else {}


def stream_ramp(points: list[tuple], unit_s: float, floor_s: float, peak_Bps: float) -> tuple[list, list]:
    """(bytes, efficiencies) of the KV stream: each row of ``points`` (bytes, units, seconds, ...) at least
    :data:`GQA_RAMP_ROWS` times ``floor_s`` whose units take at most :data:`GQA_UNIT_SHARE` of its time at
    ``unit_s`` each reads e = bytes / (peak x seconds); at each size of :data:`GQA_RAMP_BYTES` the median of
    the rows within a factor :data:`GQA_RAMP_SPREAD`, at most 1 (sizes without rows left out)."""
    read = [(b, b / (peak_Bps * t)) for b, n, t, *_ in points
            if t >= GQA_RAMP_ROWS * floor_s and n * unit_s <= GQA_UNIT_SHARE * t]
    sizes, effs = [], []
    for size in GQA_RAMP_BYTES:
        near = [e for b, e in read if size / GQA_RAMP_SPREAD <= b <= size * GQA_RAMP_SPREAD]
        if near:
            sizes.append(size)
            effs.append(round(min(1.0, float(np.median(near))), 4))
    return sizes, effs


def roofline_fit(points: list[tuple[float, float, float, float]], peak_flops: float, peak_Bps: float,
                 flops_efficiency: float | None = None, hbm_efficiency: float | None = None) -> tuple[float, float]:
    """(efficiency, sequence tokens): the efficiency of :data:`EFFICIENCY_GRID` for the side not given (the other
    one fixed) and the tokens of :data:`SEQUENCE_TOKENS_GRID` whose max(flops / (peak x e_f), bytes / (peak x e_h)) + tokens
    x flops per cached token / peak has the least squared log error against the measured seconds of
    ``points`` (flops, bytes, score FLOPs of one more cached token for every sequence, seconds)."""
    f, b, q, t = (np.array(c, dtype=float)[None, None, :] for c in zip(*points))
    grid = EFFICIENCY_GRID[:, None, None]
    e_f, e_h = (grid, hbm_efficiency) if flops_efficiency is None else (flops_efficiency, grid)
    model_s = (np.maximum(f / (peak_flops * e_f), b / (peak_Bps * e_h))
               + q * SEQUENCE_TOKENS_GRID[None, :, None] / peak_flops)
    err = (np.log(model_s / t) ** 2).sum(axis=2)
    i, j = np.unravel_index(int(err.argmin()), err.shape)
    return float(EFFICIENCY_GRID[i]), float(SEQUENCE_TOKENS_GRID[j])


def allreduce_series(rows: list[dict], gpu: GPU, model: Model) -> list[dict]:
    """One ``[[allreduce]]`` entry per GPU count of the bf16 rows: message bytes -> us, sizes increasing."""
    del gpu, model  # one table per system, whatever the model
    by_gpus: dict[int, dict[int, float]] = {}
    for r in rows:
        if r["allreduce_dtype"] == "bfloat16":
            by_gpus.setdefault(int(r["num_gpus"]), {})[2 * int(r["message_size"])] = float(r["latency"]) * 1e3
    return [{"gpus": n, "bytes": sorted(pts), "us": [round(pts[b], 3) for b in sorted(pts)]}
            for n, pts in sorted(by_gpus.items())]


def aic_tables(root: Path, gpu: GPU, models: list[Model], engine: str = "trtllm") -> tuple[dict, dict]:
    """(calibration tables, stamp) from the AIC data of ``gpu``'s system for ``engine``: the curves of every
    model's shapes the tables hold, each distinct curve once (a plan takes the nearest measured shape)."""
    system = AIC_SYSTEMS.get(gpu.id)
    if system is None:
        raise InputError(f"AIConfigurator has no data for {gpu.id} (it has {', '.join(AIC_SYSTEMS)})", "--gpu")
    version = ENGINE_VERSIONS.get(engine)
    if version is None:
        raise InputError(f"unknown engine {engine!r} (choose {', '.join(ENGINE_VERSIONS)})", "--aic-engine")
    moe = root / system / "moe" / engine / version / "moe_perf.parquet"
    gemm = root / system / "gemm" / engine / version / "gemm_perf.parquet"
    moe_rows, gemm_rows = read_rows(moe), read_rows(gemm)
    tables = {"gemm_shape": distinct(from_rows(shapes_from_gemm, gemm_rows, gemm, gpu, m) for m in models)}
    stamp = {"source": "NVIDIA AIConfigurator (aiconfigurator-core), Apache-2.0", "engine": f"{engine} {version}",
             "moe_table": str(moe.relative_to(root)), "gemm_table": str(gemm.relative_to(root))}
    moe_rows += borrowed_trtllm_gen(root, system, engine, moe_rows, stamp)
    tables["grouped_gemm"] = distinct(from_rows(grouped_from_moe, moe_rows, moe, gpu, m) for m in models)
    tables["kernel"] = {"gemm_floor_us": fastest_us(gemm_rows)} if gemm_rows else {}
    mla = root / system / "mla" / engine / version / "generation_mla_perf.parquet"
    mla_models = [m for m in models if m.attention.kind == "mla"]
    if mla.is_file() and mla_models:
        mla_rows = read_rows(mla)
        attention = from_rows(attention_from_mla, mla_rows, mla, gpu, mla_models[0])
        if attention:
            tables["attention"] = attention
            tables["kernel"]["attention_floor_us"] = fastest_us(one_rank_mla(mla_rows, mla_models[0]))
            stamp["attention_table"] = str(mla.relative_to(root))
    gqa = root / system / "attention" / engine / version / "generation_attention_perf.parquet"
    gqa_models = [m for m in models if m.attention.kind == "gqa"]
    if engine == "trtllm" and gqa.is_file() and gqa_models:  # the other engines' tables: held out
        attention_gqa = from_rows(lambda rows, g, _: attention_from_gqa(rows, g), read_rows(gqa), gqa, gpu,
                                  gqa_models[0])
        if attention_gqa:
            tables["attention_gqa"] = attention_gqa
            stamp["attention_gqa_table"] = str(gqa.relative_to(root))
    allreduce = root / system / "comm" / engine / version / "custom_allreduce_perf.parquet"
    series = from_rows(allreduce_series, read_rows(allreduce), allreduce, gpu, models[0]) if allreduce.is_file() else []
    if series:
        tables["allreduce"] = series
        stamp["allreduce_table"] = str(allreduce.relative_to(root))
    return tables, stamp


def borrowed_trtllm_gen(root: Path, system: str, engine: str, own_rows: list[dict], stamp: dict) -> list[dict]:
    """TensorRT-LLM's trtllm-gen MoE rows from SGLang's table (``borrowed``) for the dtypes of ``own_rows`` that
    only DeepGEMM or CUTLASS ran (:data:`TRTLLM_GEN_MOE`), when ``engine`` is TensorRT-LLM; the table read is
    named in ``stamp``."""
    other, kernel = TRTLLM_GEN_MOE
    table = root / system / "moe" / other / ENGINE_VERSIONS[other] / "moe_perf.parquet"
    if engine != "trtllm" or not table.is_file():
        return []
    kernels: dict[str, set] = {}
    for r in own_rows:
        kernels.setdefault(r["moe_dtype"], set()).add(r.get("kernel_source", ""))
    lacking = {dtype for dtype, names in kernels.items() if names <= NOT_TRTLLM_GEN}
    rows = [r | {"borrowed": True} for r in read_rows(table)
            if r.get("kernel_source") == kernel and r["moe_dtype"] in lacking]
    for dtype in sorted({r["moe_dtype"] for r in rows}):
        stamp[f"moe_table_{kernel}_{dtype}"] = str(table.relative_to(root))
    return rows


def distinct(curve_lists) -> list[dict]:
    """The curves of several models, each (n, k, local experts, dtype, what it covers, MoE TP size) once, in
    first-seen order."""
    seen, out = set(), []
    for curves in curve_lists:
        for c in curves:
            key = (c["n"], c["k"], c.get("experts", 1), c["dtype"], c.get("covers", "gemm"), c.get("moe_tp", 1))
            if key not in seen:
                seen.add(key)
                out.append(c)
    return out
