"""Traffic model: replica choice, GPU loads, copies per transport, link loads, times, CLI."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from wideep.core import catalog
from wideep.traffic.copies import count_gpus, count_sorted_experts, group_of
from wideep.core.errors import CatalogError, InputError, WideEPError
from wideep.specs.model import load_model
from wideep.routing.stats import RoutingStats, from_topk, synthetic_routing
from wideep.specs.topology import load_cluster
from wideep.traffic.a2a import a2a, a2a_curve, busiest_peer, fabric, gpu_loads
from wideep.traffic.linkload import routes
from wideep.slots import choose_replicas, contiguous_phy2log
from wideep.traffic.transports import load_transport

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MIXTRAL = load_model("mixtral-8x7b")  # 8 experts, top-2, hidden 4096
DSV3 = load_model("deepseek-v3")


def one_layer(model, ids):
    m = dataclasses.replace(model, moe_layers=1)
    return m, from_topk(np.asarray(ids, dtype=np.int32)[None], model.n_experts, rows_sorted=True)


def test_contiguous_layout():
    assert contiguous_phy2log(2, 4, 8).tolist() == [[0, 1, 2, 3, 0, 1, 2, 3]] * 2
    with pytest.raises(InputError):
        contiguous_phy2log(1, 4, 3)


def test_choose_replicas_prefers_own_gpu_then_domain_then_spreads():
    # 4 ranks, 2 domains {0,1}, {2,3}; 2 slots per GPU; expert 0 on ranks 1 and 3, expert 1 on rank 0 only.
    phy2log = np.array([[1, 2, 0, 3, 4, 5, 0, 6]])
    dom = np.array([0, 0, 1, 1])
    ids = np.array([[[0, 1]] * 4])  # every rank's token picks experts 0 and 1
    slots = choose_replicas(phy2log, ids, np.array([0, 1, 2, 3]), 4, dom, "nearest")[0]
    assert slots[:, 0].tolist() == [2, 2, 6, 6]  # expert 0: rank 1's copy for domain 0, rank 3's for domain 1
    assert slots[:, 1].tolist() == [0, 0, 0, 0]
    spread = choose_replicas(np.array([[0, 0]]), np.zeros((1, 4, 1), int), np.zeros(4, int), 1,
                             np.zeros(1, int), "nearest")[0, :, 0]
    assert sorted(spread.tolist()) == [0, 0, 1, 1]  # two copies on one GPU share the tokens evenly


def test_gpu_loads_loads_only_and_samples():
    stats = RoutingStats(4, np.array([[8.0, 4.0, 2.0, 2.0]]), None)
    p = np.array([[0, 1, 2, 0, 3, 1]])  # 3 GPUs x 2 slots; experts 0 and 1 have two copies
    for rule in ("vllm", "trtllm", "nearest"):  # an even split over the copies (no rank holds both)
        assert gpu_loads(p, stats, 3, rule=rule).tolist() == [[6.0, 6.0, 4.0]]
    s = from_topk(np.array([[[0, 1], [0, 2], [1, 3], [2, 3]]], dtype=np.int32), 4)
    assert gpu_loads(contiguous_phy2log(1, 4, 4), s, 2).tolist() == [[4.0, 4.0]]  # experts 0,1 | 2,3


def test_copies_dedup_per_gpu_and_node_by_hand():
    group = group_of(np.array([0, 0, 1, 1]))
    ids = np.array([[0, 1], [0, 7], [4, 6], [2, 3]], dtype=np.int32)  # 8 experts, 2 per GPU; one token per rank
    fast = count_sorted_experts(ids, 2, group, ("selection", "gpu", "node"))
    assert fast["selection"].tolist() == [[2, 0, 0, 0], [1, 0, 0, 1], [0, 0, 1, 1], [0, 2, 0, 0]]
    assert fast["gpu"].tolist() == [[1, 0, 0, 0], [1, 0, 0, 1], [0, 0, 1, 1], [0, 1, 0, 0]]
    assert fast["node"].tolist() == [[1, 0], [1, 1], [0, 1], [1, 0]]
    general = count_gpus((ids // 2).T.astype(np.int16).copy(), group, ("selection", "gpu", "node"))
    assert all(np.array_equal(fast[k], general[k]) for k in fast)


def expected_time(cluster, transport, link_bytes, path_latency_s, phase, experts=0, tokens=0, sent_bytes=0.0):
    """One NVLink link carrying ``link_bytes``: bytes over the ramp's efficiency at that size or the blocks'
    send time (one block per expert: ``tokens`` rounds of ``issue_us``, ``sent_bytes`` at ``block_GBps`` per
    block), plus the NVLink fixed cost with its growth per expert (fewer experts than SMs: not packed) and the
    wire latency."""
    tr = load_transport(transport)
    eff = float(tr.link_efficiency(phase, np.array(["nvlink"]), np.array([link_bytes]))[0])
    k = {name: tr.constant(name, phase) for name in ("per_expert_s", "issue_s", "block_Bps")}
    rounds = -(-tokens // experts) if experts else 0  # one block per expert (fewer experts than SMs)
    send = k["issue_s"] * rounds + (sent_bytes / (experts * k["block_Bps"]) if k["block_Bps"] else 0.0)
    fixed = tr.latency_s[phase]["nvlink"] + k["per_expert_s"] * experts  # fewer experts than SMs: not packed
    return max(link_bytes / (cluster.gpu.nvlink_Bps * eff), send) + fixed + path_latency_s


def test_low_latency_one_domain_by_hand():
    """Rank 0's token picks experts 0 (own GPU) and 4 (rank 1): one FP8 message of 4096 + 32 x 4 + 16 B."""
    m, stats = one_layer(MIXTRAL, [[[0, 4], [4, 5]]][0])
    cluster = load_cluster("hgx-h100", 2)
    r = a2a(m, cluster, contiguous_phy2log(1, 8, 8), stats, 2, 1, "deepep-ll")
    msg = 4096 + 4096 / 128 * 4 + 16
    assert r.message_bytes["dispatch"] == msg
    # rank 1's token (experts 4, 5) stays home, so the busiest link carries one message.
    assert r.bytes_by_tier["dispatch"] == {"nvlink": msg, "scale_out": 0.0}
    hop_s = cluster.system.scale_up.latency_s
    # 8 experts: 8 blocks, so one token per GPU is one round; in combine rank 1 moves the most: the 3 copies it
    # received sent back, plus its own token's reduced output, 8,192 B each.
    assert r.dispatch_s == pytest.approx(expected_time(cluster, "deepep-ll", msg, hop_s, "dispatch", 8, 1, 2 * msg))
    assert r.dispatch_sol_s == pytest.approx(msg / cluster.gpu.nvlink_Bps)
    assert r.combine_s == pytest.approx(expected_time(cluster, "deepep-ll", 2 * 4096, hop_s, "combine", 8, 1,
                                                      4 * 2 * 4096))
    assert r.logical_bytes_per_gpu["dispatch"] == 2 * msg  # two selections per rank, local one included
    assert r.binding_tier == "nvlink"


def test_nccl_sends_one_copy_per_gpu():
    m, stats = one_layer(MIXTRAL, [[4, 5], [6, 7]])  # rank 0's token: two experts, both on rank 1
    cluster = load_cluster("hgx-h100", 2)
    ll = a2a(m, cluster, contiguous_phy2log(1, 8, 8), stats, 2, 1, "deepep-ll", "bf16")
    nccl = a2a(m, cluster, contiguous_phy2log(1, 8, 8), stats, 2, 1, "nccl", "bf16")
    assert ll.bytes_by_tier["dispatch"]["nvlink"] == 2 * (8192 + 16)  # DeepEP LL: a 16 B header per message
    assert nccl.bytes_by_tier["dispatch"]["nvlink"] == 8192


def test_allgather_sends_every_token_to_every_gpu_whatever_its_routing():
    """nccl-allgather: each GPU's tokens go to each other GPU of the group (dispatch), and come back reduced
    (combine, bf16); where the tokens' experts are does not matter, and each GPU sends to all 7 others."""
    cluster = load_cluster("hgx-h200", 8)
    times = []
    for routing in ("uniform", "zipf:1.2"):
        stats = synthetic_routing(DSV3, routing, 8 * 16, seed=0, layers=1)
        r = a2a(DSV3, cluster, contiguous_phy2log(1, 256, 256), stats, 8, 16, "nccl-allgather", "fp8", "bf16")
        assert r.bytes_by_tier["dispatch"]["nvlink"] == pytest.approx(8 * 7 * 16 * (7168 + 224))
        assert r.bytes_by_tier["combine"]["nvlink"] == pytest.approx(8 * 7 * 16 * 7168 * 2)
        assert r.logical_bytes_per_gpu["dispatch"] == pytest.approx(8 * 16 * (7168 + 224))  # own GPU's copy too
        times.append((r.dispatch_s, r.combine_s))
    assert times[0] == pytest.approx(times[1])


def test_deepep_normal_relays_through_the_same_rail_gpu():
    """Rank 0's token picks experts on ranks 9 and 10 (domain 1): one RDMA copy to rank 8, then NVLink."""
    m = dataclasses.replace(DSV3, moe_layers=1, n_group=1, topk_group=1)
    ids = np.arange(16, dtype=np.int32)[:, None] * 16 + np.arange(8, dtype=np.int32)  # rank r's token stays on r
    ids[0] = [9 * 16, 9 * 16 + 1, 9 * 16 + 2, 9 * 16 + 3, 10 * 16, 10 * 16 + 1, 10 * 16 + 2, 10 * 16 + 3]
    stats = from_topk(np.sort(ids)[None], 256, rows_sorted=True)
    cluster = load_cluster("dgx-h800", 16)
    r = a2a(m, cluster, contiguous_phy2log(1, 256, 256), stats, 16, 1, "deepep-normal")
    edges = {f"{u}->{v}": i for i, (u, v) in enumerate(r.edges)}
    link = lambda name: r.link_bytes["dispatch"][edges[name]]  # noqa: E731
    msg = r.message_bytes["dispatch"]
    assert msg == 7168 + 224
    assert link("gpu0->nic0") == pytest.approx(msg)  # once per destination node
    assert link("nic8->gpu8") == pytest.approx(msg)  # lands on rank 8, same rail as rank 0
    assert link("gpu8->nvsw1") == pytest.approx(2 * msg)  # forwarded to ranks 9 and 10
    assert link("nvsw1->gpu9") == pytest.approx(msg) and link("nvsw1->gpu10") == pytest.approx(msg)
    assert link("gpu0->nvsw0") == 0.0


def test_fast_and_general_paths_agree_and_placement_matters():
    stats = synthetic_routing(DSV3, "zipf:0.8", 16 * 32, seed=2, layers=2)
    cluster = load_cluster("dgx-h800", 16)
    p = contiguous_phy2log(2, 256, 256)
    for t in ("deepep-ll", "nccl", "deepep-normal"):
        a = a2a(DSV3, cluster, p, stats, 16, 32, t)
        b = a2a(DSV3, cluster, p, dataclasses.replace(stats, rows_sorted=False), 16, 32, t)
        assert a.dispatch_s == pytest.approx(b.dispatch_s) and a.combine_s == pytest.approx(b.combine_s)
    # redundant slots change the traffic: hot experts copied onto every GPU stay local more often
    hot = np.argmax(stats.load, axis=1)  # every GPU gets a 17th slot holding the hottest expert
    spread = np.concatenate([p.reshape(2, 16, 16), np.broadcast_to(hot[:, None, None], (2, 16, 1))], axis=2)
    r = a2a(DSV3, cluster, spread.reshape(2, -1), stats, 16, 32, "deepep-ll")
    base = a2a(DSV3, cluster, p, stats, 16, 32, "deepep-ll")
    assert r.bytes_by_tier["dispatch"]["scale_out"] < base.bytes_by_tier["dispatch"]["scale_out"]


def test_loads_only_approximation_is_close_for_uniform_routing():
    qwen = load_model("qwen3-30b-a3b")  # no group limit: selections close to independent
    stats = synthetic_routing(qwen, "uniform", 16 * 256, seed=0, layers=2)
    loads = RoutingStats(128, stats.load, None)
    cluster = load_cluster("dgx-h800", 16)
    p = contiguous_phy2log(2, 128, 128)
    for t in ("deepep-ll", "nccl", "deepep-normal"):
        a, b = (a2a(qwen, cluster, p, s, 16, 256, t) for s in (stats, loads))
        assert b.bytes_by_tier["dispatch"]["scale_out"] == pytest.approx(a.bytes_by_tier["dispatch"]["scale_out"],
                                                                          rel=0.1)


@pytest.mark.parametrize("name", catalog.list_ids("transports"))
def test_every_transport_loads(name):
    t = load_transport(name)
    assert 0 < min(t.efficiency.values()) <= max(t.efficiency.values()) <= 1
    assert all(v >= 0 for p in t.latency_s.values() for v in p.values()) and t.copies in ("selection", "gpu", "node", "all")
    assert all(0 < e <= 1 for tiers in t.ramp.values() for _, effs in tiers.values() for e in effs)


def test_deepep_ll_scale_out_fixed_cost_grows_with_the_remote_share():
    """Fitted at EP64 (7/8 of the group remote): at EP16 (1/2) the part above the NVLink cost shrinks in proportion."""
    t = load_transport("deepep-ll")
    nvlink, fitted = t.latency_s["dispatch"]["nvlink"], t.latency_s["dispatch"]["scale_out"]
    assert t.latency("dispatch", {"nvlink", "scale_out"}, 0.875) == pytest.approx(fitted)
    assert t.latency("dispatch", {"nvlink", "scale_out"}, 0.5) == pytest.approx(nvlink + (fitted - nvlink) * 0.5 / 0.875)
    assert t.latency("dispatch", {"nvlink"}, 0.5) == pytest.approx(nvlink)
    assert t.latency("dispatch", {"nvlink", "scale_out"}) == pytest.approx(fitted)  # no share given: as measured
    rdma = load_transport("deepep-ll-rdma")  # no share in its file: one fixed cost at every size
    assert rdma.latency("dispatch", {"scale_out"}, 0.5) == rdma.latency("dispatch", {"scale_out"}, 1.0)
    from wideep.traffic.linkload import routes
    share = {ep: float((routes(load_cluster("dgx-h800", ep), ep).pair_tier == "scale_out").mean())
             for ep in (8, 16, 64)}
    assert share == {8: 0.0, 16: 0.5, 64: 0.875}


@pytest.mark.parametrize("kwargs, match", [
    (dict(transport="nvlink-onesided"), "one NVLink domain"),
    (dict(tokens_per_gpu=0), "--tokens"),
    (dict(phy2log=np.zeros((1, 256), int)), "expert 1 has no slot"),
    (dict(phy2log=np.arange(250)[None] % 250), "do not divide"),
    (dict(ep_size=32), "between 1 and"),
])
def test_bad_inputs(kwargs, match):
    args = dict(model=DSV3, cluster=load_cluster("dgx-h800", 16), phy2log=contiguous_phy2log(1, 256, 256),
                stats=synthetic_routing(DSV3, "uniform", 64, layers=1), ep_size=16, tokens_per_gpu=4,
                transport="deepep-ll")
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        a2a(**args)


def test_unknown_transport_suggests():
    with pytest.raises(WideEPError, match="did you mean deepep-ll"):
        load_transport("deepep")


def test_bad_transport_file(tmp_path):
    bad = tmp_path / "t.toml"
    text = (catalog.catalog_root() / "topologies/transports/nccl.toml").read_text()
    bad.write_text(re.sub(r"(\[efficiency\]\nnvlink = )[0-9.]+", r"\g<1>1.5", text, count=1))
    with pytest.raises(Exception, match="efficiency.nvlink: must be <= 1"):
        load_transport(str(bad))
    bad.write_text(re.sub(r"(efficiency = \[[0-9.]+, )[0-9.]+", r"\g<1>1.5", text, count=1))
    with pytest.raises(Exception, match="ramp.dispatch.nvlink: efficiencies must lie in"):
        load_transport(str(bad))
    bad.write_text(text.replace("sms = ", "scale_out_fixed_share = 1.5\nsms = ", 1) if "sms = " in text
                   else "scale_out_fixed_share = 1.5\n" + text)
    with pytest.raises(Exception, match="scale_out_fixed_share: must lie in"):
        load_transport(str(bad))
    gather = (catalog.catalog_root() / "topologies/transports/nccl-allgather.toml").read_text()
    bad.write_text(gather.replace('forward = "direct"', 'forward = "rail"', 1))
    with pytest.raises(CatalogError, match='forward: an all-gather .* must be "direct"'):
        load_transport(str(bad))
    bad.write_text(gather.replace('ramp_bytes = "buffer"', 'ramp_bytes = "links"', 1))
    with pytest.raises(CatalogError, match="ramp_bytes"):
        load_transport(str(bad))


def test_cli_json_and_table():
    args = ["a2a", "--model", "deepseek-v3", "--topology", "dgx-h800", "--gpus", "16", "--ep", "16",
            "--tokens", "16", "--transport", "deepep-normal", "--routing", "topics:4"]
    r = run_cli(*args, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    for key in ("dispatch_us", "combine_us", "dispatch_sol_us", "combine_sol_us", "binding_link", "bytes_by_tier",
                "transport"):
        assert key in data
    assert data["transport"] == "deepep-normal" and data["dispatch_us"] > data["dispatch_sol_us"] > 0
    text = run_cli(*args)
    assert text.returncode == 0 and data["binding_link"] in text.stdout


def test_cli_bad_input_exit_2():
    r = run_cli("a2a", "--model", "deepseek-v3", "--topology", "dgx-h800", "--ep", "16", "--tokens", "8",
                "--transport", "nvlink-onesided")
    assert r.returncode == 2 and "one NVLink domain" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("a2a", "--model", "deepseek-v3", "--topology", "dgx-h800", "--ep", "16", "--tokens", "8",
                "--dtype", "fp6")
    assert r.returncode == 2 and "fp6" in r.stderr


def test_pure_rdma_sends_in_node_pairs_through_the_nics():
    cluster = load_cluster("dgx-h800", 8)  # one NVLink domain
    nic = fabric(cluster, load_transport("deepep-ll-rdma"))
    assert set(nic.edge_tier) == {"scale_out"} and fabric(cluster, load_transport("deepep-ll")) is cluster
    stats = synthetic_routing(DSV3, "uniform", 8 * 64, seed=0, layers=1)
    p = contiguous_phy2log(1, 256, 256)
    rdma, nvl = (a2a(DSV3, cluster, p, stats, 8, 64, t) for t in ("deepep-ll-rdma", "deepep-ll"))
    assert rdma.binding_tier == "scale_out" and rdma.bytes_by_tier["dispatch"]["nvlink"] == 0
    # each GPU's NIC link carries one message per selection of its tokens whose expert lives on another GPU
    ids, src = stats.topk_ids[0], np.arange(8 * 64) // 64
    remote = np.bincount(src, weights=(ids // 32 != src[:, None]).sum(axis=1), minlength=8)
    sent = [rdma.link_bytes["dispatch"][nic.edges.index((f"gpu{g}", f"nic{g}"))] for g in range(8)]
    assert np.allclose(sent, remote * rdma.message_bytes["dispatch"])
    assert rdma.dispatch_sol_s > 3 * nvl.dispatch_sol_s  # 50 GB/s of NIC against the H800's 200 of NVLink


def test_a_custom_graph_without_a_nic_path_cannot_run_pure_rdma():
    cluster = load_cluster(str(EXAMPLES / "two-boxes.toml"))
    with pytest.raises(InputError, match="--transport.*NIC path|NIC path"):
        fabric(cluster, load_transport("deepep-ll-rdma"))


def test_a_custom_graph_counts_pairs_that_cross_its_scale_out_link_as_scale_out():
    """Two boxes whose GPUs reach the 25 GB/s box-to-box link through their NVLink switch: the cross-box
    pairs are scale-out pairs, and their bytes are the ones the binding link carries."""
    cluster = load_cluster(str(EXAMPLES / "two-boxes.toml"))
    box = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    tiers = routes(cluster, 8).pair_tier
    off = ~np.eye(8, dtype=bool)
    assert (tiers[off] == np.where(box[:, None] != box[None, :], "scale_out", "nvlink")[off]).all()
    stats = synthetic_routing(DSV3, "uniform", 8 * 64, seed=0, layers=1)
    r = a2a(DSV3, cluster, contiguous_phy2log(1, 256, 256), stats, 8, 64, "deepep-ll")
    cross = r.link_bytes["dispatch"][cluster.edges.index(("box0/switch", "box1/switch"))] * 2  # both directions
    assert r.binding_tier == "scale_out"
    assert r.bytes_by_tier["dispatch"]["scale_out"] == pytest.approx(cross, rel=0.05)


def oversubscribed(tmp_path, ratio: float) -> str:
    """hgx-h200 with one rail, 8 NICs per leaf and one spine, leaf uplinks oversubscribed ``ratio``:1."""
    text = (ROOT / "topologies" / "systems" / "hgx-h200.toml").read_text()
    for key, value in (("rails", 1), ("leaf_downlinks", 8), ("spines", 1), ("oversubscription", ratio)):
        text = re.sub(rf"(?m)^{key} = \S+", f"{key} = {value}", text)
    path = tmp_path / f"over{ratio}.toml"
    path.write_text(text)
    return str(path)


def test_oversubscribed_uplinks_are_shared_by_the_leaf_nics(tmp_path):
    # EP16 = 2 nodes; leaf k holds the NICs of node k; each uplink carries all 8 NICs' cross-node bytes.
    stats = synthetic_routing(DSV3, "uniform", 16 * 64, seed=0, layers=1)
    p = contiguous_phy2log(1, 256, 256)
    res = {r: a2a(DSV3, load_cluster(oversubscribed(tmp_path, r), 16), p, stats, 16, 64, "deepep-ll")
           for r in (1.0, 4.0)}
    assert "spine" not in res[1.0].binding_link and "spine" in res[4.0].binding_link
    # leaf k's uplink carries one message per selection of a node-k token whose expert is on the other node
    ids, node = stats.topk_ids[0], np.arange(16 * 64) // 64 // 8
    cross = np.bincount(node, weights=(ids // 128 != node[:, None]).sum(axis=1)) * res[4.0].message_bytes["dispatch"]
    up = [res[4.0].link_bytes["dispatch"][res[4.0].edges.index((f"leaf0.{k}", "spine0"))] for k in (0, 1)]
    assert np.allclose(up, cross)
    assert res[4.0].dispatch_sol_s == pytest.approx(max(up) / 100e9)  # 8 NICs x 50 GB/s / 4
    assert res[4.0].dispatch_sol_s > 3 * res[1.0].dispatch_sol_s


def shared_nic_toml(tmp_path) -> str:
    """2 boxes of 2 GPUs on NVLink; in each box both GPUs reach the fabric through ONE 50 GB/s NIC."""
    nodes = [("fabric", "switch", None)]
    edges = []
    for b in (0, 1):
        nodes += [(f"b{b}/nvsw", "switch", None), (f"b{b}/nic", "nic", None)]
        edges += [(f"b{b}/nic", "fabric", 50)]
        for g in (0, 1):
            nodes.append((f"b{b}/gpu{g}", "gpu", b))
            edges += [(f"b{b}/gpu{g}", f"b{b}/nvsw", 450), (f"b{b}/gpu{g}", f"b{b}/nic", 64)]
    text = 'name = "shared-nic"\ngpu = "h100-sxm"\n'
    for n, kind, dom in nodes:
        text += f'[[nodes]]\nid = "{n}"\nkind = "{kind}"\n' + (f"domain = {dom}\n" if dom is not None else "")
    for u, v, bw in edges:
        tier = "nvlink" if v.endswith("nvsw") else "scale_out"
        text += f'[[edges]]\nsrc = "{u}"\ndst = "{v}"\nbw_GBps = {bw}\nlatency_us = 1.0\ntier = "{tier}"\n'
    path = tmp_path / "shared-nic.toml"
    path.write_text(text)
    return str(path)


def test_gpus_sharing_a_nic_share_its_bandwidth(tmp_path):
    cluster = load_cluster(shared_nic_toml(tmp_path))
    stats = synthetic_routing(DSV3, "uniform", 4 * 64, seed=0, layers=1)
    r = a2a(DSV3, cluster, contiguous_phy2log(1, 256, 256), stats, 4, 64, "deepep-ll")
    assert r.binding_link in ("b0/nic->fabric", "b1/nic->fabric", "fabric->b0/nic", "fabric->b1/nic")
    # box b's NIC link carries one message per selection of both its GPUs' tokens for the other box
    ids, box = stats.topk_ids[0], np.arange(4 * 64) // 64 // 2
    cross = np.bincount(box, weights=(ids // 128 != box[:, None]).sum(axis=1)) * r.message_bytes["dispatch"]
    out = [r.link_bytes["dispatch"][r.edges.index((f"b{b}/nic", "fabric"))] for b in (0, 1)]
    assert np.allclose(out, cross)
    assert r.dispatch_sol_s >= max(out) / 50e9


def test_routes_of_all_destinations_at_once_equal_one_destination_at_a_time(monkeypatch):
    """The block-diagonal propagation over 32 destinations gives the per-destination sums bit for bit."""
    from wideep.traffic import linkload

    cluster = load_cluster("hgx-h100", 32)
    together = linkload.build_routes(cluster, 32)
    monkeypatch.setattr(linkload, "DEST_CHUNK", 1)
    alone = linkload.build_routes(cluster, 32)
    assert (together.fraction != alone.fraction).nnz == 0
    assert np.array_equal(together.path_latency_s, alone.path_latency_s)
    assert np.array_equal(together.pair_tier, alone.pair_tier)
    # every pair's bytes leave its source once: off the diagonal, the first-hop shares sum to 1
    frac = together.fraction.tocoo()
    nodes = list(cluster.graph.nodes)
    src_of_edge = np.array([nodes.index(u) for u, _ in cluster.edges])
    src_node = np.array([nodes.index(n) for n in cluster.gpu_nodes[:32]])
    leaving = src_of_edge[frac.col] == src_node[frac.row // 32]
    out = np.bincount(frac.row[leaving], weights=frac.data[leaving], minlength=32 * 32).reshape(32, 32)
    assert np.allclose(out[~np.eye(32, dtype=bool)], 1.0) and not out.diagonal().any()


def test_route_distances_are_the_breadth_first_ones():
    from wideep.traffic.linkload import gpu_distances

    cluster = load_cluster("hgx-h100", 32)
    nodes = list(cluster.graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    eu = np.array([index[u] for u, _ in cluster.edges])
    ev = np.array([index[v] for _, v in cluster.edges])
    is_gpu = np.array([cluster.graph.nodes[n]["kind"] == "gpu" for n in nodes])
    src = np.array([index[n] for n in cluster.gpu_nodes])
    dist = gpu_distances(cluster, nodes, eu, ev, is_gpu, src)
    for d in (0, 9, 31):
        bfs = cluster.distance_to(cluster.gpu_nodes[d])
        assert dist[d].tolist() == [float(bfs.get(n, np.inf)) for n in nodes]


def test_transport_gpu_tables_serve_their_gpus():
    """[gpu.<name>] tables replace the constants they give, tier by tier, for the GPUs they list."""
    t = load_transport("deepep-ll")
    b300 = t.for_gpu("b300")
    assert b300 == t.for_gpu("b200") and b300.source == "transports/deepep-ll.toml [gpu.b200]"
    assert t.for_gpu("h100-sxm") is t and t.source == "transports/deepep-ll.toml"
    top, own = t.latency_s["dispatch"], b300.latency_s["dispatch"]
    assert own["nvlink"] != top["nvlink"]
    # scale-out not measured on B200: the top level's premium over NVLink is kept, and its ramp
    assert own["scale_out"] - own["nvlink"] == pytest.approx(top["scale_out"] - top["nvlink"])
    assert b300.ramp["dispatch"]["scale_out"] == t.ramp["dispatch"]["scale_out"]


def test_allgather_ramp_steps_where_nccl_does():
    """NCCL's all-gather steps at 1-2 MB per rank on B200 whatever the GPU count: its Blackwell tables read the
    ramp at the busiest pair's bytes, so 2 GPUs meet the step at 1/7 of the link bytes 8 GPUs do; Hopper's
    (its step at 1-2 MB of the whole buffer) at the buffer's."""
    t = load_transport("nccl-allgather")
    assert (t.ramp_bytes, t.for_gpu("b300").ramp_bytes, t.for_gpu("gb300").ramp_bytes) == ("buffer", "pair", "pair")
    m = dataclasses.replace(DSV3, moe_layers=1)

    def link_s(system: str, ep: int, tokens: int) -> tuple[float, float]:
        """(busiest link's time without the fixed cost and the pair's stream, its bytes)."""
        stats = synthetic_routing(m, "uniform", ep * tokens, seed=0, layers=1)
        cluster = load_cluster(system, ep)
        r = a2a(m, cluster, contiguous_phy2log(1, 256, 256), stats, ep, tokens, "nccl-allgather", "bf16", "bf16")
        stream = t.for_gpu(cluster.gpu.id).peer_time("dispatch", r.peer_bytes["dispatch"])
        return r.dispatch_s - r.latency_s["dispatch"] - stream, r.link_bytes["dispatch"].max()

    # B200, the same bytes per pair: the same efficiency, so the time scales with the link's bytes (7 peers to 1)
    (b8, bytes8), (b2, bytes2) = link_s("hgx-b200", 8, 1024), link_s("hgx-b200", 2, 1024)
    assert bytes8 == pytest.approx(7 * bytes2) and b8 == pytest.approx(7 * b2, rel=1e-6)
    # H200, the same buffer (8 x 1,024 and 2 x 4,096 tokens): link bytes 7 x 1,024 against 4,096 per token
    (h8, bytes8), (h2, bytes2) = link_s("hgx-h200", 8, 1024), link_s("hgx-h200", 2, 4096)
    assert bytes8 == pytest.approx(7 / 4 * bytes2) and h8 == pytest.approx(7 / 4 * h2, rel=1e-6)


def test_deepep_blocks_bound_the_send_side():
    """One block per expert slot up to the SMs: 8 experts send 1,024 tokens in 128 rounds, 256 experts on 132
    SMs (two slots per block, 128 blocks) in 8; the combine rate counts bytes per block."""
    t = load_transport("deepep-ll")
    issue, rate = t.constant("issue_s", "dispatch"), t.constant("block_Bps", "combine")
    assert float(t.send_time("dispatch", 1024, np.array(0.0), 8, 132)) == pytest.approx(128 * issue)
    assert float(t.send_time("dispatch", 1024, np.array(0.0), 256, 132)) == pytest.approx(8 * issue)
    assert float(t.send_time("combine", 1024, np.array(8e6), 8, 132)) == pytest.approx(8e6 / (8 * rate))
    assert float(load_transport("nccl").send_time("dispatch", 1024, np.array(8e6), 8, 132)) == 0.0
    normal = load_transport("deepep-normal")  # sends from the 20 SMs it holds, whatever the GPU's count
    assert float(normal.send_time("combine", 1024, np.array(8e6), 8, 0)) == pytest.approx(
        8e6 / (20 * normal.constant("block_Bps", "combine")) + 52 * normal.constant("issue_s", "combine"))
    # the fixed cost: per expert slot (dispatch), one step once the slots outnumber the SMs (combine)
    d0, c0 = (t.latency(p, {"nvlink"}) for p in ("dispatch", "combine"))
    per_slot, packed = t.constant("per_expert_s", "dispatch"), t.constant("packed_s", "combine")
    assert t.latency("dispatch", {"nvlink"}, None, 512, 132) == pytest.approx(d0 + 512 * per_slot)
    assert t.latency("combine", {"nvlink"}, None, 132, 132) == pytest.approx(c0)
    assert t.latency("combine", {"nvlink"}, None, 133, 132) == pytest.approx(c0 + packed)


def test_normal_kernels_relay_across_nodes():
    """Across nodes DeepEP's normal kernels pass every token through the RDMA stage once per destination node
    (own node included), then forward it to each destination GPU: the blocks move both stages' copies at
    the relaying rate. Uniform top-8 of 256 at EP16: about 6.5 GPU copies and 2.0 node copies per token."""
    t = load_transport("deepep-normal")
    relay = t.constant("relay_Bps", "dispatch")
    assert 0 < relay < t.constant("block_Bps", "dispatch")
    relayed = t.send_time("dispatch", 1024, np.array(8e6), 256, 132, relaying=True)
    assert float(relayed) == pytest.approx(8e6 / (20 * relay))
    model = dataclasses.replace(load_model("deepseek-v3"), n_group=1, topk_group=1)
    tokens = 256
    copies = {}
    for ep in (8, 16):
        stats = synthetic_routing(model, "uniform", ep * tokens, seed=0, layers=1)
        r = a2a(model, load_cluster("hgx-h200", ep), contiguous_phy2log(1, 256, 256), stats, ep, tokens,
                "deepep-normal")
        copies[ep] = r.sent_bytes["dispatch"] / r.message_bytes["dispatch"] / tokens
    assert 5.0 < copies[8] < 6.0  # one node: the GPU copies alone
    assert 8.2 < copies[16] < 9.2  # two nodes: GPU copies plus node copies
    # 4,096 tokens across two nodes: the blocks, at the relaying rate, set the dispatch time
    stats = synthetic_routing(model, "uniform", 16 * 4096, seed=0, layers=1)
    r = a2a(model, load_cluster("hgx-h200", 16), contiguous_phy2log(1, 256, 256), stats, 16, 4096, "deepep-normal")
    assert r.dispatch_s == pytest.approx(r.sent_bytes["dispatch"] / (20 * relay) + r.latency_s["dispatch"])


def test_normal_combine_reduces_at_its_own_rate():
    """Hopper's normal combine writes each own token's reduced output at the reduce rate, slower per byte than
    its copies (the H200 table's fit); the copies go at the block rate. A top-1 combine at EP8, 8,192 tokens
    per GPU: the blocks, not NVLink, set its time."""
    t = load_transport("deepep-normal")
    copy, reduce = t.constant("block_Bps", "combine"), t.constant("reduce_Bps", "combine")
    assert 0 < reduce < copy
    issue = t.constant("issue_s", "combine") * np.ceil(1024 / 20)
    sent = t.send_time("combine", 1024, np.array(8e6), 256, 132, reduced_bytes=2e6)
    assert float(sent) == pytest.approx(6e6 / (20 * copy) + 2e6 / (20 * reduce) + issue)
    assert float(t.send_time("dispatch", 1024, np.array(8e6), 256, 132, reduced_bytes=0.0)) == pytest.approx(
        8e6 / (20 * t.constant("block_Bps", "dispatch")) + t.constant("issue_s", "dispatch") * np.ceil(1024 / 20))
    model = dataclasses.replace(load_model("deepseek-v3"), hidden=5120, top_k=1, n_experts=16, n_group=1,
                                topk_group=1)
    tokens = 8192
    stats = synthetic_routing(model, "uniform", 8 * tokens, seed=0, layers=1)
    r = a2a(model, load_cluster("hgx-h200", 8), contiguous_phy2log(1, 16, 16), stats, 8, tokens, "deepep-normal")
    outputs = tokens * r.message_bytes["combine"]
    expected = t.send_time("combine", tokens, np.array(r.sent_bytes["combine"]), 16, 132, reduced_bytes=outputs)
    assert r.combine_s == pytest.approx(float(expected) + r.latency_s["combine"])


def test_reduce_rate_per_gpu_table():
    """Each GPU table holds its own reduce rate (B200's faster than its copies, GB200's its copy rate: not
    separated there); GPUs without a table take the top level's (H100 on H200's); a relaying kernel moves
    everything at its relaying rate."""
    t = load_transport("deepep-normal")
    top = t.constant("reduce_Bps", "combine")
    b200, gb200, h100 = (t.for_gpu(g) for g in ("b200", "gb200", "h100"))
    assert b200.constant("reduce_Bps", "combine") > b200.constant("block_Bps", "combine")
    assert gb200.constant("reduce_Bps", "combine") == gb200.constant("block_Bps", "combine")
    assert h100.constant("reduce_Bps", "combine") == top
    relayed = t.send_time("combine", 1024, np.array(8e6), 256, 132, relaying=True, reduced_bytes=2e6)
    assert float(relayed) == pytest.approx(8e6 / (20 * t.constant("relay_Bps", "combine")))


def test_normal_combine_curve_matches_the_direct_count():
    """a2a_curve scales the reduced outputs with the tokens as a2a counts them: the same combine time at a size
    other than the probe's."""
    model = dataclasses.replace(load_model("deepseek-v3"), hidden=5120, top_k=1, n_experts=16, n_group=1,
                                topk_group=1)
    cluster, phy2log = load_cluster("hgx-h200", 8), contiguous_phy2log(1, 16, 16)
    stats = synthetic_routing(model, "uniform", 8 * 4096, seed=0, layers=1)
    direct = a2a(model, cluster, phy2log, stats, 8, 4096, "deepep-normal")
    curve = a2a_curve(model, cluster, phy2log, stats, 8, 1024, (1024.0, 4096.0), "deepep-normal")
    assert curve["combine"]["time_s"][1] == pytest.approx(direct.combine_s, rel=0.02)


def test_nccl_pairs_stream_through_their_own_channels():
    """NCCL (B200 table): the busiest NVLink pair's bytes at the pair's rate add to the link time, and the fixed
    cost grows per GPU sent to; DeepEP has neither."""
    t = load_transport("nccl").for_gpu("b200")
    rate, per_peer = t.constant("peer_Bps", "dispatch"), t.constant("per_peer_s", "dispatch")
    assert 500e9 < rate < 900e9 and per_peer > 0  # one B200 pair: about 700 GB/s of the GPU's 900
    assert float(t.peer_time("dispatch", np.array(7e8))) == pytest.approx(7e8 / rate)
    assert t.latency("dispatch", {"nvlink"}, peers=7) == pytest.approx(t.latency("dispatch", {"nvlink"}) + 7 * per_peer)
    assert float(load_transport("deepep-ll").peer_time("dispatch", np.array(7e8))) == 0.0
    r = routes(load_cluster("hgx-b200", 8), 3)
    pair_bytes = np.array([[[9.0, 4.0, 0.0], [1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]])  # the diagonal is a GPU's own
    peer_bytes, peers = busiest_peer(pair_bytes, r)
    assert float(peer_bytes[0]) == 4.0 and int(peers[0]) == 2
    across = np.zeros((1, 16, 16))
    across[0, 0, 1], across[0, 0, 9] = 5.0, 50.0  # GPU 9 is in the second node: its pair is not an NVLink pair
    peer_bytes, peers = busiest_peer(across, routes(load_cluster("hgx-b200", 16), 16))
    assert float(peer_bytes[0]) == 5.0 and int(peers[0]) == 2


def test_one_sided_fixed_cost_grows_per_doubling_of_the_group():
    """One-sided NVLink: one copy per destination GPU, and a fixed cost that grows by ``per_doubling_s`` each
    time the EP group doubles (EP2 to EP32: four doublings), whatever the GPUs a GPU sends to."""
    t = load_transport("nvlink-onesided")
    step = t.constant("per_doubling_s", "combine")
    assert t.copies == "gpu" and step > 0
    assert t.latency("combine", {"nvlink"}, group=32) == pytest.approx(t.latency("combine", {"nvlink"}, group=2)
                                                                        + 4 * step)
    assert t.latency("combine", {"nvlink"}, group=8, peers=7) == t.latency("combine", {"nvlink"}, group=8)


GPU_TABLE = '[gpu.x]\ngpus = ["b200"]\nfitted_on = "y"\n'


@pytest.mark.parametrize("table, match", [
    ('[gpu.x]\nfitted_on = "y"\n', r"gpu\.x\.gpus: missing required field"),
    ('[gpu.x]\ngpus = []\nfitted_on = "y"\n', r"gpu\.x\.gpus: expected a list of GPU ids"),
    ('[gpu.x]\ngpus = ["b2OO"]\nfitted_on = "y"\n', r"gpu\.x\.gpus: unknown GPU 'b2OO'"),
    (GPU_TABLE + GPU_TABLE.replace("gpu.x", "gpu.z"), r"gpu\.z\.gpus: b200 is served by another"),
    (GPU_TABLE + "[gpu.x.efficiency]\nnvlink = 2.0\n", r"gpu\.x\.efficiency\.nvlink: must be <= 1"),
    (GPU_TABLE + "[gpu.x.issue_us]\ndispatch = -1.0\n", r"gpu\.x\.issue_us\.dispatch"),
    (GPU_TABLE + "bogus = 1\n", r"gpu\.x\.bogus"),
    (GPU_TABLE + 'ramp_bytes = "bus"\n', r"gpu\.x\.ramp_bytes"),
    ('[block_GBps]\nsend = 1.0\n', r"block_GBps\.send"),
    ('[block_GBps]\ncombine = 0.0\n', r"block_GBps\.combine: must be > 0"),
    ('[peer_GBps]\ndispatch = -700.0\n', r"peer_GBps\.dispatch: must be > 0"),
    ('[relay_GBps]\ncombine = 0.0\n', r"relay_GBps\.combine: must be > 0"),
    ('[reduce_GBps]\ncombine = -10.0\n', r"reduce_GBps\.combine: must be > 0"),
    ('[reduce_GBps]\ncombine = 0.0\n', r"reduce_GBps\.combine: must be > 0"),
    ('[reduce_GBps]\ncombine = "slow"\n', r"reduce_GBps\.combine: expected float"),
    (GPU_TABLE + "[gpu.x.reduce_GBps]\ncombine = -1.0\n", r"gpu\.x\.reduce_GBps\.combine: must be > 0"),
    ('[per_peer_us]\ndispatch = -0.5\n', r"per_peer_us\.dispatch: must be >= 0"),
    (GPU_TABLE + "[gpu.x.per_peer_us]\ncombine = \"fast\"\n", r"gpu\.x\.per_peer_us\.combine: expected float"),
])
def test_bad_transport_gpu_table(tmp_path, table, match):
    bad = tmp_path / "t.toml"
    bad.write_text((catalog.catalog_root() / "topologies/transports/deepep-ll-rdma.toml").read_text() + "\n" + table)
    with pytest.raises(CatalogError, match=match):
        load_transport(str(bad))


def test_plan_names_the_send_blocks_when_they_bind():
    """Mixtral's 8 experts at EP8: DeepEP's dispatch runs on 8 blocks, one token each at a time, so at 256
    sequences per GPU the blocks, not NVLink, set its time: the term binds on ``sms``. DeepSeek-V3's 256
    experts give 128 blocks, one round: the link binds."""
    from wideep.plan import PlanSpec, plan

    def dispatch_binding(model: str) -> str:
        p = plan(PlanSpec(model=model, topology="hgx-h200", ep=8, batch=256))
        return next(t.binding for t in p.decode.terms if t.name == "dispatch")

    assert dispatch_binding("mixtral-8x7b") == "sms"
    assert dispatch_binding("deepseek-v3") in ("nvlink", "latency")


def test_an_ep_group_of_one_sends_nothing_and_names_no_link():
    stats = synthetic_routing(DSV3, "uniform", 64, seed=0, layers=1)
    r = a2a(DSV3, load_cluster("hgx-h100", 8), contiguous_phy2log(1, 256, 256), stats, 1, 64, "deepep-ll")
    assert r.dispatch_s == r.combine_s == 0 and r.binding_link == r.combine_binding_link == "none"
