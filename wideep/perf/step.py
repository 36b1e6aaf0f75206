"""Step time of one EP group (decode or prefill) on its busiest GPU, kernel by kernel.

Each kernel of a layer (:mod:`wideep.perf.kernels`) takes max(per-kernel floor, roofline / efficiency),
the efficiency measured for its shape where the calibration has it (:mod:`wideep.perf.roofline`). Terms
(each a :class:`~wideep.perf.roofline.Term` naming its binding resource):

- ``attn_core``: KV read and score FLOPs at bf16 peak (MLA absorbed in decode, as DeepSeek runs it; not
  absorbed in prefill), efficiency from ``[attention]`` (decode) or ``[hbm]``/``[flops]`` (prefill);
- ``attn_proj``, ``dense_ffn``, ``shared_experts``, ``lm_head``: one GEMM per weight shape, M = tokens;
- ``routed_experts``: grouped GEMMs over the experts the busiest GPU's copies touch (copies = tokens x top_k
  x ep_size x busiest share, from placement and routing), plus permute, SiLU-mul and unpermute;
- ``layer_kernels``: norms, RoPE, KV write, router GEMM and top-k, weighted sum (memory-bound kernels);
- ``dispatch``, ``combine``: the traffic model's per-MoE-layer curve at these tokens per GPU;
- ``tp_allreduce``: with attention tensor parallelism (``tp`` > 1), two all-reduces of the group's
  activations per layer (after attention, after the FFN or MoE), on the compute stream.

Tensor parallelism: a group of ``tp`` GPUs serves ``batch`` sequences (decode) or a chunk of
``prefill_tokens`` (prefill); attention, dense FFNs, shared experts and the LM head run on all the group's
tokens with each rank's slice of the weights (:func:`~wideep.perf.kernels.tp_shard`), heads and KV
(:func:`~wideep.perf.memory.kv_rank_bytes`); each rank then dispatches 1/tp of the tokens to the experts. With
MoE tensor parallelism (``moe_tp`` > 1, the attention group spanning the EP group) there is no all-to-all:
each of the group's ``tp / moe_tp`` expert ranks runs all the tokens routed to its experts, each GPU with its
1/moe_tp slice of every expert.

Schedules: :func:`schedule` (one micro-batch, or two overlapping communication inside each MoE layer).
MTP (``mtp`` draft tokens with acceptance ``acceptance``): every sequence feeds 1 + mtp tokens per step and
emits 1 + a + a^2 + ... tokens; each MTP module counts as one more MoE layer and one more LM head.
"""

from __future__ import annotations

import math
from dataclasses import replace

from wideep.core import units
from wideep.core.errors import InputError
from wideep.specs.hardware import GPU
from wideep.perf.memory import (OPTIONS, Precision, kv_rank_bytes, kv_read_bytes_per_sequence, kv_share,
                                 linear_state_bytes)
from wideep.specs.model import Model
from wideep.perf.kernels import (BF16_BYTES, GemmShape, MemoryKernel, attention_gemms, attention_kernels, dense_kernels,
                                 ffn_gemms, linear_attention_gemms, moe_kernels, tp_shard)
from wideep.perf.roofline import Calibration, GqaAttention, Term, roofline
from wideep.perf.workload import ExpertParallel, StepResult, Workload

# Calibration tables each compute term reads, most specific first (the first one the calibration has wins).
TERM_TABLES = {"attn_core": ("attention",), "attn_proj": ("gemm_shape", "gemm"), "dense_ffn": ("gemm_shape", "gemm"),
               "shared_experts": ("gemm_shape", "gemm"), "lm_head": ("gemm_shape", "gemm"),
               "routed_experts": ("grouped_gemm", "gemm"), "layer_kernels": ("memory_kernel", "kernel")}
def calibration_sources(cal: Calibration, transport_source: str = "", tp: int = 1,
                        weights: str = "", *, attention: str) -> dict[str, str]:
    """Term -> "file (table)" that set its efficiency; dispatch and combine -> ``transport_source`` (the
    transport file and table, :attr:`wideep.traffic.transports.Transport.source`); the all-reduce of a
    ``tp``-GPU attention group -> the measured series or the collective model's file. The routed experts in
    ``weights`` take the grouped curves only where the calibration has some in that dtype (else the ``[gemm]``
    curve), named ``grouped_gemm_<dtype>`` where the file's stamp says another table gave that dtype's; a
    grouped-query model's (``attention``: its attention kind, "gqa") decode attention takes ``[attention_gqa]``
    where the file has it."""
    have = dict(cal.sources)
    out = {}
    for term, tables in TERM_TABLES.items():
        if term == "routed_experts" and weights and not any(c.dtype == weights for c in cal.grouped):
            tables = tables[1:]
        if term == "attn_core" and attention == "gqa":
            tables = ("attention_gqa", *tables)
        table = next((t for t in tables if t in have), tables[-1])
        out[term] = f"{have.get(table, 'default.toml')} [{table}]"
        if table == "grouped_gemm" and have.get(f"grouped_gemm_{weights}") == have[table]:
            out[term] = f"{have[table]} [grouped_gemm_{weights}]"
    if transport_source:
        out["dispatch"] = out["combine"] = transport_source
    if tp > 1:
        out["tp_allreduce"] = (f"{have['allreduce']} [allreduce]" if cal.has_allreduce(tp)
                               else "collectives/allreduce.toml")
    if "overlap" in have:
        out["overlap"] = f"{have['overlap']} [overlap]"
    return out


def check_dtypes(gpu: GPU, prec: Precision) -> None:
    """Every compute dtype must exist on the GPU (nvfp4 on Hopper is an error naming the option)."""
    for which in ("weights", "attention"):
        name = getattr(prec, which)
        prec.dt(which)
        if not gpu.compute_dtype(name):
            raise InputError(f"{gpu.name} ({gpu.arch}) has no {name} tensor cores; "
                             f"choose {' or '.join(gpu.flops_per_s)}", OPTIONS[which])
    if prec.dt("kv").name == "nvfp4" and "nvfp4" not in gpu.flops_per_s:
        raise InputError(f"{gpu.name} ({gpu.arch}) has no nvfp4 support for the KV cache", OPTIONS["kv"])


def total(name: str, terms: list[Term]) -> Term:
    """One reported term from several kernels: times, SOL, FLOPs and bytes add; the slowest kernel's binding."""
    if not terms:
        return Term(name, 0.0, 0.0, "hbm")
    return Term(name, sum(t.time_s for t in terms), sum(t.sol_s for t in terms),
                max(terms, key=lambda t: t.time_s).binding, sum(t.flops for t in terms),
                sum(t.hbm_bytes for t in terms), terms[0].comm)


def activation_dtype(gpu: GPU, weights_name: str) -> units.DType:
    """Format of the activations beside weights of ``weights_name``: the format the GEMM computes in (bf16 for
    weight-only formats, int4 and mxfp4 on Hopper)."""
    return units.DTYPES[gpu.compute_dtype(weights_name) or weights_name]


def gemm_kernel(shape: GemmShape, m: float, dt_name: str, gpu: GPU, cal: Calibration, experts: float = 0.0,
                local_experts: int = 0, floor_s: float | None = None, moe_tp: int = 1) -> Term:
    """One GEMM of ``m`` rows, or one grouped GEMM over ``experts`` active experts of ``m`` rows each.

    Time = max(per-kernel floor, roofline / efficiency), the efficiency measured for this shape (grouped: and
    this many ``local_experts``, a 1/``moe_tp`` slice of each) where the calibration has it, else the
    calibration's curve by m; the floor is the calibration's GEMM floor unless ``floor_s`` is given.
    """
    floor_s = cal.gemm_floor_s if floor_s is None else floor_s
    dt, out_dt = units.DTYPES[dt_name], units.DTYPES["bf16"]
    compute = gpu.compute_dtype(dt_name) or dt_name
    act = activation_dtype(gpu, dt_name)
    groups = max(experts, 1.0)
    rows = m * groups
    flops = 2.0 * rows * shape.params
    nbytes = groups * dt.weight_bytes(shape.params) + rows * (act.activation_bytes(shape.k) + out_dt.activation_bytes(shape.n))
    measured = cal.shape_efficiency(m, dt_name, shape.n, shape.k, local_experts, moe_tp)
    eff = measured if measured is not None else cal.gemm(m, dt_name)
    flops_s, hbm_s = flops / gpu.flops(compute), nbytes / gpu.hbm_Bps
    time_s = max(flops_s, hbm_s) / eff
    binding = "latency" if floor_s > time_s else "flops" if flops_s >= hbm_s else "hbm"  # floor: launch, tail
    return Term(shape.name, max(floor_s, time_s), max(flops_s, hbm_s), binding, flops, nbytes)


def memory_kernels(kernels: list[MemoryKernel], tokens: float, received: float, gpu: GPU,
                   cal: Calibration) -> list[Term]:
    """Memory-bound kernels at ``tokens`` tokens (``received`` token copies for per-copy kernels)."""
    out = []
    for k in kernels:
        nbytes = k.bytes_per_token * (received if k.per == "received" else tokens)
        out.append(Term(k.name, cal.memory_s(nbytes, gpu.hbm_Bps), nbytes / gpu.hbm_Bps, "hbm", 0.0, nbytes))
    return out


def layer_tokens(wl: Workload, sequences: float) -> float:
    """Tokens one layer processes for ``sequences`` sequences (decode) or their prompt chunk (prefill)."""
    return sequences * (wl.tokens_per_sequence if wl.phase == "decode" else wl.new_tokens_per_prompt)


def sharded_gemms(shapes: list[GemmShape], m: float, dt_name: str, gpu: GPU, cal: Calibration, tp: int) -> list[Term]:
    """One tensor-parallel rank's GEMMs of ``m`` rows (the whole group's tokens)."""
    return [gemm_kernel(tp_shard(g, tp), m, dt_name, gpu, cal) for g in shapes]


def allreduce_term(ep: ExpertParallel, wl: Workload, tokens: float) -> list[Term]:
    """Two all-reduces of one layer over the tensor-parallel group at ``tokens`` group tokens."""
    if wl.tp <= 1:
        return []
    time_s, sol_s, latency_s = ep.allreduce.at(tokens)
    return [Term("tp_allreduce", 2 * time_s, 2 * sol_s, "latency" if latency_s >= 0.5 * time_s else "nvlink")]


def core_rate(gpu: GPU, cal: Calibration, phase: str, fp8_cache: bool = False
              ) -> tuple[float, tuple[float, float], float]:
    """(peak FLOP/s, (FLOP, HBM) efficiencies, fixed work per sequence in cached tokens) of the attention core: in
    decode the attention kernel's, its HBM side the fp8 cache's where the calibration measured one
    (``fp8_cache``), at the fp8 peak with an fp8_e4m3 cache where the calibration measured such a kernel (it
    multiplies in fp8); in prefill the large-GEMM and large-transfer ones, with no work per sequence."""
    if phase != "decode":
        return gpu.flops("bf16"), (cal.flops("bf16"), cal.hbm_efficiency), 0.0
    hbm = (cal.attention_fp8_hbm_efficiency or cal.attention_hbm_efficiency) if fp8_cache \
        else cal.attention_hbm_efficiency
    if fp8_cache and cal.attention_fp8_flops_efficiency and gpu.compute_dtype("fp8"):
        return gpu.flops("fp8"), (cal.attention_fp8_flops_efficiency, hbm), cal.attention_fp8_sequence_tokens
    return gpu.flops("bf16"), (cal.attention_flops_efficiency, hbm), cal.attention_sequence_tokens


def attention_terms(model: Model, gpu: GPU, cal: Calibration, wl: Workload, sequences: float) -> list[Term]:
    """One attention layer: the core (KV read and scores), its projections, its memory kernels."""
    prec, mtp = wl.precision, wl.mtp
    tokens = layer_tokens(wl, sequences)
    attended = wl.context if wl.phase == "decode" else wl.context * wl.cache_hit + wl.new_tokens_per_prompt / 2.0
    peak, eff, sequence_tokens = core_rate(gpu, cal, wl.phase, prec.dt("kv").name == "fp8_e4m3")
    per_layer = 1.0 / (model.layers + mtp)
    read = kv_rank_bytes(model, kv_read_bytes_per_sequence(model, wl.context, prec, mtp), wl.tp, mtp, state_copies=2)
    core = roofline("attn_core",
                    per_layer * tokens * model.score_flops_per_token(attended, absorbed=wl.phase == "decode",
                                                                     extra_layers=mtp) / wl.tp,
                    per_layer * sequences * read, peak, gpu.hbm_Bps, eff)
    one_more = (model.score_flops_per_token(1.0, extra_layers=mtp)  # FLOPs of one more cached token: every
                - model.score_flops_per_token(0.0, extra_layers=mtp))  # softmax layer, as the fit counts them
    fixed_flops = per_layer * tokens * sequence_tokens * one_more / wl.tp  # each query token's load and output
    core = replace(core, time_s=core.time_s + fixed_flops / peak)
    floor_s = cal.attention_floor_s
    if model.attention.kind == "gqa" and wl.phase == "decode" and cal.attention_gqa:
        state = per_layer * sequences * 2 * linear_state_bytes(model, mtp, wl.tp)  # Gated DeltaNet's, read and written
        softmax_share = per_layer * (model.softmax_layers + mtp)
        core, floor_s = gqa_core(model, cal.attention_gqa, core, state, peak, eff, gpu.hbm_Bps,
                                 prec.dt("kv").name == "fp8_e4m3", sequences * softmax_share, wl.tp, softmax_share)
    if core.time_s < floor_s:  # one kernel per layer: its launch and tail
        core = replace(core, time_s=floor_s, binding="latency")
    proj = sharded_gemms(attention_gemms(model), tokens, prec.attention, gpu, cal, wl.tp)
    if model.linear:  # the mean layer: softmax layers (MTP ones too) and Gated DeltaNet layers in proportion
        share = model.linear_layers / (model.layers + mtp)
        proj = ([t.scaled(1 - share) for t in proj]
                + [t.scaled(share) for t in sharded_gemms(linear_attention_gemms(model), tokens, prec.attention, gpu,
                                                          cal, wl.tp)])
    kernels = memory_kernels(attention_kernels(model, prec.dt("attention"), prec.dt("kv")), tokens, 0, gpu, cal)
    terms = [core, total("attn_proj", proj), total("layer_kernels", kernels)]
    if model.attention.index_topk:  # DSA's lightning indexer: fp8 scores over every cached token (keys in core)
        flops = per_layer * tokens * model.indexer_flops_per_token(attended, extra_layers=mtp) / wl.tp
        terms.insert(1, roofline("attn_indexer", flops, 0.0, gpu.flops("fp8"), gpu.hbm_Bps,
                                 core_rate(gpu, cal, wl.phase)[1]))
    return terms


def gqa_core(model: Model, gqa: GqaAttention, core: Term, state_bytes: float, peak_flops: float,
             efficiency: tuple[float, float], hbm_Bps: float, fp8_cache: bool, softmax_sequences: float,
             tp: int, softmax_share: float = 1.0) -> tuple[Term, float]:
    """(``attn_core``, its kernel's floor s) of a grouped-query model's decode on its own measured kernel
    (``[attention_gqa]``): the softmax layers' KV at the GQA kernel's HBM efficiency or, when longer, its work
    units (sequences x KV heads of the rank x the unit's time; ``softmax_sequences``: sequences x the mean
    layer's share of softmax layers, ``softmax_share``, MTP ones included; one per sequence whatever its draft
    tokens), plus any linear-attention ``state_bytes`` (Gated DeltaNet's, another kernel) at the ``[attention]``
    HBM efficiency; the score FLOPs at the attention kernel's FLOP efficiency (``efficiency``: the
    ``[attention]`` (FLOP, HBM) pair) bind instead when longer. ``core`` is the mean layer's: the GQA kernel's
    efficiency is read at one softmax layer's KV bytes, the mean's / ``softmax_share``."""
    per_unit_s, floor_s = gqa.rate(fp8_cache)
    kv_heads = model.attention.kv_heads * kv_share(model, tp)
    flops_s = core.flops / (peak_flops * efficiency[0])
    kv_bytes = core.hbm_bytes - state_bytes
    kv_s = kv_bytes / (hbm_Bps * gqa.efficiency(kv_bytes / max(softmax_share, 1e-9), fp8_cache))
    units_s = softmax_sequences * kv_heads * per_unit_s
    memory_s = max(kv_s, units_s) + state_bytes / (hbm_Bps * efficiency[1])
    binding = "flops" if flops_s >= memory_s else "hbm" if kv_s >= units_s else "latency"
    return replace(core, time_s=max(flops_s, memory_s), binding=binding), floor_s


def routed_experts(model: Model, gpu: GPU, cal: Calibration, wl: Workload, ep: ExpertParallel,
                   tokens: float) -> tuple[Term, float]:
    """Grouped expert GEMMs and the kernels around them on the busiest GPU; also its received copies.

    Received copies = tokens x top_k x ep_size x busiest share; the experts they touch are the GPU's slots
    that receive at least one, counted on the routing sample where the plan counted them, else estimated
    (:meth:`~wideep.perf.workload.ExpertParallel.active_experts`).
    """
    received = tokens * model.top_k * ep.ep_size * ep.busiest_share
    active = ep.active_experts(tokens, received)
    terms = expert_terms(model, gpu, cal, wl.precision.weights, received, active, ep.slots_per_gpu, wl.moe_tp)
    return total("routed_experts", terms), received


def expert_terms(model: Model, gpu: GPU, cal: Calibration, dt: str, received: float, active: float,
                 slots_per_gpu: int, moe_tp: int = 1) -> list[Term]:
    """One GPU's routed-expert work: ``received`` copies over ``active`` of its ``slots_per_gpu`` slots, each
    expert its 1/``moe_tp`` slice, in ``dt`` weights: both grouped GEMMs at m = received / active, and the
    kernels around them (permute, SiLU-mul, unpermute), or, where the calibration measured the whole MoE layer
    (``covers = "moe_layer"``), that layer's fixed time once in place of those kernels and the GEMM floor."""
    shapes = routed_shapes(model, moe_tp)
    m = received / active
    curve = cal.shape_curve(dt, shapes[0].n, shapes[0].k, slots_per_gpu, moe_tp)
    if curve is not None and curve.covers == "moe_layer":
        fixed_s = cal.layer_fixed_s(dt, shapes[0].n, shapes[0].k, slots_per_gpu, moe_tp)
        floor_s = 0.0 if fixed_s else None  # the fixed time holds the launches
        gemms = [gemm_kernel(g, m, dt, gpu, cal, active, slots_per_gpu, floor_s, moe_tp) for g in shapes]
        return gemms + ([Term("moe_layer_fixed", fixed_s, 0.0, "latency")] if fixed_s else [])
    gemms = [gemm_kernel(g, m, dt, gpu, cal, active, slots_per_gpu,
                         cal.grouped_floor_s(dt, g.n, g.k, slots_per_gpu, moe_tp), moe_tp) for g in shapes]
    around = [k for k in moe_kernels(model, activation_dtype(gpu, dt), moe_tp) if k.per == "received"]
    return gemms + memory_kernels(around, 0.0, received, gpu, cal)


def routed_shapes(model: Model, moe_tp: int) -> list[GemmShape]:
    """One expert's gate+up and down GEMMs, each its 1/``moe_tp`` slice."""
    return [tp_shard(g, moe_tp) for g in ffn_gemms(model.expert_ffn, model.hidden, "routed_experts", per_expert=True)]


def moe_layer_terms(model: Model, gpu: GPU, cal: Calibration, wl: Workload, ep: ExpertParallel,
                    sequences: float) -> list[Term]:
    """One MoE layer's compute for the group's ``sequences``: attention, shared and routed experts, kernels,
    the tensor-parallel all-reduces; the experts see this GPU's 1/tp of the tokens (1/expert_ranks under MoE
    tensor parallelism, each expert's slice of 1/moe_tp)."""
    group_tokens = layer_tokens(wl, sequences)
    routed, _ = routed_experts(model, gpu, cal, wl, ep, group_tokens / wl.expert_ranks)
    before, kernels, router_topk = remembered(moe_local_terms, model, gpu, cal, wl, sequences)
    if not experts_time_router(model, cal, wl.precision.weights, ep.slots_per_gpu, wl.moe_tp):
        kernels = kernels + router_topk
    gathered = gathered_outputs(model, gpu, cal, ep, group_tokens / wl.expert_ranks)
    return before + [routed, total("layer_kernels", kernels)] + gathered + allreduce_term(ep, wl, group_tokens)


def experts_time_router(model: Model, cal: Calibration, dt: str, slots_per_gpu: int, moe_tp: int = 1) -> bool:
    """Whether the routed experts' curve (``slots_per_gpu`` local experts, 1/``moe_tp`` slices, ``dt`` weights)
    timed the whole MoE layer, router top-k included, so that the layer's own kernels leave the top-k out."""
    gate_up = routed_shapes(model, moe_tp)[0]
    return cal.routes_in_moe_layer(dt, gate_up.n, gate_up.k, slots_per_gpu, moe_tp)


def gathered_outputs(model: Model, gpu: GPU, cal: Calibration, ep: ExpertParallel, tokens: float) -> list[Term]:
    """Under an all-gather (``ep.gathers``) each GPU's MoE layer also writes an output row (bf16, the hidden
    size) for every token of the other GPUs, ``tokens`` each, which the reduce-scatter then sums; none else."""
    if not ep.gathers or ep.ep_size <= 1:
        return []
    rows = MemoryKernel("gathered_outputs", model.hidden * BF16_BYTES)
    return memory_kernels([rows], tokens * (ep.ep_size - 1), 0.0, gpu, cal)


def moe_local_terms(model: Model, gpu: GPU, cal: Calibration, wl: Workload,
                    sequences: float) -> tuple[list[Term], list[Term], list[Term]]:
    """The parts of one MoE layer that do not depend on the EP group: before the routed experts (attention,
    shared experts), the kernels around the layer (the router GEMM among them) and, apart, the router top-k
    (which a routed-expert curve that timed the whole MoE layer holds: :func:`moe_layer_terms` decides)."""
    group_tokens = layer_tokens(wl, sequences)
    tokens = group_tokens / wl.tp
    act = activation_dtype(gpu, wl.precision.weights)
    terms = attention_terms(model, gpu, cal, wl, sequences)
    if model.shared_ffn:
        shapes = ffn_gemms(model.shared_ffn, model.hidden, "shared_experts")
        terms.append(total("shared_experts", sharded_gemms(shapes, group_tokens, wl.precision.dense, gpu, cal, wl.tp)))
    router = GemmShape("router", model.n_experts, model.hidden, "router")
    own = [k for k in moe_kernels(model, act) if k.per == "token"]
    kernels = memory_kernels([k for k in own if k.name != "router_topk"], tokens, 0, gpu, cal)
    topk = memory_kernels([k for k in own if k.name == "router_topk"], tokens, 0, gpu, cal)
    return terms, kernels + [gemm_kernel(router, tokens, "bf16", gpu, cal)], topk


_REMEMBERED: dict = {}
REMEMBERED_ENTRIES = 100_000  # forgotten all at once past this many


def remembered(fn, model: Model, gpu: GPU, cal: Calibration, wl: Workload, sequences: float):
    """``fn(model, gpu, cal, wl, sequences)`` for a part of a step that the EP group, the batch and the overlap
    do not change, remembered: a search times the same layers under every EP size, and a micro-batch of
    ``sequences`` as a whole batch of them. Lists come back as new lists of the same terms."""
    key = (fn, id(model), id(gpu), id(cal), wl.phase, wl.context, wl.prefill_tokens, wl.cache_hit, wl.mtp,
           wl.acceptance, wl.precision, wl.tp, sequences)
    if key not in _REMEMBERED:
        if len(_REMEMBERED) >= REMEMBERED_ENTRIES:
            _REMEMBERED.clear()
        _REMEMBERED[key] = (model, gpu, cal, fn(model, gpu, cal, wl, sequences))  # the objects keep their ids
    out = _REMEMBERED[key][3]
    return [list(x) for x in out] if isinstance(out, tuple) else list(out)


def dense_layer_terms(model: Model, gpu: GPU, cal: Calibration, wl: Workload, ep: ExpertParallel,
                      sequences: float) -> list[Term]:
    """One dense layer (attention and a dense FFN, both over the tensor-parallel group)."""
    return remembered(dense_local_terms, model, gpu, cal, wl, sequences) + allreduce_term(ep, wl,
                                                                                          layer_tokens(wl, sequences))


def dense_local_terms(model: Model, gpu: GPU, cal: Calibration, wl: Workload, sequences: float) -> list[Term]:
    """One dense layer but its all-reduces: attention, the dense FFN and the layer's kernels."""
    tokens = layer_tokens(wl, sequences)
    ffn = sharded_gemms(ffn_gemms(model.dense_ffn, model.hidden, "dense_ffn"), tokens, wl.precision.dense, gpu, cal,
                        wl.tp)
    kernels = memory_kernels(dense_kernels(model, wl.precision.dt("dense")), tokens, 0, gpu, cal)
    return attention_terms(model, gpu, cal, wl, sequences) + [total("dense_ffn", ffn), total("layer_kernels", kernels)]


def head_terms(model: Model, gpu: GPU, cal: Calibration, wl: Workload, sequences: float) -> list[Term]:
    """The LM head over every decode token (one per prompt in prefill) and the final norm; with MTP, each of
    the ``mtp`` draft passes runs one after the other, each reading the LM head again and its MTP module's
    input projection (``eh_proj``: [embedding; hidden] -> hidden, bf16, held whole on every rank as SGLang
    and vLLM build it) for one token per sequence."""
    verified = sequences * wl.tokens_per_sequence if wl.phase == "decode" else sequences
    head = GemmShape("lm_head", model.vocab, model.hidden, "lm_head")  # vocab-parallel over the TP group
    gemms = sharded_gemms([head], verified, "bf16", gpu, cal, wl.tp)
    if wl.phase == "decode" and wl.mtp:
        eh_proj = GemmShape("eh_proj", model.hidden, 2 * model.hidden, "mtp")
        draft = sharded_gemms([head], sequences, "bf16", gpu, cal, wl.tp) + [gemm_kernel(eh_proj, sequences, "bf16",
                                                                                          gpu, cal)]
        gemms += wl.mtp * draft
    norm = memory_kernels([MemoryKernel("final_norm", 2 * model.hidden * 2)], verified + wl.mtp * sequences, 0,
                          gpu, cal)
    return [total("lm_head", gemms), total("layer_kernels", norm)]


def comm_terms(model: Model, ep: ExpertParallel, wl: Workload, tokens: float) -> list[Term]:
    """Dispatch and combine of one MoE layer at ``tokens`` tokens per GPU.

    A phase binds on ``latency`` when its fixed cost is at least half its time, on ``sms`` when the
    kernels' send blocks set the rest, else on its link tier. None
    when attention tensor parallelism spans the EP group: every rank then holds every token after the
    attention all-reduce, runs its experts on those routed to them and the layer's second all-reduce sums
    the outputs (TensorRT-LLM's minimum-latency layout; SGLang's TP MoE), so nothing is dispatched.
    """
    if ep.ep_size <= 1 or not model.is_moe or wl.tp >= ep.ep_size:
        return []
    tier = "nic" if ep.binding_tier == "scale_out" else "nvlink"
    terms = []
    for name, curve in (("dispatch", ep.dispatch), ("combine", ep.combine)):
        time_s, sol_s, latency_s = curve.at(tokens)
        binding = "latency" if latency_s >= 0.5 * time_s else "sms" if curve.send_bound(tokens) else tier
        terms.append(Term(name, time_s, sol_s, binding, comm=True))
    return terms


def step_time(model: Model, gpu: GPU, cal: Calibration, wl: Workload, ep: ExpertParallel) -> StepResult:
    """Predict one step of the EP group's busiest GPU.

    Parameters
    ----------
    model, gpu : Model, GPU
    cal : Calibration
        Achieved efficiencies (:func:`wideep.perf.roofline.load_calibration`).
    wl : Workload
        Decode batch and context, or prefill chunk, prompt length and cache-hit rate.
    ep : ExpertParallel
        Busiest-GPU share and communication curves (:func:`wideep.plan.expert_parallel`, or
        :func:`single_gpu`).
    """
    check_dtypes(gpu, wl.precision)
    splittable = wl.phase == "prefill" or wl.batch >= 2
    if wl.overlap == "none" or not splittable or (wl.overlap == "auto" and ep.gathers):  # no engine splits those
        return schedule(model, gpu, cal, wl, ep, 1)
    if wl.overlap == "tbo":
        return schedule(model, gpu, cal, wl, ep, 2)
    return min((schedule(model, gpu, cal, wl, ep, m) for m in (1, 2)), key=lambda r: r.step_s)


def sm_slowdown(gpu: GPU, ep: ExpertParallel) -> float:
    """Factor on compute that overlaps the transport's kernels: SMs / (SMs - SMs they hold)."""
    if not ep.transport_sms or not gpu.sm_count:
        return 1.0
    return gpu.sm_count / max(1, gpu.sm_count - ep.transport_sms)


def schedule(model: Model, gpu: GPU, cal: Calibration, wl: Workload, ep: ExpertParallel, mbs: int) -> StepResult:
    """The step with ``mbs`` micro-batches.

    Two micro-batches hide communication only inside each MoE layer: the layer takes the longer of both
    halves' compute (x SM slowdown) and both halves' dispatch + combine, plus the part of the shorter one
    that is not hidden (``1 - [overlap] hidden_fraction`` of the calibration); dense layers and the LM head
    cannot hide anything, and the first half's first communication is not hidden (pipeline fill).
    One micro-batch: every layer's compute plus its communication.
    """
    sequences = wl.batch if wl.phase == "decode" else wl.prefill_tokens / wl.new_tokens_per_prompt
    per_mb = sequences / mbs
    moe_layers, dense_layers = (model.moe_layers + wl.mtp, model.dense_layers) if model.is_moe else (0, model.layers)
    moe = moe_layer_terms(model, gpu, cal, wl, ep, per_mb) if moe_layers else []
    dense = dense_layer_terms(model, gpu, cal, wl, ep, per_mb) if dense_layers else []
    head = remembered(head_terms, model, gpu, cal, wl, per_mb)
    comm = comm_terms(model, ep, wl, layer_tokens(wl, per_mb) / wl.tp)
    c, m = (sum(t.time_s for t in moe), sum(t.time_s for t in comm))
    c_sol, m_sol = (sum(t.sol_s for t in moe), sum(t.sol_s for t in comm))
    rest = dense_layers * sum(t.time_s for t in dense) + sum(t.time_s for t in head)
    rest_sol = dense_layers * sum(t.sol_s for t in dense) + sum(t.sol_s for t in head)
    if mbs == 2:
        slow = sm_slowdown(gpu, ep) if comm else 1.0  # the transport's SMs are busy only while it runs
        comm_side = m > c * slow
        hidden = cal.overlap_hidden  # of the shorter side, the share the other one hides
        step = moe_layers * 2 * (max(c * slow, m) + (1 - hidden) * min(c * slow, m)) + min(c, m) + 2 * rest
        sol = moe_layers * 2 * max(c_sol, m_sol) + 2 * rest_sol
    else:
        comm_side = False
        step, sol = moe_layers * (c + m) + rest, moe_layers * (c_sol + m_sol) + rest_sol
    terms = merged([(moe, moe_layers * mbs), (dense, dense_layers * mbs), (head, mbs), (comm, moe_layers * mbs)])
    compute_s = sum(t.time_s for t in terms if not t.comm)
    binding = critical_resource(terms, comm_side=comm_side, overlapped=mbs == 2)
    if wl.phase == "decode":
        per_gpu = wl.batch * wl.output_per_sequence / step / wl.tp
        per_user = wl.output_per_sequence / step
    else:
        per_gpu = wl.prefill_tokens / (1.0 - wl.cache_hit) / step / wl.tp
        per_user = wl.context / (step * max(1, math.ceil(wl.new_tokens_per_prompt / wl.prefill_tokens)))
    return StepResult(wl, tuple(terms), step, sol, compute_s, moe_layers * mbs * m, binding, mbs, per_gpu, per_user)


def merged(groups: list[tuple[list[Term], float]]) -> list[Term]:
    """Terms of the same name summed over (terms, repeat count) groups, in first-seen order."""
    out: dict[str, list[Term]] = {}
    for terms, count in groups:
        for t in terms:
            if count:
                out.setdefault(t.name, []).append(t.scaled(count))
    return [total(name, ts) for name, ts in out.items()]


def critical_resource(terms: list[Term], comm_side: bool, overlapped: bool) -> str:
    """Resource with the most time on the critical path (the communication side when it is longer)."""
    pool = [t for t in terms if t.comm == comm_side] if overlapped else terms
    totals: dict[str, float] = {}
    for t in pool:
        totals[t.binding] = totals.get(t.binding, 0.0) + t.time_s
    return max(totals, key=totals.get) if totals else "hbm"
