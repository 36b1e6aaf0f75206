"""Predicted versus published DeepEP normal-kernel bandwidths (DeepEP README, docs/sources.md) on dgx-h800.

(The low-latency rows, with every other measured all-to-all, are in benchmarks/a2a_validation.py.)
Each row rebuilds DeepEP's own test setup: normal kernels with 4096 tokens per rank, top-8 of 256 experts,
experts grouped per node and each token limited to min(nodes, 4) nodes (tests/test_internode.py), the
bandwidth compared as DeepEP defines it (bytes counted per destination node incl. the own node across
nodes, per destination GPU incl. the own one within a node, divided by the time).
Run: python benchmarks/deepep_table.py [--layers 4]
"""

from __future__ import annotations

import argparse
import dataclasses

from wideep.specs.model import load_model
from wideep.routing.stats import synthetic_routing
from wideep.specs.topology import load_cluster
from wideep.traffic.a2a import a2a
from wideep.slots import contiguous_phy2log

# DeepEP README (deepseek-ai/DeepEP), H800 + CX7 400G, April 2025 normal kernels (docs/sources.md).
NORMAL_GBPS = {8: (153, 158), 16: (43, 43), 32: (58, 57), 64: (51, 50)}
NORMAL_TOKENS = 4096


def deepep_model(ep: int):
    """DeepSeek-V3 shapes with DeepEP's test routing: node-limited groups."""
    m = load_model("deepseek-v3")
    nodes = max(1, ep // 8)
    if nodes == 1:
        return dataclasses.replace(m, n_group=1, topk_group=1)
    return dataclasses.replace(m, n_group=nodes, topk_group=min(nodes, 4))


def predict(ep: int, layers: int = 4, seed: int = 0) -> tuple[float, float]:
    """(dispatch, combine) in DeepEP-defined GB/s."""
    m = deepep_model(ep)
    stats = synthetic_routing(m, "uniform", ep * NORMAL_TOKENS, seed=seed, layers=layers)
    phy2log = contiguous_phy2log(layers, m.n_experts, m.n_experts)
    r = a2a(m, load_cluster("dgx-h800", ep), phy2log, stats, ep, NORMAL_TOKENS, "deepep-normal")
    return (r.logical_bytes_per_gpu["dispatch"] / r.dispatch_s / 1e9,
            r.logical_bytes_per_gpu["combine"] / r.combine_s / 1e9)


def rows(layers: int = 4) -> list[list]:
    """[EP, published dispatch GB/s, predicted, error %, published combine GB/s, predicted, error %]."""
    out = []
    for ep, (pub_d, pub_c) in NORMAL_GBPS.items():
        d, c = predict(ep, layers)
        out.append([ep, pub_d, round(d, 1), round(100 * (d / pub_d - 1), 1),
                    pub_c, round(c, 1), round(100 * (c / pub_c - 1), 1)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4, help="sampled layers averaged per row")
    args = ap.parse_args()
    head = ["EP", "dispatch GB/s pub", "pred", "err %", "combine GB/s pub", "pred", "err %"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows(args.layers):
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
