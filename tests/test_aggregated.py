"""Aggregated serving: prompts inside decode steps, the busiest attention group's under attention DP."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from wideep.plan import PlanSpec, plan
from wideep.plan.aggregated import GATHERED_TERMS, SPREAD_TERMS, busiest_arrivals, prefill_in_step_s

DEP8 = PlanSpec(model="deepseek-r1", topology="hgx-b200", ep=8, batch=384, isl=1024, osl=2048, dtype="nvfp4",
                overlap="none", transport="nccl-allgather", redundant=0, placement="contiguous")


@pytest.mark.parametrize("batch, p, groups", [(128, 1 / 2048, 8), (896, 1 / 2048, 8), (640, 1 / 2048, 4),
                                              (256, 0.01, 72), (512, 0.3, 288)])
def test_busiest_arrivals_match_a_simulation(batch, p, groups):
    draws = np.random.default_rng(7).binomial(batch, p, size=(100_000, groups)).max(axis=1)
    assert busiest_arrivals(batch, p, groups) == pytest.approx(draws.mean(), rel=0.02)


def test_busiest_arrivals_from_the_mean_to_the_batch():
    """One group: the mean. More groups: more, never past the batch (OSL 1: every sequence every step)."""
    assert busiest_arrivals(64, 0.25, 1) == 16.0
    assert busiest_arrivals(64, 1.0, 8) == 64.0 and busiest_arrivals(64, 0.0, 8) == 0.0
    values = [busiest_arrivals(64, 0.05, g) for g in (1, 2, 8, 72)]
    assert values == sorted(values) and values[-1] < 64 * 0.05 + 6 * np.sqrt(64 * 0.05)


def prompt_parts_s(p, spread: tuple[str, ...]) -> tuple[float, float]:
    """(attention side, spread side) of one prompt on its attention group, by hand from the prefill step."""
    wl = p.prefill.workload
    prompts = wl.prefill_tokens / (wl.context * (1 - wl.cache_hit))
    attention = sum(t.time_s for t in p.prefill.terms if t.name not in spread) / prompts
    return attention, p.prefill.step_s / prompts - attention


def test_one_attention_group_per_ep_group_reads_the_mean():
    """Attention TP over the EP group: batch x (1 / OSL) prompts per step at one prompt's prefill time."""
    p = plan(replace(DEP8, tp=8, batch=64))
    mean_prompts = 64 * 1 / 2048
    assert prefill_in_step_s(p) == pytest.approx(mean_prompts * sum(prompt_parts_s(p, GATHERED_TERMS)), rel=1e-12)


def test_attention_dp_charges_the_attention_side_at_the_busiest_group():
    """Eight groups at 384 sequences, OSL 2,048: the attention side at the expected largest of eight
    Binomial(384, 1/2048) counts (0.90 prompts), the routed experts and the all-gather at the mean (0.1875)."""
    p = plan(DEP8)
    attention, spread = prompt_parts_s(p, GATHERED_TERMS)
    busiest = busiest_arrivals(384, 1 / 2048, 8)
    assert busiest == pytest.approx(0.90, abs=0.01)
    assert prefill_in_step_s(p) == pytest.approx(attention * busiest + spread * 384 / 2048, rel=1e-12)


def test_deepep_communication_waits_for_the_busiest_sender():
    """Behind DeepEP the dispatch and combine count with the attention side; two micro-batches' hidden time
    comes off the spread side (the parts still add up to the prefill step)."""
    p = plan(replace(DEP8, transport="deepep-ll", overlap="tbo"))
    attention, spread = prompt_parts_s(p, SPREAD_TERMS)
    assert spread >= 0 and attention > prompt_parts_s(p, GATHERED_TERMS)[0]
    busiest = busiest_arrivals(384, 1 / 2048, 8)
    assert prefill_in_step_s(p) == pytest.approx(attention * busiest + spread * 384 / 2048, rel=1e-12)


def test_balanced_prompts_read_the_mean():  # DEP8: one GPU per attention group, dispatching
    """An engine that holds prompts back until every group has one (TensorRT-LLM's enable_balance): the mean."""
    p = plan(replace(DEP8, balanced_prompts=True))
    assert prefill_in_step_s(p) == pytest.approx(384 / 2048 * sum(prompt_parts_s(p, GATHERED_TERMS)), rel=1e-12)
    assert prefill_in_step_s(p) < prefill_in_step_s(plan(DEP8))


def test_balanced_prompts_must_be_a_bool():
    from wideep.core.errors import InputError

    with pytest.raises(InputError, match="true or false") as exc:
        PlanSpec(balanced_prompts="yes")
    assert exc.value.source == "--balanced-prompts"
