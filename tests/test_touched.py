"""Distinct expert slots touched per GPU: counted on routing samples, expected from loads, used by the step."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from wideep.core.errors import InputError
from wideep.perf.workload import CommCurve, ExpertParallel
from wideep.plan import PlanSpec, plan
from wideep.routing.stats import RoutingStats, from_topk, synthetic_routing
from wideep.slots import contiguous_phy2log
from wideep.specs.model import load_model
from wideep.traffic.touched import busiest_touched, touched_slots

QWEN = load_model("qwen3-30b-a3b")  # 128 experts, top-8, no group limit


def test_counts_by_hand_with_a_replicated_expert():
    # 2 GPUs x 3 slots; expert 0 on both GPUs. Tokens 0, 1 on rank 0, tokens 2, 3 on rank 1.
    p = np.array([[0, 1, 2, 0, 3, 4]])
    s = from_topk(np.array([[[0, 1], [0, 2], [0, 3], [0, 3]]]), 5)
    sel, hit = touched_slots(p, s, 2, 4, 2, rule="sglang")  # SGLang: each rank uses its own copy of expert 0
    assert sel.tolist() == [[4.0, 4.0]] and hit.tolist() == [[3.0, 2.0]]
    assert busiest_touched(sel, hit) == 3.0  # tie on selections: the GPU reading more experts


def test_sample_counts_match_the_poisson_estimate_for_uniform_routing():
    stats = synthetic_routing(QWEN, "uniform", 8 * 2, seed=0, layers=8)  # 2 tokens per GPU: ~16 copies each
    sel, hit = touched_slots(contiguous_phy2log(8, 128, 128), stats, 8, 8 * 2, QWEN.top_k)
    assert sel.sum(axis=1).tolist() == [2 * 8 * 8] * 8
    estimate = 16 * -np.expm1(-sel / 16)  # 16 slots per GPU, its copies spread evenly
    # a token's top-k experts are distinct, so its copies spread a little more than independent ones
    assert estimate.mean() < hit.mean() < 1.08 * estimate.mean()


def test_loads_only_gives_the_expected_count():
    stats = synthetic_routing(QWEN, "zipf:1.2", 4096, seed=1, layers=2)
    p = contiguous_phy2log(2, 128, 128)
    counted = touched_slots(p, stats, 8, 64, QWEN.top_k, seed=3)[1]
    expected = touched_slots(p, RoutingStats(128, stats.load, None), 8, 64, QWEN.top_k)[1]
    assert expected.mean() == pytest.approx(counted.mean(), rel=0.1)


def test_skewed_routing_touches_fewer_slots_than_the_even_spread_assumes():
    stats = synthetic_routing(QWEN, "zipf:1.5", 8 * 4, seed=0, layers=4)
    sel, hit = touched_slots(contiguous_phy2log(4, 128, 128), stats, 8, 8 * 4, QWEN.top_k)
    busiest = sel.argmax(axis=1)
    copies = sel[np.arange(4), busiest]
    assert busiest_touched(sel, hit) < (16 * -np.expm1(-copies / 16)).mean() * 0.8


def test_bad_token_count():
    stats = synthetic_routing(QWEN, "uniform", 8, seed=0, layers=1)
    with pytest.raises(InputError, match="tokens"):
        touched_slots(contiguous_phy2log(1, 128, 128), stats, 8, 0, QWEN.top_k)


def test_step_model_uses_counts_inside_their_range_only():
    zero = CommCurve.constant(0.0)
    ep = ExpertParallel(8, 16, 1 / 8, zero, zero, touched_tokens=(4.0, 8.0), touched_slots=(3.0, 5.0))
    assert ep.active_experts(4.0, 32.0) == 3.0 and ep.active_experts(8.0, 64.0) == 5.0
    assert ep.active_experts(math.sqrt(32), 45.0) == pytest.approx(4.0)  # linear in log tokens
    assert ep.active_experts(16.0, 20.0) == pytest.approx(16 * -math.expm1(-20 / 16))  # outside: the estimate
    assert ep.active_experts(4.0, 0.5) == 3.0 and replace(ep, touched_slots=(0.2, 5.0)).active_experts(4.0, 0.5) == 0.5


def test_plan_says_what_the_experts_touched_came_from(tmp_path):
    spec = PlanSpec(model="qwen3-30b-a3b", topology="hgx-h200", ep=8, batch=2, routing="zipf:1.2", prefill_tokens=512)
    p = plan(spec)
    assert p.calibration["experts_touched"].startswith("counted on a held-out zipf:1.2 routing sample")
    assert p.ep.touched_tokens == (1.0, 2.0) and 0 < p.ep.touched_slots[0] < p.ep.touched_slots[1] <= 16
    np.save(tmp_path / "loads.npy", synthetic_routing(QWEN, "zipf:1.2", 512, seed=0).load)
    loads = plan(replace(spec, routing=str(tmp_path / "loads.npy")))
    assert loads.calibration["experts_touched"].startswith("expected from the routing loads")
    assert p.to_dict()["expert_parallel"]["touched_source"] == p.calibration["experts_touched"]


def test_small_steps_average_the_busiest_rank_over_held_out_steps():
    """One 4-token step's busiest rank is a noisy draw: the count is a mean over 256 disjoint steps (1,024 tokens in
    all), and a step of 1,024 tokens or more is counted once."""
    import numpy as np

    from wideep.plan.ep_group import step_samples
    from wideep.routing.stats import from_topk

    ids = np.random.default_rng(0).integers(0, 64, size=(2, 4096, 4))
    sample = from_topk(ids, 64)
    steps = step_samples(sample, 4)
    assert len(steps) == 256 and all(s.topk_ids.shape == (2, 4, 4) for s in steps)
    assert np.array_equal(np.concatenate([s.topk_ids for s in steps], axis=1), ids[:, :1024])
    assert len(step_samples(sample, 1024)) == 1 and len(step_samples(from_topk(ids[:, :3], 64), 4)) == 1
