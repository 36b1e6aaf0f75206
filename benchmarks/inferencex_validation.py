"""Single-node serving against SemiAnalysis InferenceX's published runs, held out: DeepSeek-R1-0528 (2025-12 and
2026-05) and gpt-oss-120b (2026-01).

InferenceX serves at a fixed concurrency with random-token prompts, lengths drawn from 0.8-1.0x the nominal
(``RANDOM_RANGE_RATIO`` 0.8: means of 922 for "1k" and 7,373 for "8k"), end of sequence ignored, prefix cache
off, prompts prefilled inside the decode steps (aggregated serving); mean TPOT and output tokens/s per GPU over
the run (ramp and drain included). DeepSeek's rows of May 2026 (benchmarks/data/inferencex_points.csv,
docs/sources.md) are the baseline tables of InferenceX's image-update pull requests, copied from its public API;
DeepSeek's of December 2025 (inferencex_dsr1_2025-12_points.csv) and gpt-oss's (inferencex_gptoss_points.csv)
are the result files of its benchmark runs. Points are grouped by model, GPU, engine, engine version and
dtype. Each point is planned as ``wideep search`` plans an aggregated point: attention TP x, the experts over EP
y of those GPUs (MoE TP x/y), or with attention data parallelism one attention group per GPU and the experts
over all of them; batch = concurrency, no MTP, no redundant experts, the engines' KV dtype (FP8 on Blackwell,
BF16 on Hopper), and the NVFP4 checkpoint's BF16 attention projections. Nothing was fitted to these rows. Run

    python benchmarks/inferencex_validation.py            # every point: interactivity and output per GPU
    python benchmarks/inferencex_validation.py --summary  # per group: mean and worst error
    python benchmarks/inferencex_validation.py --builds   # one configuration on two engine builds, side by side
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import re
from pathlib import Path

import numpy as np

from wideep.plan import PlanSpec, plan
from wideep.plan.search import point

FOLDER = Path(__file__).resolve().parent / "data"
DATA = (("deepseek-r1", FOLDER / "inferencex_points.csv"), ("deepseek-r1", FOLDER / "inferencex_dsr1_2025-12_points.csv"),
        ("gpt-oss-120b", FOLDER / "inferencex_gptoss_points.csv"))
TOPOLOGY = {"h100": "hgx-h100", "h200": "hgx-h200", "b200": "hgx-b200", "b300": "hgx-b300"}
HOPPER = ("h100", "h200")
LENGTH_MEAN = 0.9  # lengths uniform in [0.8 L, L]
#: TensorRT-LLM's attention-DP points with EP > 1: its launch script forces the MNNVL one-sided all-to-all
#: (TRTLLM_FORCE_ALLTOALL_METHOD=MNNVL, "mnnvlthroughput") and balances prompts over the attention groups
#: (attention_dp_config.enable_balance); InferenceX commit d55c7962, benchmarks/gptoss_fp4_b200_trt_slurm.sh.
ONESIDED = "nvlink-onesided"


@dataclasses.dataclass(frozen=True)
class Point:
    model: str
    gpu: str
    engine: str
    dtype: str
    isl: int
    osl: int
    concurrency: int
    tp: int
    ep: int
    tokens_per_s_per_user: float  # 1000 / mean TPOT
    tokens_per_s_per_gpu: float  # output
    point: str
    image: str  # the engine's container image, name:tag
    dp_attention: bool = False  # one attention group per GPU, the experts over EP of them

    @property
    def version(self) -> str:
        """The engine build of the image's tag: v0.5.12-cu130 -> v0.5.12."""
        return self.image.rsplit(":", 1)[-1].split("-")[0]

    @property
    def group(self) -> str:
        return f"{self.model} {self.gpu.upper()} {self.engine} {self.version} {self.dtype}"

    @property
    def config(self) -> tuple:
        """What a run sets apart from its engine build: model, GPU, engine, dtype, lengths, concurrency, layout."""
        return (self.model, self.gpu, self.engine, self.dtype, self.isl, self.osl, self.concurrency, self.tp,
                self.ep, self.dp_attention)

    @property
    def name(self) -> str:
        return f"{self.group}, {self.point}"

    def spec(self) -> PlanSpec:
        fp4 = self.dtype == "nvfp4"
        tp, batch = (1, self.concurrency // self.tp) if self.dp_attention else (self.tp, self.concurrency)
        return PlanSpec(model=self.model, topology=TOPOLOGY[self.gpu], tp=tp, ep=self.ep,
                        batch=batch, isl=round(LENGTH_MEAN * self.isl), osl=round(LENGTH_MEAN * self.osl),
                        dtype=self.dtype, attn_dtype="bf16" if fp4 else None,
                        kv_dtype="bf16" if self.gpu in HOPPER else "fp8",
                        redundant=0, placement="contiguous", overlap="none",
                        **({"transport": ONESIDED, "balanced_prompts": True}
                           if self.dp_attention and self.engine == "trtllm" else {}))


def points() -> list[Point]:
    rows = []
    for model, path in DATA:
        with open(path) as fh:
            rows += [Point(model, r["gpu"], r["engine"], r["dtype"], int(r["isl"]), int(r["osl"]),
                           int(r["concurrency"]), int(r["tp"]), int(r["ep"]), 1000.0 / float(r["tpot_ms_mean"]),
                           float(r["output_tok_s_per_gpu"]), r["point"], r["image"], r.get("dp_attention") == "1")
                     for r in csv.DictReader(fh)]
    return rows


def predicted(p: Point) -> tuple[float, float]:
    """(tokens/s per user, output tokens/s per GPU) of ``p``'s aggregated point."""
    pt = point(plan(p.spec()))
    return pt["tokens_per_s_per_user"], pt["tokens_per_s_per_gpu"]


def error_pct(pred: float, published: float) -> float:
    return 100.0 * (pred / published - 1.0)


def build_key(p: Point) -> tuple[int, ...]:
    """The engine version of ``p``'s image as numbers: v0.5.12-cu130 -> (0, 5, 12)."""
    return tuple(int(n) for n in re.findall(r"\d+", p.version))


def print_builds() -> None:
    """Each configuration InferenceX ran on two engine builds: the builds' tok/s/user apart, and wideep's one plan."""
    by_config: dict[tuple, list[Point]] = {}
    for p in points():
        by_config.setdefault(p.config, []).append(p)
    print("| configuration | earlier build | later build | tok/s/user earlier | later | later / earlier % | "
          "wideep | error vs earlier % | vs later % |\n|---|---|---|---|---|---|---|---|---|")
    for runs in by_config.values():
        if len(runs) != 2:
            continue
        old, new = sorted(runs, key=build_key)
        user, _ = predicted(new)
        print(f"| {new.gpu.upper()} {new.engine} {new.dtype} {new.point.split(' ')[0]} c{new.concurrency} "
              f"TP{new.tp} EP{new.ep} | {old.image.rsplit(':', 1)[-1]} | {new.image.rsplit(':', 1)[-1]} | "
              f"{old.tokens_per_s_per_user:.1f} | {new.tokens_per_s_per_user:.1f} | "
              f"{error_pct(new.tokens_per_s_per_user, old.tokens_per_s_per_user):+.1f} | {user:.1f} | "
              f"{error_pct(user, old.tokens_per_s_per_user):+.1f} | {error_pct(user, new.tokens_per_s_per_user):+.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summary", action="store_true", help="one row per group: mean and worst error")
    ap.add_argument("--builds", action="store_true", help="configurations measured on two engine builds")
    args = ap.parse_args()
    if args.builds:
        print_builds()
        return
    rows = []
    for p in points():
        user, gpu = predicted(p)
        rows.append((p, user, gpu, error_pct(user, p.tokens_per_s_per_user), error_pct(gpu, p.tokens_per_s_per_gpu)))
    if args.summary:
        print("| group | points | tok/s/user: mean abs err % | worst % | tok/s/GPU: mean abs err % | worst % |\n"
              "|---|---|---|---|---|---|")
        for group in dict.fromkeys(r[0].group for r in rows):
            mine = [r for r in rows if r[0].group == group]
            cells = []
            for i in (3, 4):
                errs = np.array([r[i] for r in mine])
                cells += [f"{np.abs(errs).mean():.1f}", f"{errs[np.abs(errs).argmax()]:+.1f}"]
            print(f"| {group} | {len(mine)} | " + " | ".join(cells) + " |")
        return
    print("| point | tok/s/user | predicted | error % | output tok/s/GPU | predicted | error % |\n"
          "|---|---|---|---|---|---|---|")
    for p, user, gpu, e_user, e_gpu in rows:
        print(f"| {p.name} | {p.tokens_per_s_per_user:.1f} | {user:.1f} | {e_user:+.1f} | "
              f"{p.tokens_per_s_per_gpu:.1f} | {gpu:.1f} | {e_gpu:+.1f} |")


if __name__ == "__main__":
    main()
