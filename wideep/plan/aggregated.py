"""Aggregated serving: the prompts that decode steps compute beside their sequences.

At steady state each of a decode group's ``batch`` sequences finishes in a step with probability ``output tokens
per step / OSL``, and a finished one is replaced by a new request whose prompt is prefilled inside the decode
steps. Where several data-parallel attention groups share one EP group, every MoE layer waits for all of them
(TensorRT-LLM tech blog 10 measures it: an iteration takes as long as its most loaded rank): the attention side
of a prompt (attention, shared experts, dense layers, the layer's own kernels) is computed by the one group
that admitted it while the others wait, so a step takes the busiest group's prompts (the expected largest of
the groups' binomial counts). The expert side is spread over the EP group by the routing (routed experts, the
output rows of an all-gather) and counts at the mean, and so does an all-gather's dispatch and combine, which
every GPU receives whole; DeepEP's dispatch and combine wait for their busiest sender, so they count with the
attention side. One attention group per EP group reads the mean, and so does an engine that holds prompts
back until every group has one (``PlanSpec.balances_prompts``: TensorRT-LLM's attention DP). Requests are taken to finish at random
steps; a benchmark whose requests all start together and have one output length admits its prompts in
bursts instead.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.stats import binom

from wideep.plan.deployment import Plan

#: Prefill terms spread over the EP group by the routing, whichever group admitted the prompt.
SPREAD_TERMS = ("routed_experts", "gathered_outputs")
#: ... and, behind an all-gather (every GPU receives every token), the communication too.
GATHERED_TERMS = SPREAD_TERMS + ("dispatch", "combine")


@lru_cache(maxsize=4096)
def busiest_arrivals(batch: int, finish_p: float, groups: int) -> float:
    """Expected largest of ``groups`` independent Binomial(``batch``, ``finish_p``) counts: the prompts the
    busiest attention group admits in a step (``batch x finish_p``, the mean, for one group).

    >>> busiest_arrivals(64, 0.5, 1)
    32.0
    >>> round(busiest_arrivals(128, 1 / 2048, 8), 3)
    0.409
    """
    p = min(max(finish_p, 0.0), 1.0)
    if groups <= 1 or p in (0.0, 1.0):
        return batch * p
    mean, sd = batch * p, math.sqrt(batch * p * (1 - p))
    counts = np.arange(min(batch, math.ceil(mean + 12 * sd + 30)) + 1)  # past it the tail is below 1e-15
    return float(np.sum(1.0 - binom.cdf(counts, batch, p) ** groups))


def synchronized_groups(p: Plan) -> int:
    """Attention groups that every MoE layer of one EP group waits for (1 for a dense model or MoE TP)."""
    return max(1, p.ep.ep_size // p.spec.tp) if p.model.is_moe else 1


def finish_probability(p: Plan) -> float:
    """Chance that a sequence finishes in a decode step (output tokens per step / OSL, at most 1)."""
    return min(1.0, p.decode.workload.output_per_sequence / p.spec.osl)


def prefill_in_step_s(p: Plan) -> float:
    """Seconds a decode step of aggregated serving spends on prompts: the busiest attention group's prompts on
    the attention side, the mean on the side spread over the EP group (seconds per prompt from the planned
    prefill step, whose terms hold every micro-batch: what two of them hide comes off the spread side)."""
    wl = p.prefill.workload
    prompts = wl.prefill_tokens / wl.new_tokens_per_prompt  # per attention group and prefill step
    prompt_s = p.prefill.step_s / prompts
    spread = GATHERED_TERMS if p.ep.gathers else SPREAD_TERMS  # the phases of a plan share its transport's kind
    attention_s = min(prompt_s, sum(t.time_s for t in p.prefill.terms if t.name not in spread) / prompts)
    batch, finish = p.spec.batch, finish_probability(p)
    busiest = busiest_arrivals(batch, finish, 1 if p.spec.balances_prompts else synchronized_groups(p))
    return attention_s * busiest + (prompt_s - attention_s) * batch * finish
