"""MLA decode attention against TensorRT-LLM's measured kernel at every head count a rank can hold.

Each GPU's ``[attention]`` is fitted on two head counts of AIConfigurator's ``generation_mla`` table
(wideep.calibrate.aic.attention_from_mla): DeepSeek's 128 heads on one rank (the FLOP side) and 16 (one rank of
attention TP8: the KV side). The rows of 64, 32, 8, 4, 2 and 1 heads a rank are held out. Rows: at least 2,048
cached tokens and 8 times the 128-head table's fastest, where the fit applies (benchmarks/data/aic_mla_generation.csv,
benchmarks/extract_mla_rows.py). Beside it, the fit on 128 heads alone (its KV side the rate those rows' bytes
imply), which the files held until 2026-12-05.
Run: python benchmarks/mla_validation.py
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from wideep.calibrate.aic import (KV_BOUND_CONTEXT, MLA_MEMORY_TP, ROOFLINE_ROWS, attention_from_mla, fastest_us,
                                  mla_row_work, one_rank_mla)
from wideep.report.tables import markdown_table
from wideep.specs.hardware import load_gpu
from wideep.specs.model import load_model

ROWS = Path(__file__).resolve().parent / "data" / "aic_mla_generation.csv"
GPUS = ("h100-sxm", "h200-sxm", "b200", "b300", "gb200", "gb300")
MODEL = "deepseek-v3"


def rows(gpu: str) -> list[dict]:
    with ROWS.open() as fh:
        return [r for r in csv.DictReader(fh) if r["gpu"] == gpu]


def core_s(table: dict, gpu, model, r: dict) -> float:
    """Seconds of one row as the step model's decode ``attn_core`` charges them on ``[attention]`` ``table``
    (score FLOPs and KV bytes of the row's heads, the larger side, plus the work per sequence)."""
    fp8 = r["kv_cache_dtype"] == "fp8"
    if fp8 and "flops_efficiency_fp8" in table:
        peak, e_f, tokens = gpu.flops("fp8"), table["flops_efficiency_fp8"], table["sequence_tokens_fp8"]
    else:
        peak, e_f, tokens = gpu.flops("bf16"), table["flops_efficiency"], table["sequence_tokens"]
    e_h = table.get("hbm_efficiency_fp8", table["hbm_efficiency"]) if fp8 else table["hbm_efficiency"]
    flops, nbytes, one_more = mla_row_work(r, model)
    return max(flops / (peak * e_f), nbytes / (gpu.hbm_Bps * e_h)) + tokens * one_more / peak


def summary() -> list[list]:
    """[GPU, KV, role, rows, mean abs %, bias %, mean abs % of the 128-head fit, its bias %] per GPU, KV dtype
    and role (fit: 128 and 16 heads; held out: the others)."""
    model = load_model(MODEL)
    fitted_heads = (model.attention.heads, model.attention.heads // MLA_MEMORY_TP)
    out = []
    for gpu_id in GPUS:
        gpu, mine = load_gpu(gpu_id), rows(gpu_id)
        new, old = attention_from_mla(mine, gpu, model), attention_from_mla(one_rank_mla(mine, model), gpu, model)
        floor_s = fastest_us(one_rank_mla(mine, model)) * 1e-6
        groups: dict[tuple, list] = {}
        for r in mine:
            measured = float(r["latency"]) * 1e-3
            if int(r["isl"]) + int(r["step"]) < KV_BOUND_CONTEXT or measured < ROOFLINE_ROWS * floor_s:
                continue
            role = "fit" if int(r["num_heads"]) in fitted_heads else "held-out"
            groups.setdefault((r["kv_cache_dtype"], role), []).append(
                (core_s(new, gpu, model, r) / measured - 1, core_s(old, gpu, model, r) / measured - 1))
        for (kv, role), errs in sorted(groups.items()):
            e_new, e_old = zip(*errs)
            out.append([gpu_id, kv, role, len(errs), round(100 * statistics.mean(map(abs, e_new)), 1),
                        round(100 * statistics.mean(e_new), 1), round(100 * statistics.mean(map(abs, e_old)), 1),
                        round(100 * statistics.mean(e_old), 1)])
    return out


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    head = ["GPU", "KV", "role", "rows", "mean abs err %", "bias %", "128 heads alone: mean abs err %",
            "128 heads alone: bias %"]
    print(markdown_table(head, summary()))


if __name__ == "__main__":
    main()
