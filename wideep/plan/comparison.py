"""The same plan on several systems, and one or two sentences on why the fastest and the slowest differ."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

from wideep.core import units
from wideep.perf.roofline import ORIGIN_WORDS, kernel_origin
from wideep.plan.deployment import Plan, plan
from wideep.plan.spec import PlanSpec

DEFAULT_COMPARISON = ("hgx-h100", "gb200-nvl72")  # DeepSeek-V3 EP32 on 4x HGX H100 vs one NVL72
#: The compute terms whose kernel efficiencies a comparison of systems rests on.
KERNEL_TERMS = ("routed_experts", "attn_proj", "attn_core")


@dataclass(frozen=True)
class Comparison:
    """Plans of one configuration on several topologies and a sentence on why they differ."""

    plans: tuple[Plan, ...]
    why: str = field(default="")

    def to_dict(self) -> dict:
        return {"plans": [p.to_dict() for p in self.plans], "why": self.why, "note": plans_note(self.plans)}


def plans_note(plans: Sequence[Plan]) -> str:
    """:func:`calibration_note` of plans on several systems."""
    return calibration_note({p.system: p.calibration for p in plans})


def calibration_note(calibrations: dict[str, dict[str, str]]) -> str:
    """'' when every system's kernel efficiencies come from the same kind of source; else a sentence naming
    each system's, since part of every difference between them is then the kernels', not the hardware's.
    ``calibrations``: {system: a plan's ``calibration`` (term -> file [table])}."""
    origins = {system: " + ".join(dict.fromkeys(ORIGIN_WORDS[kernel_origin(cal[t])] for t in KERNEL_TERMS if t in cal))
               for system, cal in calibrations.items()}
    origins = {system: words for system, words in origins.items() if words}  # a system nothing was planned on
    if len(set(origins.values())) < 2:
        return ""
    return ("note: the systems' kernel efficiencies come from different sources ("
            + "; ".join(f"{system}: {words}" for system, words in origins.items())
            + "), so part of each difference is the kernels', not the hardware's")


def compare_topologies(spec: PlanSpec, topologies: tuple[str, ...] = DEFAULT_COMPARISON) -> Comparison:
    """The same spec on each topology (``wideep plan`` with no options: DeepSeek-V3 EP32 on 4x HGX H100
    and on one GB200 NVL72 rack)."""
    plans = tuple(plan(replace(spec, topology=t)) for t in topologies)
    return Comparison(plans, explain(plans))


def explain(plans: tuple[Plan, ...]) -> str:
    """Why the fastest and the slowest plan differ, in one or two sentences from their terms."""
    if len(plans) < 2:
        return ""
    fast = max(plans, key=lambda p: p.decode.tokens_per_s_per_gpu)
    slow = min(plans, key=lambda p: p.decode.tokens_per_s_per_gpu)
    f, s = fast.decode, slow.decode
    ratio = f.tokens_per_s_per_gpu / s.tokens_per_s_per_gpu
    text = (f"{fast.system} serves {ratio:.1f}x the tokens/s per GPU of {slow.system} "
            f"({f.tokens_per_s_per_gpu:,.0f} vs {s.tokens_per_s_per_gpu:,.0f}). ")
    text += (f"On {slow.system} the step ({s.step_s / units.ms:.1f} ms) is bound by {RESOURCE_WORDS[s.binding]}"
             f"{comm_clause(slow)}; on {fast.system} ({f.step_s / units.ms:.1f} ms) by "
             f"{RESOURCE_WORDS[f.binding]}{comm_clause(fast)}. ")
    g1, g2 = fast.gpu, slow.gpu
    text += (f"Per GPU, {g1.id} has {g1.hbm_Bps / g2.hbm_Bps:.1f}x the HBM bandwidth "
             f"({g1.hbm_Bps / units.TBps:.2f} vs {g2.hbm_Bps / units.TBps:.2f} TB/s) and "
             f"{g1.flops(g1.compute_dtype(fast.spec.dtype)) / g2.flops(g2.compute_dtype(slow.spec.dtype)):.1f}x "
             f"the {fast.spec.dtype} FLOP/s.")
    return text


RESOURCE_WORDS = {"hbm": "HBM bandwidth", "flops": "tensor-core FLOP/s", "nvlink": "NVLink bandwidth",
                  "nic": "the scale-out NICs (InfiniBand/Ethernet)",
                  "latency": "fixed latencies (kernel launches and tails, communication fixed costs)",
                  "sms": "the all-to-all kernels' send blocks (SMs)"}


def comm_clause(p: Plan) -> str:
    """Where dispatch/combine runs and whether it hides behind compute (the compute alone without one)."""
    d = p.decode
    if d.comm_s == 0:
        return f" ({d.compute_s / units.ms:.1f} ms of compute, no all-to-all)"
    tier = "over NVLink inside one domain" if p.ep.binding_tier == "nvlink" else "across the scale-out NICs"
    hidden = "hidden behind" if d.micro_batches == 2 and d.comm_s <= d.compute_s else "exposed beside"
    return (f" (dispatch+combine {d.comm_s / units.ms:.1f} ms {tier}, {hidden} "
            f"{d.compute_s / units.ms:.1f} ms of compute)")
