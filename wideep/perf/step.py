"""Step time of one EP group (decode or prefill) on its busiest GPU: roofline terms plus calibration.

Terms (each a :class:`~wideep.perf.roofline.Term` naming its binding resource):

- ``attn_core``: KV read and score FLOPs at bf16 peak (MLA absorbed in decode, as DeepSeek runs it; not
  absorbed in prefill), efficiency from the calibration's ``[attention]`` (decode) or ``[hbm]``/``[flops]`` (prefill);
- ``attn_proj``, ``dense_ffn``, ``shared_experts``, ``lm_head``: GEMMs, M = tokens, the ``[gemm]`` curve;
- ``routed_experts``: tokens on the busiest GPU = tokens x top_k x ep_size x busiest share (from placement
  and routing, :func:`wideep.plan.expert_parallel`), M = those tokens / slots per GPU, the ``[gemm]`` curve;
- ``dispatch``, ``combine``: the traffic model's per-MoE-layer time at these tokens per GPU.

Overlap ``tbo`` (two micro-batches, DeepSeek's scheme): each half batch runs every term (so weights are
read twice), and while one half computes the other communicates, so step = max(compute, communication)
over both halves; ``none``: step = compute + communication; ``auto``: the faster of the two. MTP (``mtp`` draft tokens with acceptance ``acceptance``): every sequence
feeds 1 + mtp tokens through the model per step and emits 1 + a + a^2 + ... tokens; each MTP module counts
as one more MoE layer (attention, shared expert, routed experts, dispatch/combine) and one more LM head.
Norms, activations, the router GEMM and embeddings are left out (< 1% of bytes and FLOPs here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wideep.core import units
from wideep.core.errors import InputError
from wideep.specs.hardware import GPU
from wideep.perf.memory import OPTIONS, Precision, kv_bytes_per_sequence
from wideep.specs.model import Model
from wideep.perf.roofline import Calibration, Term, roofline

PHASES = ("decode", "prefill")
OVERLAPS = ("auto", "tbo", "none")


@dataclass(frozen=True)
class Workload:
    """What one GPU of the EP group serves per step.

    Attributes
    ----------
    phase : str
        ``decode`` or ``prefill``.
    batch : int
        Decode: sequences per GPU (attention data-parallel).
    context : int
        Decode: mean cached tokens per sequence; prefill: prompt tokens per sequence.
    prefill_tokens : int
        Prefill: prompt tokens computed per GPU per step (the chunk).
    cache_hit : float
        Prefill: share of prompt tokens served from the prefix cache (not computed, but attended to).
    mtp, acceptance : int, float
        Speculative decoding: draft tokens per step and the acceptance rate of each.
    overlap : str
        ``tbo`` (two micro-batches), ``none`` (one), or ``auto`` (the faster of the two, as an engine
        that enables two-batch overlap only where it pays would run; batch 1 cannot be split).
    """

    phase: str = "decode"
    batch: int = 64
    context: int = 4096
    prefill_tokens: int = 8192
    cache_hit: float = 0.0
    mtp: int = 0
    acceptance: float = 0.85
    overlap: str = "auto"
    precision: Precision = field(default_factory=Precision)

    def __post_init__(self) -> None:
        checks = [("--phase", self.phase in PHASES, f"must be one of {', '.join(PHASES)}, got {self.phase!r}"),
                  ("--overlap", self.overlap in OVERLAPS, f"must be one of {', '.join(OVERLAPS)}, got {self.overlap!r}"),
                  ("--batch", self.batch >= 1, f"must be >= 1, got {self.batch}"),
                  ("--context", self.context >= 1, f"must be >= 1, got {self.context}"),
                  ("--prefill-tokens", self.prefill_tokens >= 1, f"must be >= 1, got {self.prefill_tokens}"),
                  ("--cache-hit", 0 <= self.cache_hit < 1, f"must be in [0, 1), got {self.cache_hit}"),
                  ("--mtp", self.mtp >= 0, f"must be >= 0, got {self.mtp}"),
                  ("--acceptance", 0 <= self.acceptance <= 1, f"must be in [0, 1], got {self.acceptance}")]
        for option, ok, problem in checks:
            if not ok:
                raise InputError(problem, option)

    @property
    def tokens_per_sequence(self) -> int:
        """Decode: tokens each sequence feeds through the model per step (1 + draft tokens)."""
        return 1 + self.mtp

    @property
    def output_per_sequence(self) -> float:
        """Decode: expected tokens a sequence emits per step, 1 + a + ... + a^mtp."""
        return sum(self.acceptance ** i for i in range(self.mtp + 1))

    @property
    def new_tokens_per_prompt(self) -> float:
        """Prefill: prompt tokens computed per sequence (cache hits excluded)."""
        return self.context * (1.0 - self.cache_hit)


@dataclass(frozen=True)
class LinearTime:
    """A communication phase per MoE layer as a function of tokens per GPU.

    time_s(t) = fixed_s + per_token_s x t; sol_s(t) = sol_per_token_s x t (no latency at SOL).
    """

    fixed_s: float
    per_token_s: float
    sol_per_token_s: float

    def time_s(self, tokens: float) -> float:
        return self.fixed_s + self.per_token_s * tokens

    def sol_s(self, tokens: float) -> float:
        return self.sol_per_token_s * tokens


@dataclass(frozen=True)
class ExpertParallel:
    """What placement, routing and traffic tell the step model about one EP group.

    Attributes
    ----------
    ep_size, slots_per_gpu : int
        GPUs of the group and expert slots on each.
    busiest_share : float
        Mean over MoE layers of the busiest GPU's share of all token-expert selections (1/ep_size when
        perfectly balanced).
    dispatch, combine : LinearTime
        Per-MoE-layer time versus tokens per GPU.
    binding_tier : str
        ``nvlink`` or ``scale_out``: the tier of the most loaded link.
    """

    ep_size: int
    slots_per_gpu: int
    busiest_share: float
    dispatch: LinearTime
    combine: LinearTime
    binding_tier: str = "nvlink"
    binding_link: str = ""
    transport: str = ""
    placement: str = ""
    routing: str = ""

    @property
    def balancedness(self) -> float:
        """Mean GPU load / busiest GPU load."""
        return 1.0 / (self.ep_size * self.busiest_share)


def single_gpu(model: Model) -> ExpertParallel:
    """No expert parallelism: one GPU holds every expert and nothing is sent."""
    zero = LinearTime(0.0, 0.0, 0.0)
    return ExpertParallel(1, model.n_experts, 1.0, zero, zero, "nvlink", "", "none")


@dataclass(frozen=True)
class StepResult:
    """One step of the busiest GPU: its terms, the step and SOL times, throughput and binding.

    Attributes
    ----------
    terms : tuple of Term
        Summed over micro-batches.
    step_s, sol_s : float
        Predicted step time and the same schedule at datasheet peak with no latency, seconds.
    binding : str
        Resource of the critical path: ``hbm``, ``flops``, ``nvlink`` or ``nic``.
    tokens_per_s_per_gpu : float
        Decode: output tokens; prefill: prompt tokens including cache hits.
    tokens_per_s_per_user : float
        Decode: output tokens per second per sequence; prefill: prompt tokens per second of time to first
        token.
    """

    workload: Workload
    terms: tuple[Term, ...]
    step_s: float
    sol_s: float
    compute_s: float
    comm_s: float
    binding: str
    micro_batches: int
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float

    @property
    def sol_ratio(self) -> float:
        """Predicted step time / SOL step time (>= 1)."""
        return self.step_s / self.sol_s

    @property
    def breakdown_ms(self) -> dict[str, float]:
        return {t.name: t.time_s / units.ms for t in self.terms}

    def to_dict(self) -> dict:
        return {"phase": self.workload.phase, "step_ms": self.step_s / units.ms, "sol_ms": self.sol_s / units.ms,
                "sol_ratio": self.sol_ratio, "binding": self.binding, "compute_ms": self.compute_s / units.ms,
                "comm_ms": self.comm_s / units.ms, "micro_batches": self.micro_batches,
                "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
                "tokens_per_s_per_user": self.tokens_per_s_per_user, "breakdown_ms": self.breakdown_ms,
                "terms": [{"name": t.name, "ms": t.time_s / units.ms, "sol_ms": t.sol_s / units.ms,
                           "binding": t.binding, "TFLOP": t.flops / units.TFLOP, "hbm_GB": t.hbm_bytes / units.GB}
                          for t in self.terms]}


def check_dtypes(gpu: GPU, prec: Precision) -> None:
    """Every compute dtype must exist on the GPU (nvfp4 on Hopper is an error naming the option)."""
    for which in ("weights", "attention"):
        name = getattr(prec, which)
        prec.dt(which)
        if name not in gpu.flops_per_s:
            raise InputError(f"{gpu.name} ({gpu.arch}) has no {name} tensor cores; "
                             f"choose {' or '.join(gpu.flops_per_s)}", OPTIONS[which])
    if prec.dt("kv").name == "nvfp4" and "nvfp4" not in gpu.flops_per_s:
        raise InputError(f"{gpu.name} ({gpu.arch}) has no nvfp4 support for the KV cache", OPTIONS["kv"])


def gemm(name: str, params: float, tokens: float, weight_dt, gpu: GPU, dt_name: str, cal: Calibration,
         rows: float | None = None) -> Term:
    """A GEMM of ``params`` weights over ``tokens`` rows; ``rows`` (M for the curve) defaults to tokens."""
    return roofline(name, 2.0 * params * tokens, weight_dt.weight_bytes(params), gpu.flops(dt_name), gpu.hbm_Bps,
                    cal.gemm(tokens if rows is None else rows, dt_name))


def compute_terms(model: Model, gpu: GPU, cal: Calibration, wl: Workload, ep: ExpertParallel,
                  sequences: float) -> list[Term]:
    """Compute terms for ``sequences`` sequences (decode) or their prompt chunk (prefill) on one GPU."""
    prec, mtp = wl.precision, wl.mtp
    w_dt, a_dt = prec.dt("weights"), prec.dt("attention")
    h = model.hidden
    decode = wl.phase == "decode"
    if decode:
        tokens, lm_tokens = sequences * wl.tokens_per_sequence, sequences * (wl.tokens_per_sequence + mtp)
        attended, eff = wl.context, (cal.attention_flops_efficiency, cal.attention_hbm_efficiency)
    else:
        tokens, lm_tokens = sequences * wl.new_tokens_per_prompt, sequences
        attended = wl.context * wl.cache_hit + wl.new_tokens_per_prompt / 2.0
        eff = (cal.flops("bf16"), cal.hbm_efficiency)
    core = roofline("attn_core", tokens * model.score_flops_per_token(attended, absorbed=decode, extra_layers=mtp),
                    sequences * kv_bytes_per_sequence(model, wl.context, prec, mtp),
                    gpu.flops("bf16"), gpu.hbm_Bps, eff)
    terms = [core, gemm("attn_proj", (model.layers + mtp) * model.attention.params(h), tokens, a_dt, gpu,
                        prec.attention, cal)]
    if model.dense_layers and model.dense_ffn:
        terms.append(gemm("dense_ffn", model.dense_layers * 3 * h * model.dense_ffn, tokens, w_dt, gpu,
                          prec.weights, cal))
    if model.shared_ffn:
        terms.append(gemm("shared_experts", (model.moe_layers + mtp) * 3 * h * model.shared_ffn, tokens, w_dt,
                          gpu, prec.weights, cal))
    if model.is_moe:
        terms.append(routed_experts(model, gpu, cal, wl, ep, tokens))
    terms.append(gemm("lm_head", model.lm_head_params, lm_tokens, units.DTYPES["bf16"], gpu, "bf16", cal))
    return terms


def routed_experts(model: Model, gpu: GPU, cal: Calibration, wl: Workload, ep: ExpertParallel,
                   tokens: float) -> Term:
    """Grouped expert GEMMs on the busiest GPU: its share of all selections, its slots' weights."""
    prec, layers = wl.precision, model.moe_layers + wl.mtp
    busiest = tokens * model.top_k * ep.ep_size * ep.busiest_share
    active_slots = min(ep.slots_per_gpu, busiest)
    w_dt = prec.dt("weights")
    act_bytes = busiest * (w_dt.activation_bytes(model.hidden) + units.DTYPES["bf16"].activation_bytes(model.hidden))
    return roofline("routed_experts", 2.0 * busiest * model.expert_params * layers,
                    layers * (active_slots * model.expert_bytes(w_dt) + act_bytes),
                    gpu.flops(prec.weights), gpu.hbm_Bps, cal.gemm(busiest / ep.slots_per_gpu, prec.weights))


def comm_terms(model: Model, wl: Workload, ep: ExpertParallel, tokens: float) -> list[Term]:
    """Dispatch and combine over all MoE (and MTP) layers at ``tokens`` tokens per GPU."""
    if ep.ep_size <= 1 or not model.is_moe:
        return []
    layers = model.moe_layers + wl.mtp
    binding = "nic" if ep.binding_tier == "scale_out" else "nvlink"
    return [Term(name, layers * lt.time_s(tokens), layers * lt.sol_s(tokens), binding, comm=True)
            for name, lt in (("dispatch", ep.dispatch), ("combine", ep.combine))]


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
        Busiest-GPU share and communication times (:func:`wideep.plan.expert_parallel`, or
        :func:`single_gpu`).
    """
    check_dtypes(gpu, wl.precision)
    splittable = wl.phase == "prefill" or wl.batch >= 2
    if wl.overlap == "none" or not splittable:
        return schedule(model, gpu, cal, wl, ep, 1)
    if wl.overlap == "tbo":
        return schedule(model, gpu, cal, wl, ep, 2)
    return min((schedule(model, gpu, cal, wl, ep, m) for m in (1, 2)), key=lambda r: r.step_s)


def schedule(model: Model, gpu: GPU, cal: Calibration, wl: Workload, ep: ExpertParallel, mbs: int) -> StepResult:
    """The step with ``mbs`` micro-batches (2: communication of one overlaps computation of the other)."""
    sequences = wl.batch if wl.phase == "decode" else wl.prefill_tokens / wl.new_tokens_per_prompt
    per_mb = sequences / mbs
    tokens_mb = per_mb * (wl.tokens_per_sequence if wl.phase == "decode" else wl.new_tokens_per_prompt)
    terms = [t.scaled(mbs) for t in compute_terms(model, gpu, cal, wl, ep, per_mb) + comm_terms(model, wl, ep, tokens_mb)]
    compute = sum(t.time_s for t in terms if not t.comm)
    comm = sum(t.time_s for t in terms if t.comm)
    compute_sol = sum(t.sol_s for t in terms if not t.comm)
    comm_sol = sum(t.sol_s for t in terms if t.comm)
    if mbs == 2:
        step, sol = max(compute, comm), max(compute_sol, comm_sol)
    else:
        step, sol = compute + comm, compute_sol + comm_sol
    binding = critical_resource(terms, comm_side=mbs == 2 and comm > compute, overlapped=mbs == 2)
    if wl.phase == "decode":
        per_gpu = wl.batch * wl.output_per_sequence / step
        per_user = wl.output_per_sequence / step
    else:
        per_gpu = wl.prefill_tokens / (1.0 - wl.cache_hit) / step
        per_user = wl.context / (step * max(1, math.ceil(wl.new_tokens_per_prompt / wl.prefill_tokens)))
    return StepResult(wl, tuple(terms), step, sol, compute, comm, binding, mbs, per_gpu, per_user)


def critical_resource(terms: list[Term], comm_side: bool, overlapped: bool) -> str:
    """Resource with the most time on the critical path (the communication side when it is longer)."""
    pool = [t for t in terms if t.comm == comm_side] if overlapped else terms
    totals: dict[str, float] = {}
    for t in pool:
        totals[t.binding] = totals.get(t.binding, 0.0) + t.time_s
    return max(totals, key=totals.get) if totals else "hbm"
