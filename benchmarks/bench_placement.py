"""Placement benchmark: issue targets at full size and the runtime of each algorithm.

DeepSeek-V3 (58 MoE layers, 256 experts + 32 redundant = 288 slots) at EP32 over 4 hgx-h100 domains,
128 tokens per GPU (4,096 tokens per layer), topics:8 and uniform routing; then the scale check
(Kimi K2: 384 experts x 60 MoE layers at EP144 over 18 domains).

In sample and held out as ``wideep place --compare`` splits a synthetic sample (first half places, second
half judges), under the default replica rule (``--rule=R`` or ``--rule=all`` for others).

Run: python benchmarks/bench_placement.py [--skip-scale] [--rule=sglang|vllm|trtllm|nearest|all]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from wideep.placement.placers import place
from wideep.plan.studies import plan_placement
from wideep.routing.stats import synthetic_routing
from wideep.slots import DEFAULT_REPLICA_RULE, REPLICA_RULES
from wideep.specs.model import load_model
from wideep.specs.topology import load_cluster


def run_case(model_id: str, gpus: int, redundant: int, spec: str, tokens_per_gpu: int = 128,
             rule: str = DEFAULT_REPLICA_RULE) -> dict:
    """``wideep place --compare`` at full size: in sample (first half of a 2 x EP x tokens sample) and held out
    (second half), under replica rule ``rule``."""
    model, cluster = load_model(model_id), load_cluster("hgx-h100", gpus)
    study = plan_placement(model, cluster, gpus, redundant, tokens_per_gpu, ["contiguous", "balanced", "global",
                                                                              "topology"],
                           routing=spec, replica_rule=rule, held_out=True)
    rows = {r["algorithm"]: r for r in study.rows()}
    print(f"\n{model_id} EP{gpus} on hgx-h100 ({gpus // 8} domains), {redundant} redundant, {spec}, "
          f"{tokens_per_gpu} tokens/GPU, {model.moe_layers} MoE layers, replica rule {rule}")
    print(f"{'algorithm':11s} {'bal mean':>8s} {'HO':>6s} {'bal min':>8s} {'HO':>6s} {'x-dom/tok':>9s} {'HO':>6s} "
          f"{'x-GPU/tok':>9s} {'disp us':>8s} {'comb us':>8s} {'runtime s':>9s}")
    for alg, r in rows.items():
        h = r["held_out"]
        print(f"{alg:11s} {r['balancedness_mean']:8.3f} {h['balancedness_mean']:6.3f} {r['balancedness_min']:8.3f} "
              f"{h['balancedness_min']:6.3f} {r['cross_domain_copies_per_token']:9.3f} "
              f"{h['cross_domain_copies_per_token']:6.3f} {r['cross_gpu_copies_per_token']:9.3f} "
              f"{r['dispatch_us']:8.1f} {r['combine_us']:8.1f} {r['runtime_s']:9.3f}")
    b, t = rows["balanced"], rows["topology"]
    for where, tb, bb in (("in sample", t, b), ("held out", t["held_out"], b["held_out"])):
        cut = 1 - tb["cross_domain_copies_per_token"] / bb["cross_domain_copies_per_token"]
        print(f"topology vs balanced, {where}: cross-domain copies -{cut:.1%}, balancedness x"
              f"{tb['balancedness_mean'] / bb['balancedness_mean']:.3f} "
              f"(min x{tb['balancedness_min'] / bb['balancedness_min']:.3f})")
    print(f"dispatch+combine in sample x{(t['dispatch_us'] + t['combine_us']) / (b['dispatch_us'] + b['combine_us']):.3f}")
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
    rules = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--rule=")] or [DEFAULT_REPLICA_RULE]
    for rule in REPLICA_RULES if rules == ["all"] else rules:
        run_case("deepseek-v3", 32, 32, "topics:8", rule=rule)
        run_case("deepseek-v3", 32, 32, "uniform", rule=rule)
    time_only("deepseek-v3", 32, 32, "topics:8")
    if "--skip-scale" not in sys.argv:
        time_only("kimi-k2", 144, 48, "topics:8", repeat=1)
