"""What a step model is given and returns: the workload, the EP group's communication curves, the result.

Plain frozen dataclasses (:mod:`wideep.perf.step` computes with them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wideep.core import units
from wideep.core.curves import log_interp, log_interp_each
from wideep.core.errors import InputError
from wideep.core.limits import check_fraction, check_option
from wideep.perf.memory import Precision
from wideep.perf.roofline import Term
from wideep.specs.model import Model

PHASES = ("decode", "prefill")
OVERLAPS = ("auto", "tbo", "none")


@dataclass(frozen=True)
class Workload:
    """What one attention group of ``tp`` GPUs (one GPU without tensor parallelism) serves per step.

    Attributes
    ----------
    phase : str
        ``decode`` or ``prefill``.
    batch : int
        Decode: sequences per attention group of ``tp`` GPUs (per GPU when ``tp`` is 1).
    context : int
        Decode: mean cached tokens per sequence; prefill: prompt tokens per sequence.
    prefill_tokens : int
        Prefill: prompt tokens computed per attention group per step (the chunk).
    cache_hit : float
        Prefill: share of prompt tokens served from the prefix cache (not computed, but attended to).
    mtp, acceptance : int, float
        Speculative decoding: draft tokens per step and the acceptance rate of each.
    overlap : str
        ``tbo`` (two micro-batches), ``none`` (one), or ``auto`` (the faster of the two, as an engine
        that enables two-batch overlap only where it pays would run; batch 1 cannot be split, and no engine
        splits a batch whose tokens move by all-gather).
    tp : int
        Attention tensor parallelism: GPUs of one attention group (1: data-parallel attention).
    moe_tp : int
        MoE tensor parallelism: GPUs each routed expert is split over (divides ``tp``; the group's
        ``tp / moe_tp`` expert ranks see all its tokens, so no all-to-all).
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
    tp: int = 1
    moe_tp: int = 1

    def __post_init__(self) -> None:
        checks = [("--phase", self.phase in PHASES, f"must be one of {', '.join(PHASES)}, got {self.phase!r}"),
                  ("--overlap", self.overlap in OVERLAPS, f"must be one of {', '.join(OVERLAPS)}, got {self.overlap!r}")]
        for option, ok, problem in checks:
            if not ok:
                raise InputError(problem, option)
        check_fraction("--cache-hit", self.cache_hit, below_one=True)
        check_fraction("--acceptance", self.acceptance)
        if self.moe_tp < 1 or self.tp % self.moe_tp:
            raise InputError(f"MoE tensor parallelism {self.moe_tp} must divide the attention group ({self.tp})", "--ep")
        for option, value in (("--mtp", self.mtp), ("--batch", self.batch), ("--prefill-tokens", self.prefill_tokens),
                              ("--tp", self.tp),
                              ("--context" if self.phase == "decode" else "--isl", self.context)):
            check_option(option, value)

    @property
    def expert_ranks(self) -> int:
        """GPUs of the attention group that hold distinct experts (tp / moe_tp): the MoE layer splits the
        group's tokens over them."""
        return self.tp // self.moe_tp

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
class CommCurve:
    """A communication phase per MoE layer as a function of tokens per GPU (from the traffic model).

    ``time_s``, ``sol_s`` and ``latency_s`` are tabulated at ``tokens``; between points they are interpolated
    in log(tokens); below the grid the first point holds, above it the bytes part grows in proportion.
    ``send_s``: the part of ``time_s`` above ``latency_s`` that the kernels' send blocks set, where they
    bind (0 where the links do; empty: never).
    """

    tokens: tuple[float, ...]
    time_s: tuple[float, ...]
    sol_s: tuple[float, ...]
    latency_s: tuple[float, ...]
    send_s: tuple[float, ...] = ()

    @classmethod
    def constant(cls, time_s: float, latency_s: float = 0.0) -> "CommCurve":
        """The same time whatever the tokens (tests, and the no-EP case with 0)."""
        return cls((1.0, 1e15), (time_s, time_s), (0.0, 0.0), (latency_s, latency_s))

    def at(self, tokens: float) -> tuple[float, float, float]:
        """(time, SOL, fixed-cost part) in seconds at ``tokens`` per GPU."""
        if tokens > self.tokens[-1]:
            scale = tokens / self.tokens[-1]
            lat = self.latency_s[-1]
            return lat + (self.time_s[-1] - lat) * scale, self.sol_s[-1] * scale, lat
        return log_interp_each(tokens, self.tokens, (self.time_s, self.sol_s, self.latency_s))

    def send_bound(self, tokens: float) -> bool:
        """Whether the kernels' send blocks, not a link, set the time above the fixed cost at ``tokens``."""
        if not self.send_s:
            return False
        i = min(range(len(self.tokens)), key=lambda j: abs(math.log(self.tokens[j] / max(tokens, 1e-9))))
        return self.send_s[i] > 0.5 * (self.time_s[i] - self.latency_s[i])


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
    dispatch, combine : CommCurve
        Per-MoE-layer time versus tokens per GPU.
    transport_sms : int
        SMs the transport's kernels hold while compute overlaps them (slows the overlapped compute).
    gathers : bool
        The transport sends every token to every GPU of the group (an all-gather, ``copies = "all"``): each
        GPU's MoE layer writes an output row for every token of the group, for the reduce-scatter back.
    allreduce : CommCurve
        One tensor-parallel all-reduce of a layer's activations versus the attention group's tokens.
    binding_tier : str
        ``nvlink`` or ``scale_out``: the tier of the most loaded link.
    touched_tokens, touched_slots : tuple of float
        Tokens per GPU of one micro-batch, ascending, and the distinct slots the busiest GPU's grouped GEMM
        reads there, counted on the routing sample (:func:`wideep.traffic.touched.touched_slots`); empty
        when nothing was counted.
    touched_source : str
        What the counts came from (empty: the estimate of :meth:`active_experts`).
    """

    ep_size: int
    slots_per_gpu: int
    busiest_share: float
    dispatch: CommCurve
    combine: CommCurve
    binding_tier: str = "nvlink"
    binding_link: str = ""
    transport: str = ""
    placement: str = ""
    routing: str = ""
    transport_sms: int = 0
    replica_rule: str = ""
    allreduce: CommCurve = CommCurve((1.0, 1e15), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    touched_tokens: tuple[float, ...] = ()
    touched_slots: tuple[float, ...] = ()
    touched_source: str = ""
    gathers: bool = False

    @property
    def balancedness(self) -> float:
        """Mean GPU load / busiest GPU load."""
        return 1.0 / (self.ep_size * self.busiest_share)

    def counted(self, tokens: float) -> bool:
        """Whether the slots touched at ``tokens`` tokens per GPU come from counts (not the estimate)."""
        t = self.touched_tokens
        return bool(t) and t[0] * (1 - 1e-9) <= tokens <= t[-1] * (1 + 1e-9)

    def active_experts(self, tokens: float, received: float) -> float:
        """Distinct slots the busiest GPU's grouped GEMM reads at ``tokens`` tokens per GPU.

        Counted on the routing sample where the counts cover ``tokens`` (linear in log tokens between two
        counts); elsewhere the estimate for ``received`` copies spread evenly over the GPU's slots,
        slots x (1 - exp(-received / slots)). At least one slot once a copy arrives, at most every slot.

        >>> ExpertParallel(2, 8, 0.5, None, None).active_experts(4, 8.0) == 8 * -math.expm1(-1.0)
        True
        """
        spg, floor = self.slots_per_gpu, min(1.0, received)
        if self.counted(tokens):
            return min(float(spg), max(floor, float(log_interp(tokens, self.touched_tokens, self.touched_slots))))
        return max(floor, spg * -math.expm1(-received / spg))


def single_gpu(model: Model) -> ExpertParallel:
    """No expert parallelism: one GPU holds every expert and nothing is sent."""
    zero = CommCurve.constant(0.0)
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
