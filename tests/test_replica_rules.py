"""The engines' replica rules (wideep.slots): tiny hand-checkable cases for each, and where they agree.

The rules are read in the engines' sources (docs/sources.md section 4): SGLang's static dispatch
(``compute_logical_to_rank_dispatch_physical_map``), vLLM's ``eplb_map_to_physical_and_record``,
TensorRT-LLM's ``moeComputeRouteKernel``, and wideep's own ``nearest``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from conftest import run_cli
from wideep.core.errors import InputError
from wideep.routing.stats import RoutingStats, from_topk, synthetic_routing
from wideep.slots import (REPLICA_RULES, check_replica_rule, choose_replicas, dispatch_weights, layer_slots,
                          sglang_table, token_hash)
from wideep.specs.model import load_model
from wideep.specs.topology import load_cluster
from wideep.traffic.a2a import a2a, gpu_loads

# 2 GPUs x 2 slots: GPU 0 holds experts 0 and 1, GPU 1 holds experts 0 and 2 (expert 0 replicated).
P2L = np.array([0, 1, 0, 2])
SRC = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # 4 tokens on each GPU
ALL_EXPERT_0 = np.zeros((8, 1), dtype=np.int64)  # every token selects expert 0 (top-1)


def slots(rule, domains=(0, 1)):
    return layer_slots(P2L, ALL_EXPERT_0, SRC, 2, np.array(domains), 3, rule)[:, 0].tolist()


@pytest.mark.parametrize("domains", [(0, 1), (0, 0)])
def test_nearest_and_sglang_keep_tokens_on_their_own_gpu(domains):
    for rule in ("nearest", "sglang"):
        assert slots(rule, domains) == [0, 0, 0, 0, 2, 2, 2, 2]  # slot 0 on GPU 0, slot 2 on GPU 1


def test_trtllm_round_robin_offset_by_rank():
    # rank 0: copies 0, 1, 0, 1 of [slot 0, slot 2]; rank 1 starts one copy later (offset by its EP rank)
    assert slots("trtllm") == [0, 2, 0, 2, 2, 0, 2, 0]


def test_vllm_hashes_the_token_index_on_its_rank():
    parity = (token_hash(np.arange(4)) % 2).tolist()
    assert parity == [1, 1, 0, 1]
    assert slots("vllm") == [[0, 2][p] for p in parity] * 2  # same local indices on both ranks


def test_vllm_and_trtllm_ignore_locality_and_spread_evenly():
    src = np.repeat([0, 1], 1000)
    ids = np.zeros((2000, 1), dtype=np.int64)
    for rule in ("vllm", "trtllm"):
        gpu = layer_slots(P2L, ids, src, 2, np.array([0, 1]), 3, rule)[:, 0] // 2
        remote = (gpu != src).mean()
        assert remote == pytest.approx(0.5, abs=0.05)  # half of each GPU's tokens cross to the other copy


def test_sglang_node_rule_then_fair_pick():
    # 4 GPUs x 2 slots, domains {0, 1} and {2, 3}; expert 0 on GPU 1 (slot 2) and GPU 3 (slot 6).
    p2l = np.array([1, 2, 0, 3, 4, 5, 0, 6])
    two_nodes = sglang_table(p2l, 4, np.array([0, 0, 1, 1]), 7)[:, 0].tolist()
    assert two_nodes == [2, 2, 6, 6]  # GPUs 0 and 2 use the copy in their own node
    one_node = sglang_table(p2l, 4, np.array([0, 0, 0, 0]), 7)[:, 0].tolist()
    assert one_node[1] == 2 and one_node[3] == 6  # own copies
    assert sorted([one_node[0], one_node[2]]) == [2, 6]  # all copies in the node: fair pick deals one each


def test_sglang_node_rule_takes_the_lowest_copy_in_the_node():
    # expert 0 on GPUs 0 and 1 (node 0) and GPU 2 (node 1): GPU 3 is alone with one copy in its node
    p2l = np.array([0, 1, 0, 2, 0, 3, 4, 5])
    table = sglang_table(p2l, 4, np.array([0, 0, 1, 1]), 6)[:, 0].tolist()
    assert table == [0, 2, 4, 4]
    # copies of expert 0 all in node 0 (GPUs 0 and 1): node 1 has none, so GPUs 2 and 3 take one each
    p2l = np.array([0, 1, 0, 2, 3, 4, 5, 6])
    table = sglang_table(p2l, 4, np.array([0, 0, 1, 1]), 7)[:, 0].tolist()
    assert table[:2] == [0, 2] and sorted(table[2:]) == [0, 2]


def test_sglang_fair_pick_deals_copies_evenly():
    # 8 GPUs of one node x 4 slots; expert 0 has copies on GPUs 0, 1, 2: the other 5 GPUs are dealt 2, 2, 1
    p2l = np.array([0, 1, 2, 3, 0, 4, 5, 6, 0] + list(range(7, 30)))
    for layer in range(20):
        table = sglang_table(p2l, 8, np.zeros(8, int), 30, layer)[:, 0]
        assert table[:3].tolist() == [0, 4, 8]
        assert sorted(np.bincount(table, minlength=9)[[0, 4, 8]].tolist()) == [2, 3, 3]


def test_loads_only_weights_by_hand():
    dom = np.array([0, 1])
    for rule in ("nearest", "sglang"):
        assert dispatch_weights(P2L, 2, dom, 3, rule).tolist() == [[1, 1, 0, 1], [0, 1, 1, 1]]
    for rule in ("vllm", "trtllm"):
        assert dispatch_weights(P2L, 2, dom, 3, rule).tolist() == [[0.5, 1, 0.5, 1]] * 2
    stats = RoutingStats(3, np.array([[8.0, 2.0, 2.0]]), None)  # each GPU holds half of every expert's load
    assert gpu_loads(P2L[None], stats, 2, dom, "sglang").tolist() == [[6.0, 6.0]]
    stats = RoutingStats(3, np.array([[8.0, 4.0, 0.0]]), None)
    assert gpu_loads(P2L[None], stats, 2, dom, "vllm").tolist() == [[8.0, 4.0]]  # 4 + 4 of expert 0, 4 of 1
    assert gpu_loads(P2L[None], stats, 2, dom, "sglang").tolist() == [[8.0, 4.0]]


@pytest.mark.parametrize("tokens_first", [True, False])
def test_every_rule_holds_the_expert_and_loads_add_up(tokens_first):
    rng = np.random.default_rng(1)
    phy2log = np.stack([rng.permutation(np.r_[np.arange(16), rng.integers(0, 16, 8)]) for _ in range(3)])
    ids = np.sort(np.stack([np.stack([rng.choice(16, 4, replace=False) for _ in range(64)]) for _ in range(3)]), 2)
    src = np.arange(64) // 8 if tokens_first else np.arange(64) % 8
    for rule in REPLICA_RULES:
        chosen = choose_replicas(phy2log, ids, src, 8, np.arange(8) // 4, rule)
        assert np.array_equal(np.take_along_axis(phy2log[:, None, :].repeat(64, 1), chosen, 2), ids)


def test_rules_agree_without_replicas():
    """With one copy per expert there is no choice: sglang, vllm, trtllm (and nearest) give the same bytes."""
    model = load_model("qwen3-30b-a3b")
    cluster = load_cluster("hgx-h100", 16)
    rng = np.random.default_rng(0)
    phy2log = np.stack([rng.permutation(128) for _ in range(2)])  # a permuted one-copy placement
    stats = synthetic_routing(model, "topics:4", 16 * 32, seed=2, layers=2)
    loads_only = dataclasses.replace(stats, topk_ids=None)
    m = dataclasses.replace(model, moe_layers=2)
    for s in (stats, loads_only):
        results = [a2a(m, cluster, phy2log, s, 16, 32, "deepep-normal", replica_rule=r) for r in REPLICA_RULES]
        for r in results[1:]:
            assert r.bytes_by_tier == results[0].bytes_by_tier
            assert r.dispatch_s == results[0].dispatch_s and r.combine_s == results[0].combine_s
        loads = [gpu_loads(phy2log, s, 16, cluster.domain_of[:16], r) for r in REPLICA_RULES]
        assert all(np.array_equal(x, loads[0]) for x in loads)


def test_rules_differ_with_replicas():
    """Expert 0 copied on both GPUs of 2 domains: nearest/sglang send nothing across, vllm/trtllm about half."""
    model = dataclasses.replace(load_model("mixtral-8x7b"), moe_layers=1)  # 8 experts, top-2
    cluster = load_cluster("hgx-h100", 16)
    phy2log = np.array([list(range(8)) * 2])  # one slot per GPU: each domain holds every expert once
    ids = np.tile(np.array([[0, 1]]), (16 * 64, 1))[None]  # every token: experts 0 and 1
    stats = from_topk(ids.astype(np.int32), 8, rows_sorted=True)
    remote = {}
    for rule in REPLICA_RULES:
        r = a2a(model, cluster, phy2log, stats, 16, 64, "nccl", replica_rule=rule)
        remote[rule] = r.bytes_by_tier["dispatch"]["scale_out"]
        assert r.replica_rule == rule and r.summary()["replica_rule"] == rule
    assert remote["nearest"] == remote["sglang"] == 0.0  # each domain holds a copy of experts 0 and 1
    assert remote["vllm"] > 0 and remote["trtllm"] > 0


def test_unknown_rule():
    with pytest.raises(InputError, match="--replica-rule"):
        check_replica_rule("random")


def test_a2a_cli_shows_the_rule():
    args = ["a2a", "--model", "qwen3-30b-a3b", "--topology", "hgx-h100", "--ep", "16", "--tokens", "16"]
    res = run_cli(*args, "--replica-rule", "vllm", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["replica_rule"] == "vllm"
    text = run_cli(*args)
    assert "replica rule sglang" in text.stdout.splitlines()[0]
    bad = run_cli(*args, "--replica-rule", "random")
    assert bad.returncode == 2 and "--replica-rule" in bad.stderr


def test_plan_default_rule_is_the_library_default():
    """PlanSpec (kept light for the command line) names the same default as wideep.slots."""
    from wideep.plan.spec import PlanSpec
    from wideep.slots import DEFAULT_REPLICA_RULE

    assert PlanSpec().replica_rule == DEFAULT_REPLICA_RULE
