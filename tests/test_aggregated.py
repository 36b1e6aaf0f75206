"""Aggregated serving: prompts inside decode steps, the busiest attention group's under attention DP."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from wideep.plan import PlanSpec, plan
from wideep.plan.aggregated import busiest_arrivals, prefill_in_step_s, prompts_per_step, synchronized_groups

DEP8 = PlanSpec(model="deepseek-r1", topology="hgx-b200", ep=8, batch=384, isl=1024, osl=2048, dtype="nvfp4",
                overlap="none", transport="nccl-allgather")


@pytest.mark.parametrize("rate, groups", [(0.0625, 8), (0.4375, 8), (0.3125, 4), (2.5, 16)])
def test_busiest_arrivals_match_a_simulation(rate, groups):
    draws = np.random.default_rng(7).poisson(rate, size=(200_000, groups)).max(axis=1)
    assert busiest_arrivals(rate, groups) == pytest.approx(draws.mean(), rel=0.02)


def test_busiest_arrivals_grow_with_groups_from_the_mean():
    values = [busiest_arrivals(0.2, g) for g in (1, 2, 8, 72)]
    assert values[0] == 0.2 and values == sorted(values) and values[-1] < 72 * 0.2
    assert busiest_arrivals(0.0, 8) == 0.0


def mean_prompt_s(p) -> float:
    """The prompts of one step at the mean: every group's share of the admitted prompts at its prefill rate."""
    return prompts_per_step(p) * p.spec.isl / (p.prefill.tokens_per_s_per_gpu * p.spec.tp)


def test_one_attention_group_per_ep_group_reads_the_mean():
    p = plan(replace(DEP8, tp=8, batch=64))
    assert synchronized_groups(p) == 1
    assert prefill_in_step_s(p) == pytest.approx(mean_prompt_s(p), rel=1e-12)


def test_attention_dp_waits_for_the_busiest_group_on_the_attention_side_only():
    p = plan(DEP8)
    assert synchronized_groups(p) == 8
    mean = mean_prompt_s(p)
    worst = mean * busiest_arrivals(prompts_per_step(p), 8) / prompts_per_step(p)  # every term at the busiest
    assert mean < prefill_in_step_s(p) < worst
