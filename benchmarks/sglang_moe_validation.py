"""Routed experts behind DeepEP low-latency against SGLang's own measured expert kernels (held out).

AIConfigurator's SGLang wide-EP MoE table (aiconfigurator-core 0.12.0,
``<system>/moe/sglang/0.5.10/wideep_generation_moe_perf.parquet`` on H100, H200, B200, B300, GB200 and GB300, and
the 0.5.6.post2 build's on H100 and H200; the uniform rows in benchmarks/data/aic_sglang_deepep_moe.csv) times one rank's expert work in decode behind DeepEP
low-latency (SGLang ``DeepEPMoE.run_moe_core``, ``moe_runner_backend="deep_gemm"``): DeepGEMM's masked grouped
GEMMs and the SiLU-mul + FP8 quantisation between them, DeepSeek-V3's expert shape in FP8 block-scaled weights,
under a CUDA graph; no routing, dispatch or combine. EP 2-256 is simulated on one GPU by loading 256 / EP
experts; ``num_tokens`` is the EP group's (1-128 a rank). Uniform rows: each local expert gets
tokens x 8 x EP / 256 copies; below one copy, tokens x 8 of them get one each (ai-dynamo/aiconfigurator,
collector/sglang/collect_wideep_deepep_moe.py).

wideep's ``routed_experts`` term (:func:`wideep.perf.step.expert_terms`) on each GPU's shipped calibration, for
the same copies on the same experts; nothing was fitted to these rows. Not compared: the power-law rows (their
per-expert counts come from a random generator not replayed here) and the context table (its collector hands a
rank every token of the group, tokens x EP rows, with the rank's copies scattered among them, so its per-row
kernels grow with the group; a rank behind DeepEP normal receives only the tokens that chose its experts).

Run: python benchmarks/sglang_moe_validation.py [--summary]
     python benchmarks/sglang_moe_validation.py --extract [DIR]   (rewrite the CSV from AIC's systems/data)
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from wideep.calibrate.aic import AIC_SYSTEMS, data_root, read_rows
from wideep.perf.roofline import load_calibration
from wideep.perf.step import expert_terms
from wideep.report.tables import markdown_table
from wideep.specs.hardware import load_gpu
from wideep.specs.model import load_model

ROWS = Path(__file__).resolve().parent / "data" / "aic_sglang_deepep_moe.csv"
GPUS = ("h100-sxm", "h200-sxm", "b200", "b300", "gb200", "gb300")
#: The SGLang builds whose tables are compared: 0.5.10 on every GPU, 0.5.6.post2 (an earlier DeepGEMM) on Hopper
BUILDS = {"0.5.10": GPUS, "0.5.6.post2": ("h100-sxm", "h200-sxm")}
MODEL = "deepseek-v3"
FIELDS = ("gpu", "build", "moe_ep_size", "num_tokens", "latency")
#: Tokens a rank at or below which the experts' weights, not their FLOPs, set the time (DeepSeek-V3, FP8: the
#: rows' two regimes in the summary)
FEW_TOKENS = 16


def rows(gpu: str, build: str = "0.5.10") -> list[dict]:
    with ROWS.open() as fh:
        return [r for r in csv.DictReader(fh) if r["gpu"] == gpu and r["build"] == build]


def uniform_copies(tokens_per_rank: int, ep: int, n_experts: int, top_k: int) -> tuple[int, int]:
    """(copies, experts touched) on one rank under the collector's uniform pattern."""
    slots = n_experts // ep
    per_expert = tokens_per_rank * top_k * ep // n_experts
    if per_expert == 0:
        touched = min(slots, tokens_per_rank * top_k)
        return touched, touched
    return per_expert * slots, slots


def predict_us(gpu_id: str, ep: int, tokens_per_rank: int) -> float:
    """wideep's routed-expert time of one rank, us."""
    model, gpu, cal = load_model(MODEL), load_gpu(gpu_id), load_calibration(gpu_id)
    copies, touched = uniform_copies(tokens_per_rank, ep, model.n_experts, model.top_k)
    terms = expert_terms(model, gpu, cal, "fp8", copies, touched, model.n_experts // ep)
    return sum(t.time_s for t in terms) * 1e6


def table() -> list[list]:
    """[GPU, build, EP, tokens a rank, measured us, wideep us, error %] per row."""
    out = []
    for build, gpus in BUILDS.items():
        for gpu in gpus:
            for r in rows(gpu, build):
                ep, per_rank = int(r["moe_ep_size"]), int(r["num_tokens"]) // int(r["moe_ep_size"])
                measured, predicted = 1e3 * float(r["latency"]), predict_us(gpu, ep, per_rank)
                out.append([gpu, build, ep, per_rank, round(measured, 1), round(predicted, 1),
                            round(100 * (predicted / measured - 1), 1)])
    return out


def summary(per_row: list[list] | None = None) -> list[list]:
    """[GPU, build, tokens a rank, rows, mean abs %, bias %, worst %] per GPU, build and regime (at most /
    above FEW_TOKENS a rank, and all rows)."""
    groups: dict[tuple, list[float]] = {}  # in insertion order: build, GPU, regime
    for gpu, build, _, per_rank, _, _, err in per_row or table():
        regime = f"1-{FEW_TOKENS}" if per_rank <= FEW_TOKENS else f"{2 * FEW_TOKENS}-128"
        for key in ((gpu, build, f"1-{FEW_TOKENS}"), (gpu, build, f"{2 * FEW_TOKENS}-128"), (gpu, build, "all")):
            groups.setdefault(key, [])
        groups[gpu, build, regime].append(err)
        groups[gpu, build, "all"].append(err)
    return [[*key, len(e), round(statistics.fmean(map(abs, e)), 1), round(statistics.fmean(e), 1), max(e, key=abs)]
            for key, e in groups.items()]


def extract(root: str) -> None:
    """Write the uniform rows of every GPU's and build's table to :data:`ROWS` (latency ms, 5 significant digits)."""
    data, out = data_root(root), []
    for build, gpus in BUILDS.items():
        for gpu in gpus:
            path = data / AIC_SYSTEMS[gpu] / "moe" / "sglang" / build / "wideep_generation_moe_perf.parquet"
            out += [{"gpu": gpu, "build": build, "moe_ep_size": r["moe_ep_size"], "num_tokens": r["num_tokens"],
                     "latency": f"{float(r['latency']):.5g}"} for r in read_rows(path) if r["distribution"] == "uniform"]
    with ROWS.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(out)
    print(f"wrote {ROWS}: {len(out)} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", action="store_true", help="one row per GPU and regime")
    parser.add_argument("--extract", nargs="?", const="auto", metavar="DIR",
                        help="rewrite the CSV from AIC's systems/data folder (default: the installed package's)")
    args = parser.parse_args()
    if args.extract:
        extract(args.extract)
    elif args.summary:
        print(markdown_table(["GPU", "SGLang", "tokens a rank", "rows", "mean abs error %", "bias %", "worst %"],
                             summary()))
    else:
        print(markdown_table(["GPU", "SGLang", "EP", "tokens a rank", "measured us", "wideep us", "error %"], table()))


if __name__ == "__main__":
    main()
