"""Predicted versus published DeepEP figures (REFERENCES.md section 3) on dgx-h800 clusters.

Each row rebuilds DeepEP's own test setup: low-latency kernels with 128 tokens per rank, top-8 of 256
experts drawn uniformly (tests/test_low_latency.py: plain top-k of random scores), FP8 dispatch with a
16 B header, BF16 combine, time compared; normal kernels with 4096 tokens per rank, top-8 of 256 experts,
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

# DeepEP README (deepseek-ai/DeepEP), H800 + CX7 400G, as copied in REFERENCES.md section 3.
LOW_LATENCY_US = {8: (77, 114), 16: (118, 195), 32: (155, 273), 64: (173, 314), 128: (192, 369), 256: (194, 360)}
NORMAL_GBPS = {8: (153, 158), 16: (43, 43), 32: (58, 57), 64: (51, 50)}
LL_TOKENS, NORMAL_TOKENS = 128, 4096


def deepep_model(kind: str, ep: int):
    """DeepSeek-V3 shapes with DeepEP's test routing: plain top-8 (LL), node-limited groups (normal)."""
    m = load_model("deepseek-v3")
    nodes = max(1, ep // 8)
    if kind == "ll" or nodes == 1:
        return dataclasses.replace(m, n_group=1, topk_group=1)
    return dataclasses.replace(m, n_group=nodes, topk_group=min(nodes, 4))


def predict(kind: str, ep: int, layers: int = 4, seed: int = 0) -> tuple[float, float]:
    """(dispatch, combine): microseconds for ``ll``, DeepEP-defined GB/s for ``normal``."""
    m = deepep_model(kind, ep)
    tokens = LL_TOKENS if kind == "ll" else NORMAL_TOKENS
    stats = synthetic_routing(m, "uniform", ep * tokens, seed=seed, layers=layers)
    phy2log = contiguous_phy2log(layers, m.n_experts, m.n_experts)
    r = a2a(m, load_cluster("dgx-h800", ep), phy2log, stats, ep, tokens,
            "deepep-ll" if kind == "ll" else "deepep-normal")
    if kind == "ll":
        return r.dispatch_s * 1e6, r.combine_s * 1e6
    return (r.logical_bytes_per_gpu["dispatch"] / r.dispatch_s / 1e9,
            r.logical_bytes_per_gpu["combine"] / r.combine_s / 1e9)


def rows(layers: int = 4) -> list[list]:
    """[kernels, EP, unit, published dispatch, predicted, error %, published combine, predicted, error %]."""
    out = []
    for kind, table, unit in (("ll", LOW_LATENCY_US, "us"), ("normal", NORMAL_GBPS, "GB/s")):
        for ep, (pub_d, pub_c) in table.items():
            d, c = predict(kind, ep, layers)
            out.append([kind, ep, unit, pub_d, round(d, 1), round(100 * (d / pub_d - 1), 1),
                        pub_c, round(c, 1), round(100 * (c / pub_c - 1), 1)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4, help="sampled layers averaged per row")
    args = ap.parse_args()
    head = ["kernels", "EP", "unit", "dispatch pub", "pred", "err %", "combine pub", "pred", "err %"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows(args.layers):
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
