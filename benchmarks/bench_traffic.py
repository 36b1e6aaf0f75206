"""Speed of the traffic model: DeepSeek-V3, EP64 on dgx-h800, 8192 tokens per GPU, all 58 MoE layers.

Target: traffic and link loads in under 1 s on a 2-core machine. Routing generation is timed
separately (it is input preparation, not part of the traffic model). Run:
    python benchmarks/bench_traffic.py [--tokens 8192] [--ep 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from wideep.traffic.linkload import routes
from wideep.specs.model import load_model
from wideep.routing.stats import synthetic_routing
from wideep.specs.topology import load_cluster
from wideep.traffic import a2a as a2a_mod
from wideep.traffic.a2a import a2a
from wideep.slots import contiguous_phy2log


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="deepseek-v3")
    ap.add_argument("--topology", default="dgx-h800")
    ap.add_argument("--ep", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per GPU")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    model = load_model(args.model)
    cluster = load_cluster(args.topology, args.ep)
    t0 = time.perf_counter()
    stats = synthetic_routing(model, "uniform", args.ep * args.tokens, seed=0)
    t1 = time.perf_counter()
    routes(cluster, args.ep)
    t2 = time.perf_counter()
    print(f"{model.id}, EP{args.ep} on {cluster.name}, {args.tokens} tokens/GPU, {stats.layers} MoE layers, "
          f"{stats.topk_ids.size / 1e6:.0f}M selections")
    print(f"routing generation (uniform): {t1 - t0:.2f} s   route matrix (once per cluster): {t2 - t1:.3f} s")
    phy2log = contiguous_phy2log(stats.layers, model.n_experts, model.n_experts)
    for transport in ("deepep-ll", "nccl", "deepep-normal"):
        best = float("inf")
        for _ in range(args.repeat):
            a2a_mod._COUNTS.clear()  # the counts of a sample are remembered: every run counts them again
            t = time.perf_counter()
            res = a2a(model, cluster, phy2log, stats, args.ep, args.tokens, transport)
            best = min(best, time.perf_counter() - t)
        print(f"a2a {transport:14s} traffic + link loads + times, all layers: {best:.3f} s (best of {args.repeat})"
              f"   dispatch {res.dispatch_s * 1e6:,.0f} us, combine {res.combine_s * 1e6:,.0f} us")
    # a permuted placement (what a placement algorithm returns) takes the general path: gather + sort
    rng = np.random.default_rng(0)
    shuffled = np.stack([rng.permutation(model.n_experts) for _ in range(stats.layers)]).astype(np.int32)
    for transport in ("deepep-ll", "nccl", "deepep-normal"):
        a2a_mod._COUNTS.clear()
        t = time.perf_counter()
        res = a2a(model, cluster, shuffled, stats, args.ep, args.tokens, transport)
        print(f"a2a {transport:14s} with a permuted placement (general path): {time.perf_counter() - t:.3f} s")


if __name__ == "__main__":
    main()
