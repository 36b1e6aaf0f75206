"""Measured expert popularity: ``lognormal:G,E`` routing fitted to published routing statistics, checked on
what the fit did not use. Two models: DeepSeek-V3 (SGLang's statistics, a folder you pass) and gpt-oss-20b
(``--gpt-oss``: counts shipped in benchmarks/data/, see its README).

The statistics: SGLang's per-layer expert counts of DeepSeek-V3 (SGLang issue #6017 attachment, copy in
GeneratedRandomly/SGLang-reproduce attachment_ep_statistics/; docs/sources.md section 4), 4 decode and 8
prefill benchmarks of 58 MoE layers each. They carry no license and are not in this repository: pass the
folder holding them.

Fitted (two numbers from two figures of the 4 decode files, mean over their 232 layers):
- ``G`` (group_sigma) to the busiest of 8 contiguous expert blocks over the mean block (EP8 without EPLB: one
  routing group of 32 experts per GPU);
- ``E`` (expert_sigma) to the coefficient of variation of expert loads inside a group.

Checked, not fitted: the busiest block at EP16/32/64, the CV of all expert loads and of group loads, the
hottest expert, EPLB's balancedness (``balanced`` placement with 32 redundant experts, in sample) on the decode
files, all of these on the 8 prefill files, and TensorRT-LLM's DeepSeek-R1 figure (tech blog 4, Table 1:
EP32 on GB200, decode, machine translation: "the hottest rank receives 1.56 times more routed tokens than
the mean", busiest/mean 2.56).

gpt-oss-20b (one routing group, so G = 0): ``E`` fitted to the coefficient of variation of expert loads (the
same figure as DeepSeek's in-group CV); checked: the busiest of 4, 8 and 16 contiguous blocks (EP4/8/16
without EPLB) on the measured expert numbering and with the experts shuffled (the model assigns popularity
to experts at random), and the hottest expert.

Run: python benchmarks/routing_fit.py FOLDER [--tokens 16384]
     python benchmarks/routing_fit.py --gpt-oss [--tokens 16384]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from wideep.placement.metrics import score
from wideep.placement.placers import place
from wideep.routing.files import load_routing
from wideep.routing.stats import RoutingStats, synthetic_routing
from wideep.specs.model import load_model
from wideep.specs.topology import load_cluster

MODEL = "deepseek-v3"
GPT_OSS = "gpt-oss-20b"
GPT_OSS_COUNTS = Path(__file__).resolve().parent / "data" / "gpt-oss-20b-expert-counts.csv"
GPT_OSS_BLOCKS = (4, 8, 16)
TRTLLM_EP32_BUSIEST = 2.56  # TensorRT-LLM tech blog 4, Table 1: hottest rank 1.56x more than the mean
CHECKS = ("busiest of 16", "busiest of 32", "busiest of 64", "expert CV", "group CV", "hottest expert",
          "EPLB EP32 balancedness", "EPLB EP8 balancedness")


def busiest_block(load: np.ndarray, blocks: int) -> float:
    """Busiest of ``blocks`` contiguous expert blocks over the mean block, mean over layers (rows of ``load``)."""
    per = load.reshape(len(load), blocks, -1).sum(axis=2)
    return float((per.max(axis=1) / per.mean(axis=1)).mean())


def cv(x: np.ndarray, axis: int) -> np.ndarray:
    return x.std(axis=axis) / x.mean(axis=axis)


def eplb_balancedness(load: np.ndarray, ep: int) -> float:
    """Mean balancedness of ``balanced`` placement (32 redundant experts) placed and judged on ``load``."""
    model = load_model(MODEL)
    stats = RoutingStats(model.n_experts, load, None)
    p = place("balanced", stats, model, load_cluster("hgx-h100", ep), ep, 32)
    return float(score(p, stats, model, 128).balancedness.mean())


def figures(load: np.ndarray, n_group: int = 8) -> dict[str, float]:
    """Every figure of the module docstring for a (layers, experts) load matrix."""
    grouped = load.reshape(len(load), n_group, -1)
    return {"busiest of 8": busiest_block(load, 8), "group expert CV": float(cv(grouped, 2).mean()),
            "busiest of 16": busiest_block(load, 16), "busiest of 32": busiest_block(load, 32),
            "busiest of 64": busiest_block(load, 64), "expert CV": float(cv(load, 1).mean()),
            "group CV": float(cv(grouped.sum(axis=2), 1).mean()),
            "hottest expert": float((load.max(axis=1) / load.mean(axis=1)).mean()),
            "EPLB EP32 balancedness": eplb_balancedness(load, 32), "EPLB EP8 balancedness": eplb_balancedness(load, 8)}


def synthetic_load(group_sigma: float, expert_sigma: float, tokens: int) -> np.ndarray:
    """Expert loads (58 layers, 256 experts) of ``tokens`` tokens per layer of ``lognormal:G,E`` routing."""
    return synthetic_routing(load_model(MODEL), f"lognormal:{group_sigma:.6f},{expert_sigma:.6f}", tokens).load


def fit(target_busiest: float, target_within_cv: float, tokens: int) -> tuple[float, float]:
    """(G, E) whose routing meets both targets: alternating one-dimensional root finds (each figure moves
    almost only with its own sigma), three rounds, common random numbers (seed 0)."""
    g, e = 0.4, 0.6
    for _ in range(3):
        g = brentq(lambda x: busiest_block(synthetic_load(x, e, tokens), 8) - target_busiest, 0.05, 1.2, xtol=1e-3)
        e = brentq(lambda x: float(cv(synthetic_load(g, x, tokens).reshape(58, 8, 32), 2).mean()) - target_within_cv,
                   0.05, 1.2, xtol=1e-3)
    return g, e


def gpt_oss_figures(load: np.ndarray, shuffle_seed: int | None = None) -> dict[str, float]:
    """Expert CV, busiest of GPT_OSS_BLOCKS blocks and hottest expert of a (layers, experts) load matrix, its
    experts shuffled per layer first when ``shuffle_seed`` is given."""
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        load = np.stack([row[rng.permutation(row.size)] for row in load])
    return {"expert CV": float(cv(load, 1).mean()),
            **{f"busiest of {b}": busiest_block(load, b) for b in GPT_OSS_BLOCKS},
            "hottest expert": float((load.max(axis=1) / load.mean(axis=1)).mean())}


def fit_gpt_oss(tokens: int) -> int:
    """Fit and check gpt-oss-20b's ``expert_sigma`` on the shipped counts; prints a markdown table."""
    model = load_model(GPT_OSS)
    real = load_routing(str(GPT_OSS_COUNTS), model).load
    measured = gpt_oss_figures(real)
    draws = [gpt_oss_figures(real, seed) for seed in range(100)]
    shuffled = {k: float(np.mean([f[k] for f in draws])) for k in measured}
    synth = lambda e: synthetic_routing(model, f"lognormal:0,{e:.6f}", tokens).load  # noqa: E731
    e = brentq(lambda x: gpt_oss_figures(synth(x))["expert CV"] - measured["expert CV"], 0.05, 1.5, xtol=1e-3)
    model_figures = gpt_oss_figures(synth(e))
    print(f"gpt-oss-20b: expert_sigma = {e:.2f} (lognormal:0,{e:.2f}), fitted to the expert CV of "
          f"{GPT_OSS_COUNTS.name} ({len(real)} layers)\n")
    print("| figure | measured | experts shuffled | lognormal | vs measured | vs shuffled | role |")
    print("|---|---|---|---|---|---|---|")
    for key, m in measured.items():
        sh, got = shuffled[key], model_figures[key]
        role = "fit" if key == "expert CV" else "held out"
        print(f"| {key} | {m:.3f} | {sh:.3f} | {got:.3f} | {100 * (got / m - 1):+.1f}% | {100 * (got / sh - 1):+.1f}% "
              f"| {role} |")
    return 0


def mean_figures(loads: list[np.ndarray]) -> dict[str, float]:
    per_file = [figures(load) for load in loads]
    return {k: float(np.mean([f[k] for f in per_file])) for k in per_file[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", help="folder of SGLang logical_count JSON files (DeepSeek-V3)")
    ap.add_argument("--gpt-oss", action="store_true", help="fit gpt-oss-20b on the shipped counts instead")
    ap.add_argument("--tokens", type=int, default=16384, help="tokens per layer of the synthetic samples")
    args = ap.parse_args()
    if args.gpt_oss:
        return fit_gpt_oss(args.tokens)
    if args.folder is None:
        ap.error("give SGLang's statistics folder, or --gpt-oss")
    model = load_model(MODEL)
    files = sorted(Path(args.folder).glob("*.json"))
    if len(files) != 12:
        raise SystemExit(f"{args.folder}: expected SGLang's 12 statistics files, found {len(files)}")
    loads = {f.stem: load_routing(f, model).load for f in files}
    decode = mean_figures([v for k, v in loads.items() if k.startswith("decode")])
    prefill = mean_figures([v for k, v in loads.items() if k.startswith("prefill")])
    t0 = time.perf_counter()
    g, e = fit(decode["busiest of 8"], decode["group expert CV"], args.tokens)
    synth = figures(synthetic_load(g, e, args.tokens))
    print(f"fitted on the 4 decode files in {time.perf_counter() - t0:.0f} s: group_sigma = {g:.2f}, "
          f"expert_sigma = {e:.2f} (lognormal:{g:.2f},{e:.2f})\n")
    print("| figure | decode files | prefill files | lognormal | vs decode | vs prefill | role |")
    print("|---|---|---|---|---|---|---|")
    for key in ("busiest of 8", "group expert CV", *CHECKS):
        role = "fit" if key in ("busiest of 8", "group expert CV") else "held out"
        print(f"| {key} | {decode[key]:.3f} | {prefill[key]:.3f} | {synth[key]:.3f} | "
              f"{100 * (synth[key] / decode[key] - 1):+.1f}% | {100 * (synth[key] / prefill[key] - 1):+.1f}% | {role} |")
    s32 = synth["busiest of 32"]
    print(f"\nTensorRT-LLM DeepSeek-R1 EP32 busiest/mean (tech blog 4): {TRTLLM_EP32_BUSIEST} published, "
          f"{s32:.2f} lognormal ({100 * (s32 / TRTLLM_EP32_BUSIEST - 1):+.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
