"""Validation against published figures (REFERENCES.md section 3) and the Hopper-vs-Blackwell claim.

Explicit tolerances; the two DeepSeek figures are NOT met by the model today and are marked
``xfail(strict=True)`` with the size of the miss, so a change that brings them in range turns them red
until the marker is removed (docs/plan.md "Validation" explains the misses).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from wideep.plan import PlanSpec, plan
from wideep.perf.roofline import RESOURCES
from wideep.plan.sweep import batch_for_interactivity, curve, lead_by_interactivity

TOLERANCE = 0.30
GPUS_PER_NODE = 8  # H800 nodes (REFERENCES.md section 3)

# DeepSeek inference system, open-infra-index day 6 (REFERENCES.md section 3): decode EP144, average KV
# length 4,989, 20-22 tokens/s per user, ~14.8k output tokens/s per H800 node; MTP with one draft token,
# acceptance 85-90% (DeepSeek-V3 technical report; the low end taken).
DECODE = PlanSpec(topology="dgx-h800", ep=144, context=4989, mtp=1, acceptance=0.85)
DECODE_PER_NODE, DECODE_PER_USER = 14_800, 21.0
# Prefill EP32, ~73.7k input tokens/s per node including cache hits, hit rate 56.3%. The prompt length is
# not published; the decode's average KV length 4,989 is taken as the prompt length.
PREFILL = PlanSpec(topology="dgx-h800", ep=32, isl=4989, cache_hit=0.563)
PREFILL_PER_NODE = 73_700


def decode_per_node() -> float:
    return batch_for_interactivity(DECODE, DECODE_PER_USER).decode.tokens_per_s_per_gpu * GPUS_PER_NODE


def prefill_per_node() -> float:
    return plan(PREFILL).prefill.tokens_per_s_per_gpu * GPUS_PER_NODE


@pytest.mark.xfail(strict=True, reason="model predicts ~27.3k tok/s/node (+85%): memory-capped batch 146 "
                                       "gives 23.4 tok/s/user with two micro-batches; see docs/plan.md")
def test_deepseek_decode_ep144():
    assert decode_per_node() == pytest.approx(DECODE_PER_NODE, rel=TOLERANCE)


@pytest.mark.xfail(strict=True, reason="model predicts ~217k input tok/s/node (+194%) at 8,192 prompt tokens "
                                       "per GPU per step; see docs/plan.md")
def test_deepseek_prefill_ep32():
    assert prefill_per_node() == pytest.approx(PREFILL_PER_NODE, rel=TOLERANCE)


# DeepSeek's profile-data README (deepseek-ai/profile-data): decode "EP128, TP1, a prompt length of 4K (closely
# matching the actual online deployment configuration), with a batch size of 128 requests per GPU", two
# micro-batches. At that deployed batch the published 20-22 tokens/s per user is a steady-state figure.
DEPLOYED_BATCH = 128


def test_deepseek_interactivity_at_the_deployed_batch():
    """Tokens/s per user at DeepSeek's deployed decode batch within 30% of the published 20-22 (midpoint 21)."""
    per_user = plan(replace(DECODE, batch=DEPLOYED_BATCH)).decode.tokens_per_s_per_user
    assert per_user == pytest.approx(DECODE_PER_USER, rel=TOLERANCE)


def test_deepseek_figures_are_in_the_model_range():
    """What does hold: both predictions are within 4x of the published figures, and above them
    (the model is an upper bound: no scheduling, sampling or load-variation losses)."""
    for predicted, published in ((decode_per_node(), DECODE_PER_NODE), (prefill_per_node(), PREFILL_PER_NODE)):
        assert published <= predicted <= 4 * published


def test_cache_hits_raise_served_prompt_throughput():
    cold = plan(PlanSpec(topology="dgx-h800", ep=32, isl=4989, cache_hit=0.0)).prefill.tokens_per_s_per_gpu
    warm = plan(PREFILL).prefill.tokens_per_s_per_gpu
    assert 1.0 < warm / cold < 1 / (1 - 0.563)  # hits are free to compute but still attended to


@pytest.mark.parametrize("hopper", ["hgx-h100", "hgx-h200"])
def test_gb200_ahead_at_every_interactivity(hopper):
    """DeepSeek-V3 EP32 (issue 5): one GB200 NVL72 rack vs four HGX nodes, batch sweep."""
    spec = PlanSpec(ep=32)
    lead = lead_by_interactivity({t: curve(PlanSpec(topology=t, ep=32)) for t in (hopper, "gb200-nvl72")})
    assert lead.ahead_everywhere == "gb200-nvl72", [r for r in lead.rows if r["leader"] != "gb200-nvl72"]
    assert len(lead.rows) >= 10 and spec.ep == 32
    for r in lead.rows:
        assert all(r[s] is None or r[s]["binding"] in RESOURCES for s in (hopper, "gb200-nvl72"))
