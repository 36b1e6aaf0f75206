"""Properties that hold for any input (hypothesis): conservation of selections, valid placements, byte sizes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from wideep.placement.eplb import rebalance
from wideep.routing.stats import from_topk
from wideep.traffic.a2a import gpu_loads
from wideep.slots import REPLICA_RULES, choose_replicas
from wideep.core.units import DTYPES

SMALL = settings(max_examples=40, deadline=None)


@st.composite
def placements(draw):
    """(phy2log (layers, slots), ep, n_experts, topk_ids (layers, tokens, k)) with every expert placed."""
    n_experts = draw(st.integers(2, 12))
    ep = draw(st.integers(1, 4))
    per_gpu = draw(st.integers(-(-n_experts // ep), -(-n_experts // ep) + 2))
    layers, k = draw(st.integers(1, 3)), draw(st.integers(1, min(3, n_experts)))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(layers):
        extra = rng.integers(0, n_experts, size=ep * per_gpu - n_experts)
        rows.append(rng.permutation(np.concatenate([np.arange(n_experts), extra])))
    tokens = ep * draw(st.integers(1, 6))
    ids = np.sort(np.stack([np.stack([rng.choice(n_experts, k, replace=False) for _ in range(tokens)])
                            for _ in range(layers)]), axis=2)
    return np.array(rows), ep, n_experts, ids


@SMALL
@given(placements())
def test_every_selection_reaches_exactly_one_gpu(case):
    phy2log, ep, n_experts, ids = case
    stats = from_topk(ids, n_experts)
    for rule in REPLICA_RULES:
        loads = gpu_loads(phy2log, stats, ep, rule=rule)
        assert loads.shape == (phy2log.shape[0], ep)
        assert np.all(loads.sum(axis=1) == ids.shape[1] * ids.shape[2])


@SMALL
@given(placements())
def test_chosen_replica_holds_the_selected_expert(case):
    phy2log, ep, n_experts, ids = case
    tokens = ids.shape[1]
    src = np.arange(tokens) // (tokens // ep)
    for rule in REPLICA_RULES:
        slots = choose_replicas(phy2log, ids, src, ep, np.arange(ep) // 2, rule)
        held = np.take_along_axis(phy2log[:, None, :].repeat(tokens, axis=1), slots, axis=2)
        assert np.array_equal(held, ids)


@SMALL
@given(st.integers(1, 3), st.integers(1, 4), st.integers(0, 8), st.integers(0, 2**31 - 1))
def test_balanced_placement_places_every_expert_with_equal_slots(layers, ep, extra, seed):
    n_experts = 8
    n_slots = -(-(n_experts + extra) // ep) * ep
    load = np.random.default_rng(seed).integers(0, 100, size=(layers, n_experts)).astype(float)
    phy2log = rebalance(load, n_slots, 1, 1, ep)
    assert phy2log.shape == (layers, n_slots)
    for row in phy2log:
        assert set(row.tolist()) == set(range(n_experts))


@given(st.sampled_from(sorted(DTYPES)), st.integers(1, 100_000))
def test_payload_bytes_cover_the_values(name, values):
    dt = DTYPES[name]
    payload = dt.activation_bytes(values)
    assert values * dt.bits / 8 <= payload <= values * dt.bits / 8 + (values + 1) * dt.scale_bytes
    assert dt.activation_bytes(values + 1) >= payload
