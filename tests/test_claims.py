"""The seed's claims (docs/claims.md), each checked on the model's own numbers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from wideep.core import units
from wideep.plan import PlanSpec, plan
from wideep.plan.search import Targets, cost_ratio, search
from wideep.specs.model import load_model


@pytest.fixture(scope="module")
def ratio_rows():
    spec = PlanSpec(model="deepseek-r1", isl=1024, osl=1024)
    result = search(spec, ["hgx-h200", "gb300-nvl72"], Targets(), mode="disagg", max_gpus=32,
                    dtypes={"gb300-nvl72": "nvfp4"})
    return cost_ratio(result)


def test_cost_ratio_is_a_curve_that_widens_with_interactivity(ratio_rows):
    ratios = [r["ratio"]["gb300-nvl72"] for r in ratio_rows if r["ratio"]["gb300-nvl72"] is not None]
    assert 1 / 5 < ratios[0] < 1  # deep batches: a few times cheaper, not 35x
    assert min(ratios) < ratios[0] / 10  # at high interactivity the gap is ten times the deep-batch one and more
    beyond_h200 = [r for r in ratio_rows if r["hgx-h200"] is None and r["gb300-nvl72"] is not None]
    assert beyond_h200  # interactivity only the rack reaches


def test_mla_kv_against_gqa_at_128k():
    dt = units.DTYPES["bf16"]
    per_token = {m: load_model(m).kv_bytes(1, dt) for m in ("deepseek-v3", "llama-3.1-405b")}
    assert per_token == {"deepseek-v3": 70_272, "llama-3.1-405b": 516_096}  # DeepSeek ISCA'25 paper figures


def test_ep32_needs_more_than_an_8_gpu_domain():
    spec = PlanSpec(ep=32)
    hgx, rack = plan(replace(spec, topology="hgx-b200")), plan(replace(spec, topology="gb200-nvl72"))
    comm = {p.system: p.decode.breakdown_ms["dispatch"] + p.decode.breakdown_ms["combine"] for p in (hgx, rack)}
    assert hgx.ep.binding_tier == "scale_out" and rack.ep.binding_tier == "nvlink"
    assert comm["hgx-b200"] > 3 * comm["gb200-nvl72"]
    assert hgx.prefill.binding == "nic" and rack.prefill.binding != "nic"
    assert rack.decode.tokens_per_s_per_gpu > 1.4 * hgx.decode.tokens_per_s_per_gpu
