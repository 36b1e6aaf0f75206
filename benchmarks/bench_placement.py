"""Placement benchmark: issue targets at full size and the runtime of each algorithm.

DeepSeek-V3 (58 MoE layers, 256 experts + 32 redundant = 288 slots) at EP32 over 4 hgx-h100 domains,
128 tokens per GPU (4,096 tokens per layer), topics:8 and uniform routing; then the scale check
(Kimi K2: 384 experts x 60 MoE layers at EP144 over 18 domains).

Run: python benchmarks/bench_placement.py [--skip-scale]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from wideep.specs.model import load_model
from wideep.placement.metrics import evaluate
from wideep.placement.placers import place
from wideep.routing.stats import synthetic_routing
from wideep.specs.topology import load_cluster


def run_case(model_id: str, gpus: int, redundant: int, spec: str, tokens_per_gpu: int = 128) -> dict:
    model, cluster = load_model(model_id), load_cluster("hgx-h100", gpus)
    stats = synthetic_routing(model, spec, gpus * tokens_per_gpu, seed=0)
    rows = {}
    for alg in ("contiguous", "balanced", "topology"):
        opts = {"tokens_per_gpu": tokens_per_gpu} if alg == "topology" else {}
        p = place(alg, stats, model, cluster, gpus, redundant, **opts)
        rows[alg] = evaluate(p, stats, model, cluster, tokens_per_gpu).summary()
    print(f"\n{model_id} EP{gpus} on hgx-h100 ({gpus // 8} domains), {redundant} redundant, {spec}, "
          f"{tokens_per_gpu} tokens/GPU, {stats.layers} MoE layers")
    print(f"{'algorithm':11s} {'bal mean':>8s} {'bal min':>8s} {'x-dom/tok':>9s} {'x-GPU/tok':>9s} "
          f"{'disp us':>8s} {'comb us':>8s} {'runtime s':>9s}")
    for alg, r in rows.items():
        print(f"{alg:11s} {r['balancedness_mean']:8.3f} {r['balancedness_min']:8.3f} "
              f"{r['cross_domain_copies_per_token']:9.3f} {r['cross_gpu_copies_per_token']:9.3f} "
              f"{r['dispatch_us']:8.1f} {r['combine_us']:8.1f} {r['runtime_s']:9.3f}")
    b, t = rows["balanced"], rows["topology"]
    cut = 1 - t["cross_domain_copies_per_token"] / b["cross_domain_copies_per_token"]
    print(f"topology vs balanced: cross-domain copies -{cut:.1%}, balancedness x"
          f"{t['balancedness_mean'] / b['balancedness_mean']:.3f} (min x{t['balancedness_min'] / b['balancedness_min']:.3f}),"
          f" dispatch+combine x{(t['dispatch_us'] + t['combine_us']) / (b['dispatch_us'] + b['combine_us']):.3f}")
    return rows


def time_only(model_id: str, gpus: int, redundant: int, spec: str, tokens_per_gpu: int = 128, repeat: int = 3) -> None:
    model, cluster = load_model(model_id), load_cluster("hgx-h100", gpus)
    stats = synthetic_routing(model, spec, gpus * tokens_per_gpu, seed=0)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        place("topology", stats, model, cluster, gpus, redundant, tokens_per_gpu=tokens_per_gpu)
        times.append(time.perf_counter() - start)
    print(f"topology placement {model_id} EP{gpus} {stats.layers} layers x {model.n_experts + redundant} slots, "
          f"{spec}: best {min(times):.2f} s, median {np.median(times):.2f} s over {repeat} runs")


if __name__ == "__main__":
    run_case("deepseek-v3", 32, 32, "topics:8")
    run_case("deepseek-v3", 32, 32, "uniform")
    time_only("deepseek-v3", 32, 32, "topics:8")
    if "--skip-scale" not in sys.argv:
        time_only("kimi-k2", 144, 48, "topics:8", repeat=1)
