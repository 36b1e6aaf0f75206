"""Grouped-query decode attention against TensorRT-LLM's measured kernel (held out but for one shape).

Each GPU's calibration file carries ``[attention_gqa]``, fitted on one shape of its AIConfigurator table
(wideep.calibrate.aic.GQA_FIT_SHAPE: 64 query / 8 KV heads of 128, no window); every other catalog model's
shape on one rank of TP 1-8 (gpt-oss's 64-wide heads, Qwen3's 4 KV heads, ...), with its sliding window, on
both KV dtypes, is held out (rows: benchmarks/data/aic_gqa_attention.csv, benchmarks/extract_gqa_rows.py).
Beside it, what plans charged before: the MLA kernel's ``[attention]`` fit for every model."""

from __future__ import annotations

import argparse
import csv
import statistics
from dataclasses import replace
from pathlib import Path

from wideep.calibrate.aic import GQA_FIT_SHAPE, gqa_row
from wideep.perf.roofline import load_calibration, roofline
from wideep.perf.step import core_rate, gqa_core
from wideep.report.tables import markdown_table
from wideep.specs.hardware import load_gpu
from wideep.specs.model import load_model

ROWS = Path(__file__).resolve().parent / "data" / "aic_gqa_attention.csv"


def rows() -> list[dict]:
    with ROWS.open() as fh:
        return list(csv.DictReader(fh))


def windowed(r: dict) -> dict:
    """The row with the cached tokens a window reads (its last ``window_size``), as the step model counts them."""
    window, context = int(r["window_size"]), int(r["isl"]) + int(r["step"])
    return r | {"isl": 0, "step": min(context, window)} if window else r


def row_model(r: dict):
    """Llama-3.1-70B with the row's heads, KV heads and head dim (what :func:`gqa_core` reads of a model)."""
    base = load_model("llama-3.1-70b")
    heads, kv, dim = int(r["num_heads"]), int(r["num_key_value_heads"]), int(r["head_dim"])
    return replace(base, attention=replace(base.attention, heads=heads, kv_heads=kv, head_dim=dim, v_head_dim=dim))


def predict_s(r: dict) -> tuple[float, float]:
    """(seconds on ``[attention_gqa]``, seconds on the MLA kernel's ``[attention]`` fit) of one row, as the step
    model's core charges them (:func:`wideep.perf.step.gqa_core`, one rank, no MTP)."""
    gpu, cal = load_gpu(r["gpu"]), load_calibration(r["gpu"])
    fp8 = r["kv_cache_dtype"] == "fp8"
    nbytes, _, _ = gqa_row(windowed(r))
    heads, dim, batch = int(r["num_heads"]), int(r["head_dim"]), int(r["batch_size"])
    one_more = 4 * heads * dim  # score FLOPs of one more cached token (QK and PV)
    peak, eff, tokens = core_rate(gpu, cal, "decode", fp8)
    cached = nbytes / (int(r["num_key_value_heads"]) * dim * 2 * (1 if fp8 else 2))  # sequences x tokens read
    core = roofline("attn_core", cached * one_more, nbytes, peak, gpu.hbm_Bps, eff)
    new, floor_s = gqa_core(row_model(r), cal.attention_gqa, core, 0.0, peak, eff, gpu.hbm_Bps, fp8, batch, 1)
    old = core.time_s + batch * tokens * one_more / peak
    return max(new.time_s, floor_s), max(old, cal.attention_floor_s)


def fitted(r: dict) -> bool:
    return (int(r["num_heads"]), int(r["num_key_value_heads"]), int(r["head_dim"])) == GQA_FIT_SHAPE and \
        not int(r["window_size"])


def summary() -> list[list]:
    """[GPU, KV dtype, role, rows, new mean abs %, new bias %, new over 30 %, old mean abs %, old bias %]."""
    groups: dict[tuple, list] = {}
    for r in rows():
        new, old = predict_s(r)
        measured = float(r["latency"]) * 1e-3
        key = (r["gpu"], r["kv_cache_dtype"], "fit" if fitted(r) else "held-out")
        groups.setdefault(key, []).append((new / measured - 1, old / measured - 1))
    out = []
    for key, errs in sorted(groups.items()):
        new, old = zip(*errs)
        out.append([*key, len(errs), round(100 * statistics.mean(map(abs, new)), 1),
                    round(100 * statistics.mean(new), 1), round(100 * sum(abs(e) > 0.3 for e in new) / len(new)),
                    round(100 * statistics.mean(map(abs, old)), 1), round(100 * statistics.mean(old), 1)])
    return out


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    head = ["GPU", "KV", "role", "rows", "mean abs err %", "bias %", "rows over 30 %", "before: mean abs err %",
            "before: bias %"]
    print(markdown_table(head, summary()))


if __name__ == "__main__":
    main()
