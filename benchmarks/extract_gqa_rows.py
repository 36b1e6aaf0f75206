"""Save the grouped-query decode attention rows the validation reads (benchmarks/data/aic_gqa_attention.csv).

TensorRT-LLM 1.3.0rc20's ``generation_attention`` tables of NVIDIA AIConfigurator (aiconfigurator-core 0.12.0,
Apache-2.0) on six GPUs, at every catalog grouped-query model's heads on one rank of TP 1, 2, 4 and 8, no
window or the model's own, a grid of serving sizes (BATCHES x STEPS cached tokens); and every row the fit reads
(wideep.calibrate.aic.attention_from_gqa), so tests refit the shipped constants. Needs the ``aic`` extra and
pyarrow."""

from __future__ import annotations

import csv
from pathlib import Path

from wideep.calibrate.aic import AIC_SYSTEMS, ENGINE_VERSIONS, GQA_FIT_SHAPE, GQA_MIN_BATCH, data_root, read_rows
from wideep.core.catalog import list_ids
from wideep.specs.model import load_model

OUT = Path(__file__).resolve().parent / "data" / "aic_gqa_attention.csv"
COLUMNS = ["gpu", "batch_size", "isl", "step", "num_heads", "num_key_value_heads", "head_dim", "window_size",
           "kv_cache_dtype", "latency"]
BATCHES, STEPS = {8, 32, 128, 512}, {127, 511, 2047, 8191}


def catalog_shapes() -> set[tuple[int, int, int, int]]:
    """(query heads, KV heads, head dim, window) of one rank for every GQA model at TP 1, 2, 4, 8."""
    out = set()
    for mid in list_ids("models"):
        a = load_model(mid).attention
        if a.kind == "gqa":
            for tp in (1, 2, 4, 8):
                for window in {0, a.sliding_window}:
                    out.add((a.heads // tp, max(1, a.kv_heads // tp), a.head_dim, window))
    return out


def main() -> None:
    shapes, root, rows = catalog_shapes(), data_root("auto"), []
    for gpu, system in AIC_SYSTEMS.items():
        table = root / system / "attention" / "trtllm" / ENGINE_VERSIONS["trtllm"] / "generation_attention_perf.parquet"
        for r in read_rows(table):
            key = (int(r["num_heads"]), int(r["num_key_value_heads"]), int(r["head_dim"]), int(r["window_size"]))
            batch, step = int(r["batch_size"]), int(r["step"])
            fit_row = key == (*GQA_FIT_SHAPE, 0) and batch >= GQA_MIN_BATCH
            if fit_row or (key in shapes and batch in BATCHES and step in STEPS):
                rows.append({"gpu": gpu} | {c: r[c] for c in COLUMNS[1:-1]} | {"latency": f"{float(r['latency']):.5g}"})
    with OUT.open("w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main()
