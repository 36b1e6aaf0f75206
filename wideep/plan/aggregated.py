"""Aggregated serving: the prompts that decode steps compute beside their sequences.

At steady state a decode group finishes, and so admits, ``batch x output tokens per step / OSL`` requests per
step; their prompts are prefilled inside the decode steps and lengthen them. Where several data-parallel
attention groups share one EP group, every MoE layer waits for all of them: the attention side of a prompt
(attention, shared experts, dense layers, the layer's own kernels) is computed by the one group that admitted
it while the others wait, so a step takes the busiest group's prompts, and only the MoE layer's expert work
(routed experts, dispatch, combine) is spread over the EP group. Arrivals per group and step are taken as
Poisson (requests finish at random steps); one attention group per EP group reads the mean, as before.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.stats import poisson

from wideep.plan.deployment import Plan

#: Prefill terms of the MoE layer's expert work: spread over the EP group, whichever group admitted the prompt.
EP_WIDE_TERMS = ("routed_experts", "gathered_outputs", "dispatch", "combine")


@lru_cache(maxsize=4096)
def busiest_arrivals(rate: float, groups: int) -> float:
    """Expected largest of ``groups`` independent Poisson(``rate``) counts (``rate`` itself for one group).

    >>> busiest_arrivals(0.5, 1)
    0.5
    >>> round(busiest_arrivals(0.0625, 8), 3)
    0.409
    """
    if groups <= 1 or rate <= 0:
        return max(rate, 0.0)
    counts = np.arange(math.ceil(rate + 12 * math.sqrt(rate) + 30))  # past it the tail is below 1e-15
    return float(np.sum(1.0 - poisson.cdf(counts, rate) ** groups))


def synchronized_groups(p: Plan) -> int:
    """Attention groups that every MoE layer of one EP group waits for (1 for a dense model or MoE TP)."""
    return max(1, p.ep.ep_size // p.spec.tp) if p.model.is_moe else 1


def prompts_per_step(p: Plan) -> float:
    """Requests each attention group admits per decode step at steady state (batch x output per step / OSL)."""
    return p.spec.batch * p.decode.workload.output_per_sequence / p.spec.osl


def prefill_in_step_s(p: Plan) -> float:
    """Seconds a decode step of aggregated serving spends on prompts: the busiest attention group's prompts on
    the attention side, the mean on the expert side (shares of the planned prefill step's terms)."""
    prompt_s = p.spec.isl / (p.prefill.tokens_per_s_per_gpu * p.spec.tp)  # one prompt on its attention group
    terms = p.prefill.terms
    ep_wide_share = sum(t.time_s for t in terms if t.name in EP_WIDE_TERMS) / sum(t.time_s for t in terms)
    rate = prompts_per_step(p)
    busiest = busiest_arrivals(rate, synchronized_groups(p))
    return prompt_s * ((1 - ep_wide_share) * busiest + ep_wide_share * rate)
