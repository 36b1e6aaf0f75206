"""One plan: a model on an EP group of a topology, its decode and prefill steps, memory fit and cost.

:func:`expert_parallel` is the seam to routing, placement and traffic: it samples routing (a few
thousand tokens, fixed seed, a few MoE layers whose mean stands for every MoE layer; :mod:`wideep.plan.ep_group`),
places the experts, reads the busiest GPU's share of selections and counts the traffic once, at
``COMM_PROBE_TOKENS`` per GPU; dispatch and combine times on ``COMM_GRID_TOKENS`` scale those bytes in
proportion to the tokens (copies per token do not depend on the step's size) and apply each size's fixed cost
and bandwidth ramp, interpolated in log(tokens) between grid sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

from wideep.core import units
from wideep.perf.cost import Cost, cost
from wideep.core.errors import InputError
from wideep.specs.hardware import GPU
from wideep.perf.memory import MemoryFit, kv_bytes_per_sequence, memory_fit, mtp_modules, prefill_fits
from wideep.specs.model import Model, check_context, load_model
from wideep.perf.step import calibration_sources, check_dtypes, step_time
from wideep.perf.workload import CommCurve, ExpertParallel, StepResult, single_gpu
from wideep.placement.objective import Basis
from wideep.placement.placers import ALGORITHMS, SEARCHING
from wideep.routing.stats import resolve_auto
from wideep.perf.roofline import load_calibration
from wideep.specs.topology import Cluster
from wideep.traffic.a2a import a2a_curve
from wideep.traffic.collectives import load_collective
from wideep.traffic.kvtransfer import kv_transfer_s
from wideep.slots import DEFAULT_REPLICA_RULE, check_replica_rule
from wideep.traffic.transports import load_transport
from wideep.plan.ep_group import TRANSPORTS, busiest_share, cluster_for, experts_touched, placed
from wideep.plan.spec import DEFAULT_EP, PlanSpec

COMM_PROBE_TOKENS = 1024  # tokens per GPU at which the traffic model counts copies (they scale linearly)
COMM_GRID_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384)  # tokens per GPU of the communication curve
ESTIMATE = "estimate: slots x (1 - exp(-copies / slots))"  # experts touched when nothing was counted


@dataclass(frozen=True)
class Plan:
    """A plan's results: decode step (the headline), prefill step (input price), memory and cost."""

    spec: PlanSpec
    model: Model
    system: str
    gpu: GPU
    gpus: int
    ep: ExpertParallel
    decode: StepResult
    prefill: StepResult
    memory: MemoryFit
    cost: Cost
    calibration: dict = field(default_factory=dict)  # term -> calibration file [table] that set it
    kv_transfer_s: float = 0.0  # disaggregated serving: one prompt's KV from the prefill to the decode pool

    @property
    def dp(self) -> int:
        """Attention groups (data-parallel ranks) in the deployment."""
        return self.gpus // self.spec.tp

    @property
    def moe_tp(self) -> int:
        """GPUs each routed expert is split over (1 for a dense model)."""
        return self.spec.moe_tp if self.model.is_moe else 1

    @property
    def layout(self) -> str:
        """The parallel layout in words, e.g. ``attention TP8 x DP4, MoE EP32`` or (MoE tensor parallelism)
        ``attention TP8 x DP1, MoE EP2 x TP4``."""
        moe_tp = f" x TP{self.moe_tp}" if self.moe_tp > 1 else ""
        moe = f", MoE EP{self.ep.ep_size}{moe_tp}" if self.model.is_moe else ""
        return f"attention TP{self.spec.tp} x DP{self.dp}{moe}"

    def to_dict(self) -> dict:
        d = self.decode
        return {
            "model": self.model.id, "system": self.system, "gpu": self.gpu.id, "gpus": self.gpus,
            "ep": self.ep.ep_size, "tp": self.spec.tp, "moe_tp": self.moe_tp, "dp": self.dp, "layout": self.layout,
            "batch": self.spec.batch, "context": self.spec.decode_context,
            "dtype": self.spec.dtype, "overlap": self.spec.overlap, "mtp": self.spec.mtp,
            "placement": self.spec.placement, "replica_rule": self.spec.replica_rule,
            "tokens_per_s_per_gpu": d.tokens_per_s_per_gpu, "tokens_per_s_per_user": d.tokens_per_s_per_user,
            "step_ms": d.step_s / units.ms, "sol_ms": d.sol_s / units.ms, "sol_ratio": d.sol_ratio,
            "binding": d.binding, "usd_per_mtok_output": self.cost.usd_per_mtok_output,
            "usd_per_mtok_input": self.cost.usd_per_mtok_input, "usd_per_mtok_mix": self.cost.usd_per_mtok_mix,
            "usd_per_gpu_hour": self.cost.usd_per_gpu_hour, "kW_per_gpu": self.cost.all_in_kW,
            "tokens_per_s_per_MW": self.cost.output_tokens_per_s_per_MW,
            "joules_per_token": self.cost.joules_per_output_token,
            "memory": self.memory.to_dict(), "breakdown_ms": d.breakdown_ms,
            "terms": d.to_dict()["terms"], "expert_parallel": ep_summary(self.ep),
            "prefill": self.prefill.to_dict(), "cost": self.cost.to_dict(), "calibration": self.calibration,
            "kv_transfer_ms": self.kv_transfer_s / units.ms,
        }


def ep_summary(ep: ExpertParallel) -> dict:
    return {"ep_size": ep.ep_size, "slots_per_gpu": ep.slots_per_gpu, "busiest_share": ep.busiest_share,
            "balancedness": ep.balancedness, "transport": ep.transport, "placement": ep.placement,
            "replica_rule": ep.replica_rule, "routing": ep.routing, "binding_tier": ep.binding_tier,
            "binding_link": ep.binding_link, "touched_tokens_per_gpu": list(ep.touched_tokens),
            "touched_slots": list(ep.touched_slots), "touched_source": ep.touched_source or ESTIMATE}


def default_redundant(n_experts: int, ep: int) -> int:
    """Fewest extra slots (> 0) making slots divisible by ``ep``; 0 without expert parallelism.

    >>> default_redundant(256, 32), default_redundant(256, 144), default_redundant(256, 1)
    (32, 32, 0)
    """
    if ep <= 1:
        return 0
    return ep - n_experts % ep if n_experts % ep else ep


def transport_for(spec: PlanSpec, phase: str) -> str:
    """The transport ``spec``'s MoE layers send with in ``phase``: its own, else DeepSeek's choice for the phase;
    "" where a resolved EP group dispatches nothing (attention TP spanning it)."""
    return "" if spec.ep and not spec.dispatches else spec.transport or TRANSPORTS[phase]


def objective_basis(spec: PlanSpec, phase: str) -> Basis | None:
    """What a searching placement of ``spec`` is predicted under in ``phase`` (the phase's transport, its dtypes
    and calibration); None for the other algorithms, whose placement depends on none of it."""
    if spec.placement not in SEARCHING:
        return None
    return Basis(transport_for(spec, phase), spec.dispatch_dtype, spec.combine_dtype, spec.dtype, spec.calibration)


@lru_cache(maxsize=256)
def expert_parallel(model: Model, topology: str, ep_size: int, redundant: int, routing: str,
                    placement: str, transport: str, dispatch_dtype: str = "fp8", combine_dtype: str = "bf16",
                    seed: int = 0, replica_rule: str = DEFAULT_REPLICA_RULE, basis: Basis | None = None
                    ) -> ExpertParallel:
    """The seam to routing, placement and traffic for one EP group (cached per argument set; ``basis``: :func:`placed`).

    Returns the per-MoE-layer dispatch/combine time as a curve over tokens per GPU (none with ``transport``
    empty: the layout sends no all-to-all); the busiest share is 1/ep_size here and set per step by
    :func:`ep_for` from :func:`busiest_share`.
    """
    if not model.is_moe or ep_size <= 1:
        return single_gpu(model)
    phy2log, stats = placed(model, topology, ep_size, redundant, routing, placement, seed, replica_rule, basis)
    if not transport:
        nothing = CommCurve.constant(0.0)
        return ExpertParallel(ep_size, phy2log.shape[1] // ep_size, 1.0 / ep_size, nothing, nothing, "", "", "",
                              placement, routing, 0, replica_rule)
    cluster = cluster_for(topology, ep_size)
    curve = a2a_curve(model, cluster, phy2log, stats, ep_size, COMM_PROBE_TOKENS, COMM_GRID_TOKENS, transport,
                      dispatch_dtype, combine_dtype, seed, replica_rule)
    d, c = (comm_curve(curve[p]) for p in ("dispatch", "combine"))
    tr = load_transport(transport)
    return ExpertParallel(ep_size, phy2log.shape[1] // ep_size, 1.0 / ep_size, d, c, curve["dispatch"]["tier"],
                          curve["dispatch"]["binding"], transport, placement, routing, tr.sms, replica_rule,
                          gathers=tr.copies == "all")


def comm_curve(phase: dict) -> CommCurve:
    """A phase's tabulated times over :data:`COMM_GRID_TOKENS`."""
    return CommCurve(tuple(float(t) for t in COMM_GRID_TOKENS), *(tuple(map(float, phase[k]))
                                                                   for k in ("time_s", "sol_s", "latency_s", "send_s")))


def resolve_spec(spec: PlanSpec, model: Model) -> PlanSpec:
    """``spec`` with its EP size set (:data:`DEFAULT_EP` for MoE, 1 for dense, when None) and ``auto``
    routing named (:func:`~wideep.routing.stats.resolve_auto`).

    A dense model with ``ep`` > 1 raises on ``--ep``: it would silently run without expert parallelism.
    """
    spec = replace(spec, routing=resolve_auto(spec.routing, model))
    if spec.ep is None:
        return replace(spec, ep=DEFAULT_EP if model.is_moe else 1)
    if not model.is_moe and spec.ep > 1:
        raise InputError(f"{model.id} is a dense model (no routed experts), so there is no expert parallelism "
                         f"to size; leave --ep out (or give 1) and use --gpus for the deployment, got {spec.ep}",
                         "--ep")
    return spec


def check_spec(spec: PlanSpec, model: Model) -> int:
    """Validate the options a plan needs beyond what the parts check; returns the GPU count."""
    gpus = max(spec.ep, spec.tp) if spec.gpus is None else spec.gpus
    if spec.ep < 1:
        raise InputError(f"must be >= 1, got {spec.ep}", "--ep")
    if model.is_moe and spec.ep % spec.tp and spec.tp % spec.ep:
        raise InputError(f"must divide --ep ({spec.ep}: attention groups inside the EP group) or be a multiple "
                         f"of it (MoE tensor parallelism inside the attention group), got {spec.tp}", "--tp")
    if gpus % spec.tp:
        raise InputError(f"must be a multiple of --tp ({spec.tp}), got {gpus}", "--gpus")
    if spec.mtp and not model.mtp_layers:
        raise InputError(f"{model.id} has no MTP module (num_nextn_predict_layers = 0); a separate draft model "
                         "is not modelled", "--mtp")
    if spec.seed < 0:
        raise InputError(f"must be >= 0, got {spec.seed}", "--seed")
    if spec.context is not None:
        check_context(spec.context, model)
    check_context(spec.isl + spec.osl, model, "--osl", "ISL + OSL = ")  # a whole request: prompt and output
    for option, name in (("--dispatch-dtype", spec.dispatch_dtype), ("--combine-dtype", spec.combine_dtype)):
        units.dtype(name, option)
    if gpus < spec.ep or gpus % max(spec.ep, 1):
        raise InputError(f"must be a multiple of --ep ({spec.ep}), got {gpus}", "--gpus")
    if spec.placement not in ALGORITHMS:
        raise InputError(f"unknown placement {spec.placement!r} (choose {', '.join(ALGORITHMS)})", "--placement")
    check_replica_rule(spec.replica_rule)
    if spec.ep > 1 and model.is_moe and (model.n_experts + redundant_of(spec, model)) % spec.ep:
        raise InputError(f"{model.n_experts} experts + {spec.redundant} redundant do not divide over EP {spec.ep}",
                         "--redundant")
    return gpus


def redundant_of(spec: PlanSpec, model: Model) -> int:
    """Redundant expert slots: as given, else DeepSeek's fewest that divide (none for a dense model, nor under
    MoE tensor parallelism, which the engines launch without an expert load balancer)."""
    if spec.redundant is None:
        return default_redundant(model.n_experts, spec.ep) if model.is_moe and spec.moe_tp == 1 else 0
    if spec.redundant < 0:
        raise InputError(f"must be >= 0, got {spec.redundant}", "--redundant")
    return spec.redundant


def plan(spec: PlanSpec) -> Plan:
    """Run one plan: decode step at (batch, context), prefill step at (prefill_tokens, isl), memory, cost."""
    model = load_model(spec.model)
    spec = resolve_spec(spec, model)
    gpus = check_spec(spec, model)
    cluster = cluster_for(spec.topology, spec.ep)
    if cluster.system is None and gpus > cluster.n_gpus:  # a custom file is the whole cluster
        raise InputError(f"{spec.topology} has {cluster.n_gpus} GPUs, fewer than {gpus}", "--gpus")
    gpu = cluster.gpu
    for option, name in (("--dispatch-dtype", spec.dispatch_dtype), ("--combine-dtype", spec.combine_dtype)):
        if name == "nvfp4" and name not in gpu.flops_per_s:
            raise InputError(f"{gpu.name} ({gpu.arch}) has no nvfp4 support", option)
    cal = load_calibration(gpu.id, spec.calibration)
    check_dtypes(gpu, spec.precision)  # before a searching placement times GEMMs in them
    decode_wl = spec.workload("decode")
    redundant = redundant_of(spec, model)
    ep = ep_for(spec, model, redundant, "decode")
    dec = step_time(model, gpu, cal, decode_wl, ep)
    pre = prefill_step(prefill_key(spec))
    fits, need_bytes, max_chunk = prefill_fit(prefill_key(spec), ep.slots_per_gpu)
    if not fits and max_chunk > 0:  # the chunk is the problem (with nothing fitting, the memory line says so)
        raise InputError(f"a prefill chunk of {spec.prefill_tokens:,} tokens of {spec.isl:,}-token prompts needs "
                         f"{need_bytes / units.GB:,.0f} GB per {gpu.id} (weights, KV, activations and all-to-all "
                         f"buffers) of {gpu.hbm_usable_bytes / units.GB:,.0f}; at most {max_chunk:,} tokens fit",
                         "--prefill-tokens")
    mem = decode_memory(spec, ep.slots_per_gpu)
    money = cost(gpu, dec.tokens_per_s_per_gpu, pre.tokens_per_s_per_gpu, spec.isl, spec.osl,
                 spec.price_per_gpu_hour, spec.price_scenario)
    system = cluster.system.id if cluster.system else cluster.name
    transport = load_transport(ep.transport).for_gpu(gpu.id).source if ep.ep_size > 1 and ep.transport else ""
    provenance = calibration_sources(cal, transport, spec.tp, spec.precision.weights,
                                     attention=model.attention.kind)
    if ep.gathers:  # the all-gather's output rows are memory-bound kernels, as the layer's others
        provenance["gathered_outputs"] = provenance["layer_kernels"]
    provenance["experts_touched"] = ep.touched_source or ESTIMATE
    return Plan(spec, model, system, gpu, gpus, ep, dec, pre, mem, money, provenance,
                prompt_kv_transfer_s(spec, model, cluster))


@lru_cache(maxsize=1024)
def decode_memory(spec: PlanSpec, slots_per_gpu: int) -> MemoryFit:
    """Memory of the decode batch of a resolved ``spec`` on one GPU (weights, KV, workspace); cached, as a search
    asks twice (:func:`fits_in_memory`, then :func:`plan`)."""
    model = load_model(spec.model)
    gpu = cluster_for(spec.topology, spec.ep).gpu
    return memory_fit(model, gpu, slots_per_gpu, spec.batch, spec.decode_context, spec.precision,
                      load_calibration(gpu.id, spec.calibration).workspace_fraction, mtp_modules(model, spec.mtp),
                      spec.tp, spec.moe_tp)


def fits_in_memory(spec: PlanSpec) -> bool:
    """Whether the decode batch of ``spec`` fits, without timing anything (a search skips what does not);
    raises what :func:`plan` raises on a bad spec."""
    model = load_model(spec.model)
    spec = resolve_spec(spec, model)
    check_spec(spec, model)
    slots = (model.n_experts + redundant_of(spec, model)) // spec.ep if model.is_moe and spec.ep > 1 else model.n_experts
    return decode_memory(spec, slots).fits


def prefill_key(spec: PlanSpec) -> PlanSpec:
    """``spec`` without the decode-only options, so a batch or MTP sweep reuses one prefill step."""
    return replace(spec, batch=PlanSpec.batch, context=None, mtp=0, acceptance=PlanSpec.acceptance)


@lru_cache(maxsize=256)
def prefill_step(spec: PlanSpec) -> StepResult:
    """The prefill step of a resolved, checked ``spec`` (cached per :func:`prefill_key`)."""
    model = load_model(spec.model)
    gpu = cluster_for(spec.topology, spec.ep).gpu
    cal = load_calibration(gpu.id, spec.calibration)
    return step_time(model, gpu, cal, spec.workload("prefill"), ep_for(spec, model, redundant_of(spec, model), "prefill"))


@lru_cache(maxsize=256)
def prefill_fit(spec: PlanSpec, slots_per_gpu: int) -> tuple[bool, float, int]:
    """:func:`~wideep.perf.memory.prefill_fits` of a resolved ``spec`` (cached per :func:`prefill_key`)."""
    model = load_model(spec.model)
    gpu = cluster_for(spec.topology, spec.ep).gpu
    return prefill_fits(model, gpu, slots_per_gpu, spec.prefill_tokens, spec.isl, spec.precision,
                        load_calibration(gpu.id, spec.calibration).workspace_fraction, spec.tp, spec.moe_tp)


def prompt_kv_transfer_s(spec: PlanSpec, model: Model, cluster: Cluster) -> float:
    """One ``isl``-token prompt's KV sent between pools by the prefill group's ranks that hold a part of it
    (every rank under MLA or with linear-attention state, which splits by its own heads; one per kv head under
    GQA); 0 for a custom topology, which names no NICs."""
    if cluster.system is None:
        return 0.0
    every_rank = model.attention.kind == "mla" or model.linear is not None
    senders = spec.tp if every_rank else min(spec.tp, model.attention.kv_heads)
    return kv_transfer_s(kv_bytes_per_sequence(model, spec.isl, spec.precision), cluster.system, senders)


def ep_for(spec: PlanSpec, model: Model, redundant: int, phase: str) -> ExpertParallel:
    """The EP group as one phase's step sees it: communication times and the step's busiest share, under
    the placement made for that phase (:func:`objective_basis`)."""
    transport = transport_for(spec, phase)
    basis = objective_basis(spec, phase)
    ep = expert_parallel(model, spec.topology, spec.ep, redundant, spec.routing, spec.placement,
                         transport, spec.dispatch_dtype, spec.combine_dtype, spec.seed, spec.replica_rule, basis)
    if spec.tp > 1:
        ep = replace(ep, allreduce=allreduce_curve(spec.topology, spec.tp, model.hidden, spec.calibration))
    if ep.ep_size <= 1:
        return ep
    wl = spec.workload(phase)
    per_gpu = (wl.batch * wl.tokens_per_sequence if phase == "decode" else wl.prefill_tokens) / wl.expert_ranks
    share = busiest_share(model, spec.topology, spec.ep, redundant, spec.routing, spec.placement, spec.seed,
                          per_gpu * spec.ep, spec.replica_rule, basis)
    splits = (2, 1) if phase == "prefill" or wl.batch >= 2 else (1,)
    counts = [experts_touched(model, spec.topology, spec.ep, redundant, spec.routing, spec.placement, spec.seed,
                              per_gpu * spec.ep, m, spec.replica_rule, basis) for m in splits]
    return replace(ep, busiest_share=share, touched_tokens=tuple(per_gpu / m for m in splits),
                   touched_slots=tuple(c for c, _ in counts), touched_source=counts[0][1])


@lru_cache(maxsize=64)
def allreduce_curve(topology: str, tp: int, hidden: int, calibration: str | None = None) -> CommCurve:
    """One bf16 all-reduce of ``hidden`` values per token over a ``tp``-GPU attention group, by group tokens:
    the GPU's measured series where its calibration has one for ``tp`` GPUs, else the collective model.

    The group must sit inside one NVLink domain (engines keep tensor parallelism off the scale-out network).
    """
    cluster = cluster_for(topology, tp)
    if not cluster.holds_tp(tp):
        raise InputError(f"a tensor-parallel group must fit in one NVLink domain ({cluster.domain_gpus} GPUs on "
                         f"{cluster.name}), got {tp}", "--tp")
    link_Bps = cluster.system.scale_up.bw_Bps if cluster.system else cluster.gpu.nvlink_Bps
    collective = load_collective()
    grid = tuple(float(t) for t in COMM_GRID_TOKENS)
    messages = [t * units.DTYPES["bf16"].activation_bytes(hidden) for t in grid]
    times = [collective.time_s(b, tp, link_Bps) for b in messages]
    cal = load_calibration(cluster.gpu.id, calibration)
    if not cal.has_allreduce(tp):
        return CommCurve(grid, tuple(t for t, _ in times), tuple(s for _, s in times),
                         (collective.latency_s,) * len(grid))
    return CommCurve(grid, tuple(cal.allreduce_s(tp, b) for b in messages), tuple(s for _, s in times),
                     (cal.allreduce_s(tp, 1.0),) * len(grid))
