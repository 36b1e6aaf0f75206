"""Wide-EP decode on GB200 NVL72 against SemiAnalysis InferenceX's disaggregated runs, held out.

InferenceX ran DeepSeek-R1-0528 NVFP4 (nvidia/DeepSeek-R1-0528-FP4-V2) with Dynamo 0.5.1 and TensorRT-LLM on
GB200 NVL72, prefill and decode on separate GPUs (benchmarks/data/inferencex_gb200_disagg_points.csv, from its run
20356790608; docs/sources.md). A decode worker is either TEP8 (attention TP8, experts over EP8 of the same GPUs;
several workers side by side) or DEP8/16/32 (one attention group per GPU, experts over EP of them, TensorRT-LLM's
one-sided NVLink all-to-all). The client keeps a fixed concurrency of random-token requests (lengths 0.8-1.0x the
nominal), so the measured mean TPOT is the decode step of a full worker. Each point is planned as one decode step
of that worker: batch per attention group = concurrency / groups, capped at the run's DECODE_MAX_BATCH_SIZE (the
sweeps set the concurrency just above the cap); mean context = ISL + OSL / 2 at 0.9 of the nominal; NVFP4 experts,
the checkpoint's BF16 attention projections, FP8 KV; no redundant experts (the runs' EPLB slots are 0), experts in
order, no micro-batch overlap, no MTP. Nothing was fitted to these rows. Run

    python benchmarks/inferencex_disagg_validation.py            # every point
    python benchmarks/inferencex_disagg_validation.py --summary  # per layout: mean and worst error
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

import numpy as np

from inferencex_validation import LENGTH_MEAN, ONESIDED, error_pct
from wideep.plan import PlanSpec, plan

DATA = Path(__file__).resolve().parent / "data" / "inferencex_gb200_disagg_points.csv"


@dataclasses.dataclass(frozen=True)
class DecodePoint:
    isl: int
    osl: int
    concurrency: int
    workers: int
    tp: int  # the decode worker's TP (attention TP too, unless dp_attention)
    ep: int
    dp_attention: bool
    gpus: int  # decode GPUs over all workers
    max_batch: int  # sequences a decode rank runs at most
    tokens_per_s_per_user: float  # 1000 / mean TPOT

    @property
    def layout(self) -> str:
        return f"{'DEP' if self.dp_attention else 'TEP'}{self.ep}"

    @property
    def name(self) -> str:
        return f"{self.isl // 1024}k/{self.osl // 1024}k c{self.concurrency} {self.layout} x{self.workers}"

    @property
    def groups(self) -> int:
        """Attention groups over all decode workers: one per GPU with attention DP, else one per TP group."""
        return self.gpus // (1 if self.dp_attention else self.tp)

    @property
    def batch(self) -> int:
        """Sequences per attention group: the concurrency spread over the groups, at most the cap."""
        return max(1, min(round(self.concurrency / self.groups), self.max_batch))

    def spec(self) -> PlanSpec:
        return PlanSpec(model="deepseek-r1", topology="gb200-nvl72", ep=self.ep, tp=1 if self.dp_attention else self.tp,
                        batch=self.batch, isl=round(LENGTH_MEAN * self.isl), osl=round(LENGTH_MEAN * self.osl),
                        dtype="nvfp4", attn_dtype="bf16", kv_dtype="fp8", redundant=0, placement="contiguous",
                        overlap="none", **({"transport": ONESIDED} if self.dp_attention else {}))


def points() -> list[DecodePoint]:
    with DATA.open() as fh:
        return [DecodePoint(int(r["isl"]), int(r["osl"]), int(r["concurrency"]), int(r["decode_workers"]),
                            int(r["decode_tp"]), int(r["decode_ep"]), r["dp_attention"] == "1", int(r["decode_gpus"]),
                            int(r["decode_max_batch"]), 1000.0 / float(r["tpot_ms_mean"]))
                for r in csv.DictReader(fh)]


def predicted(p: DecodePoint) -> float:
    """Planned decode tokens/s per user of ``p``'s worker."""
    return plan(p.spec()).decode.tokens_per_s_per_user


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summary", action="store_true", help="one row per layout: mean and worst error")
    args = ap.parse_args()
    rows = [(p, predicted(p)) for p in points()]
    if args.summary:
        print("| layout | points | tok/s/user: mean abs err % | worst % |\n|---|---|---|---|")
        for layout in [*dict.fromkeys(p.layout for p, _ in rows), "all"]:
            errs = np.array([error_pct(u, p.tokens_per_s_per_user) for p, u in rows if layout in ("all", p.layout)])
            print(f"| {layout} | {len(errs)} | {np.abs(errs).mean():.1f} | {errs[np.abs(errs).argmax()]:+.1f} |")
        return
    print("| point | batch per group | tok/s/user | predicted | error % |\n|---|---|---|---|---|")
    for p, user in rows:
        print(f"| {p.name} | {p.batch} | {p.tokens_per_s_per_user:.1f} | {user:.1f} | "
              f"{error_pct(user, p.tokens_per_s_per_user):+.1f} |")


if __name__ == "__main__":
    main()
