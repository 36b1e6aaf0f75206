"""``wideep search``: the cheapest serving configuration per system that meets TPOT/TTFT targets.

For each system it plans every candidate (EP size, MTP, decode batch) and serving mode:

- ``disagg``: whole prefill and decode instances whose request rates match at ISL/OSL (xPyD,
  :mod:`wideep.plan.disagg`), the prefill layout chosen among the system's planned layouts; throughput per GPU
  of both pools; TTFT = one prefill step of the chunk holding the prompt plus the prompt's KV sent to the
  decode pool over the scale-out NICs, TPOT = the decode step per output token.
- ``agg``: prefill chunks interleaved with decode on the same GPUs: every decode step also computes the
  prompt tokens its sequences' successors need (batch x output per step x ISL / OSL prompt tokens), which
  lengthens TPOT by their prefill time (under attention DP, the busiest group's: :mod:`wideep.plan.aggregated`);
  TTFT = the prompt at the same rate behind a decode step.

Layouts: attention tensor parallelism ``tp`` of :data:`TP_SIZES` inside one NVLink domain, with ``dp = gpus / tp``
attention groups; an MoE model's experts over EP groups of :data:`EP_SIZES` (a multiple of ``tp``), or, at
small batches, over :data:`MOE_TP_EP_SIZES` ranks of the widest attention group, each expert split (MoE TP); a dense
model on one ``tp`` group per replica. ``batch`` counts sequences per attention group. The Pareto front is output tokens/s
per GPU (fleet) against tokens/s per user among points that fit in memory; ``best`` is the cheapest
$/Mtok (ISL/OSL mix) among points that meet the targets.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace

from wideep.core import progress
from wideep.core.errors import InputError, WideEPError
from wideep.perf.cost import usd_per_mtok
from wideep.perf.roofline import load_calibration
from wideep.perf.step import check_dtypes
from wideep.plan import Plan, PlanSpec, plan
from wideep.plan.aggregated import prefill_in_step_s
from wideep.plan.deployment import fits_in_memory, transport_for
from wideep.plan.disagg import PrefillInstance, Replica, best_replica
from wideep.specs.model import check_context, load_model
from wideep.specs.topology import load_cluster

MODES = ("agg", "disagg")
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
EP_SIZES = (2, 4, 8, 16, 32, 64, 72, 128, 144, 256)
TP_SIZES = (1, 2, 4, 8)
MOE_TP_EP_SIZES = (1, 2, 4)  # expert ranks inside the widest attention group (MoE TP = tp / ep)
MOE_TP_BATCHES = (1, 2, 4, 8, 16)
#: MoE TP layouts place experts as the engines launch them (report/deploy.py): in order, no EPLB (and no
#: redundant copies: wideep.plan.deployment.redundant_of's default there).
MOE_TP_PLACEMENT = "contiguous"
#: The all-gather layout (TensorRT-LLM's attention-DP path without its one-sided NVLink kernels, vLLM's
#: ``allgather_reducescatter``): every token to every GPU of the EP group, one micro-batch (``auto`` overlap
#: does not split it), experts in order without redundant copies (TensorRT-LLM balances experts only with its
#: WIDEEP backend). Tried beside DeepEP where the group is one NVLink domain and sends a token to no more GPUs
#: than its top-k could reach (EP <= top_k + 1: beyond, it always moves more copies than DeepEP; gpt-oss, top-4:
#: EP2 and EP4).
ALLGATHER = "nccl-allgather"
#: Search points in CSV/XLSX: (JSON key, header with units). Order and names are stable.
COLUMNS = (("system", "system"), ("mode", "mode"), ("tp", "tp"), ("ep", "ep"), ("dp", "dp"),
           ("batch", "batch [sequences/attention group]"), ("mtp", "mtp [draft tokens]"), ("dtype", "dtype"),
           ("prefill_gpus", "prefill GPUs"), ("decode_gpus", "decode GPUs"),
           ("tokens_per_s_per_gpu", "output tokens/s/GPU (fleet)"), ("tokens_per_s_per_user", "tokens/s/user"),
           ("ttft_ms", "TTFT [ms]"), ("tpot_ms", "TPOT [ms]"), ("usd_per_mtok", "$/Mtok (ISL/OSL mix)"),
           ("binding", "binding resource"), ("best", "best under targets"), ("moe_tp", "MoE TP [GPUs per expert]"),
           ("prefill_tp", "prefill tp"), ("prefill_ep", "prefill ep"), ("prefill_instances", "prefill instances"),
           ("decode_instances", "decode instances"), ("transport", "transport"),
           ("prefill_transport", "prefill transport"), ("balanced_prompts", "balanced prompts"))
POINT_KEYS = ("tp", "ep", "dp", "batch", "mtp", "dtype", "mode", "prefill_gpus", "decode_gpus",
              "tokens_per_s_per_gpu", "tokens_per_s_per_user", "ttft_ms", "tpot_ms", "usd_per_mtok", "binding",
              "moe_tp", "prefill_tp", "prefill_ep", "prefill_instances", "decode_instances", "transport",
              "prefill_transport", "balanced_prompts")


@dataclass(frozen=True)
class Targets:
    """Service targets (None: no target)."""

    tpot_ms: float | None = None
    ttft_ms: float | None = None

    def __post_init__(self) -> None:
        for option, value in (("--tpot-ms", self.tpot_ms), ("--ttft-ms", self.ttft_ms)):
            if value is not None and not 0 < value < float("inf"):
                raise InputError(f"must be a finite number > 0, got {value}", option)

    def met(self, point: dict) -> bool:
        return ((self.tpot_ms is None or point["tpot_ms"] <= self.tpot_ms)
                and (self.ttft_ms is None or point["ttft_ms"] <= self.ttft_ms))


def ep_sizes(spec: PlanSpec, topology: str, max_gpus: int | None) -> list[int]:
    """EP sizes to try: the catalog sizes that the system builds and the GPU budget allows (and 1 for dense)."""
    model = load_model(spec.model)
    if not model.is_moe:
        return [1]
    domain = domain_gpus(topology)
    sizes = [e for e in EP_SIZES if (max_gpus is None or e <= max_gpus) and (e <= domain or e % domain == 0)]
    if not sizes:
        raise InputError(f"no EP size of {EP_SIZES} fits {max_gpus} GPUs of {topology}", "--gpus")
    return sizes


def point(p: Plan, replica: Replica | None = None) -> dict:
    """One candidate as a search point (fleet-level throughput and cost, latencies in ms): aggregated, or
    disaggregated into ``replica``'s pools."""
    dec, pre, spec = p.decode, p.prefill, p.spec
    out_per_step = dec.workload.output_per_sequence
    pools = {"prefill_gpus": 0, "decode_gpus": p.gpus, "prefill_tp": None, "prefill_ep": None,
             "prefill_instances": 0, "decode_instances": 1, "prefill_transport": transport_for(spec, "prefill")}
    mode = "agg" if replica is None else "disagg"
    if replica is None:  # prompts computed inside the decode steps
        step_s = dec.step_s + prefill_in_step_s(p)
        per_gpu = spec.batch * out_per_step / step_s / spec.tp
        ttft_s = spec.isl / pre.tokens_per_s_per_user + dec.step_s
    else:
        step_s, per_gpu, ttft_s = dec.step_s, replica.tokens_per_s_per_gpu, replica.prefill.ttft_s
        pools = {"prefill_gpus": replica.prefill_gpus, "decode_gpus": replica.decode_instances * p.gpus,
                 "prefill_tp": replica.prefill.tp, "prefill_ep": replica.prefill.ep,
                 "prefill_instances": replica.prefill_instances, "decode_instances": replica.decode_instances,
                 "prefill_transport": replica.prefill.transport}
    usd = usd_per_mtok(p.cost.usd_per_gpu_hour, per_gpu * (spec.isl + spec.osl) / spec.osl)  # all tokens
    return {"tp": spec.tp, "ep": spec.ep, "dp": p.dp, "batch": spec.batch, "mtp": spec.mtp, "dtype": spec.dtype,
            "mode": mode, **pools, "tokens_per_s_per_gpu": per_gpu, "tokens_per_s_per_user": out_per_step / step_s,
            "ttft_ms": ttft_s * 1e3, "tpot_ms": step_s / out_per_step * 1e3, "usd_per_mtok": usd,
            "binding": dec.binding, "moe_tp": p.moe_tp, "transport": transport_for(spec, "decode"),
            "balanced_prompts": replica is None and spec.balances_prompts}


def prefill_instances(plans: list[Plan]) -> list[PrefillInstance]:
    """The distinct prefill layouts (tp, ep, transport) of the planned candidates."""
    layouts = {}
    for p in plans:
        ttft_s = p.spec.isl / p.prefill.tokens_per_s_per_user + p.kv_transfer_s
        transport = transport_for(p.spec, "prefill")
        layouts.setdefault((p.spec.tp, p.spec.ep, transport),
                           PrefillInstance(p.spec.tp, p.spec.ep, p.gpus, p.prefill.tokens_per_s_per_gpu, ttft_s,
                                           transport))
    return list(layouts.values())


def tp_sizes(topology: str, max_gpus: int | None) -> list[int]:
    """Attention TP sizes that fit one NVLink domain of the system and the GPU budget."""
    cluster = load_cluster(topology, option="--topology")
    return [t for t in TP_SIZES if cluster.holds_tp(t) and (max_gpus is None or t <= max_gpus)]


def domain_gpus(topology: str) -> int:
    """GPUs of one NVLink domain of the system or custom topology."""
    return load_cluster(topology, option="--topology").domain_gpus


def candidates(spec: PlanSpec, topology: str, max_gpus: int | None) -> list[PlanSpec]:
    model = load_model(spec.model)
    mtps = (0, 1) if model.mtp_layers else (0,)
    tps = tp_sizes(topology, max_gpus)
    layouts = [(ep, tp, BATCHES) for ep in ep_sizes(spec, topology, max_gpus) for tp in tps
               if not model.is_moe or ep % tp == 0]
    if model.is_moe:  # MoE tensor parallelism in the widest attention group: the latency layout, small batches
        layouts += [(ep, tps[-1], MOE_TP_BATCHES) for ep in MOE_TP_EP_SIZES if ep < tps[-1]]
    specs = [as_launched(replace(spec, topology=topology, ep=ep, tp=tp, gpus=None if model.is_moe else tp, mtp=mtp,
                                 batch=b, redundant=None))
             for ep, tp, batches in layouts for mtp in mtps for b in batches]
    if spec.transport is not None or not model.is_moe:  # the caller's transport stands
        return specs
    widest = min(domain_gpus(topology), model.top_k + 1)
    return specs + [as_launched(replace(s, transport=ALLGATHER)) for s in specs if s.dispatches and s.ep <= widest]


def as_launched(s: PlanSpec) -> PlanSpec:
    """``s`` with the expert placement the engines launch its layout with: in order without redundant copies on
    the all-gather, in order under MoE tensor parallelism, else ``s``'s own."""
    if s.transport == ALLGATHER:
        return replace(s, placement=MOE_TP_PLACEMENT, redundant=0)
    return replace(s, placement=MOE_TP_PLACEMENT) if s.ep and s.ep < s.tp else s


def pareto(points: list[dict]) -> list[dict]:
    """Points no other point beats in both tokens/s per GPU and tokens/s per user, by rising interactivity."""
    front, best = [], -1.0
    for q in sorted(points, key=lambda q: (-q["tokens_per_s_per_user"], -q["tokens_per_s_per_gpu"])):
        if q["tokens_per_s_per_gpu"] > best:
            front.append(q)
            best = q["tokens_per_s_per_gpu"]
    return sorted(front, key=lambda q: q["tokens_per_s_per_user"])


def search_system(spec: PlanSpec, topology: str, targets: Targets, modes: tuple[str, ...],
                  max_gpus: int | None) -> dict:
    """{"best": point or None, "pareto": [points], "candidates": count, "calibration": the first planned
    candidate's term -> file [table]} for one system."""
    load_calibration(load_cluster(topology, option="--topology").gpu.id, spec.calibration)  # its error, not 0 fit
    plans, specs = [], candidates(spec, topology, max_gpus)
    for i, s in enumerate(specs):
        progress.advance(f"search {topology}", i + 1, len(specs))
        try:
            if fits_in_memory(s):
                plans.append(plan(s))
        except WideEPError:  # a candidate the system cannot run (EP larger than it builds, prefill OOM...)
            continue
    prefills = prefill_instances(plans)
    ttft_s_max = None if targets.ttft_ms is None else targets.ttft_ms / 1e3

    def pools(p: Plan) -> Replica:
        return best_replica(p.gpus, p.decode.tokens_per_s_per_gpu, prefills, spec.isl, spec.osl, ttft_s_max)

    points = [point(p, pools(p) if m == "disagg" else None) for p in plans for m in modes]
    calibration = plans[0].calibration if plans else {}
    ok = [q for q in points if targets.met(q)]
    cheapest = min(ok, key=lambda q: (round(q["usd_per_mtok"], 9), q["tpot_ms"]), default=None)  # tie: faster
    return {"best": cheapest, "pareto": pareto(points), "candidates": len(points), "calibration": calibration}


def cheapest_at(points: list[dict], level: float) -> dict | None:
    """The cheapest point giving at least ``level`` tokens/s per user."""
    return min((q for q in points if q["tokens_per_s_per_user"] >= level * (1 - 1e-9)),
               key=lambda q: q["usd_per_mtok"], default=None)


def cost_ratio(result: dict) -> list[dict]:
    """$/Mtok of every system over the first one's, at every interactivity level a front reaches.

    Each row: ``tokens_per_s_per_user`` and, per system, its cheapest $/Mtok there (None when out of
    reach), its binding resource, and ``ratio`` to the first system.
    """
    systems = list(result)
    levels = sorted({q["tokens_per_s_per_user"] for r in result.values() for q in r["pareto"]})
    out = []
    for level in levels:
        row: dict = {"tokens_per_s_per_user": level}
        for t in systems:
            q = cheapest_at(result[t]["pareto"], level)
            row[t] = None if q is None else {"usd_per_mtok": q["usd_per_mtok"], "binding": q["binding"]}
        base = row[systems[0]]
        row["ratio"] = {t: (row[t]["usd_per_mtok"] / base["usd_per_mtok"] if row[t] and base else None)
                        for t in systems[1:]}
        out.append(row)
    return out


def rows(result: dict) -> list[dict]:
    """Every Pareto point of every system as a flat row (keys of :data:`COLUMNS`)."""
    return [q | {"system": system, "best": q == r["best"]} for system, r in result.items() for q in r["pareto"]]


def search(spec: PlanSpec, topologies: list[str], targets: Targets, mode: str = "both",
           max_gpus: int | None = None, dtypes: dict[str, str] | None = None, workers: int | None = None) -> dict:
    """Per system: the cheapest configuration meeting ``targets`` and the Pareto front.

    ``dtypes`` maps a topology to its weight precision (else ``spec.dtype``). Systems are searched in
    ``workers`` processes (default: one per CPU core, at most one per system; 1: in this process).
    """
    if not topologies:
        raise InputError("give at least one --topology", "--topology")
    if mode not in (*MODES, "both"):
        raise InputError(f"must be agg, disagg or both, got {mode!r}", "--mode")
    if max_gpus is not None and max_gpus < 1:
        raise InputError(f"must be >= 1, got {max_gpus}", "--gpus")
    modes = MODES if mode == "both" else (mode,)
    jobs = [(replace(spec, dtype=(dtypes or {}).get(t, spec.dtype)), t, targets, modes, max_gpus) for t in topologies]
    # a request longer than the model encodes, or a precision the GPU lacks, is an error, not an empty search
    check_context(spec.isl + spec.osl, load_model(spec.model), "--osl", "ISL + OSL = ")
    for job_spec, topology, *_ in jobs:
        check_dtypes(load_cluster(topology, option="--topology").gpu, job_spec.precision)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(len(jobs), cores if workers is None else workers)
    if workers <= 1:
        return {job[1]: search_system(*job) for job in jobs}
    return in_processes(jobs, workers)


def in_processes(jobs: list[tuple], workers: int) -> dict:
    """:func:`search_system` of every job in ``workers`` processes; results in job order (the first failing
    job's error raised, as one process would). Progress: one step per finished system, from this process."""
    with ProcessPoolExecutor(max_workers=workers, initializer=progress.listen, initargs=(None,)) as pool:
        futures = [pool.submit(search_system, *job) for job in jobs]
        for i, _ in enumerate(as_completed(futures)):
            progress.advance("search", i + 1, len(futures))
        return {job[1]: f.result() for job, f in zip(jobs, futures)}
