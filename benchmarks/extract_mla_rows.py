"""Copy AIConfigurator's MLA decode-attention rows that wideep fits and checks into benchmarks/data.

From each GPU's ``mla/trtllm/1.3.0rc20/generation_mla_perf.parquet`` (aiconfigurator-core 0.12.0): every row of
DeepSeek's 128 heads on one rank (the FLOP side's fit, and the table's fastest row, the kernel's floor) and of 16
heads on one rank of TP8 (the memory side's fit), and the rows of the other head counts (64 .. 1: TP2 .. TP128)
with at least 2,048 cached tokens, where the fit applies (held out; benchmarks/mla_validation.py). Latency in ms,
5 significant digits. Needs the package and pyarrow.
Run: python benchmarks/extract_mla_rows.py
"""

from __future__ import annotations

import csv

from mla_validation import GPUS, MODEL, ROWS as OUT
from wideep.calibrate.aic import AIC_SYSTEMS, KV_BOUND_CONTEXT, MLA_MEMORY_TP, data_root, read_rows
from wideep.specs.model import load_model

FIELDS = ("gpu", "tp_size", "num_heads", "kv_cache_dtype", "batch_size", "isl", "step", "latency")
HEADS = load_model(MODEL).attention.heads
FITTED_HEADS = (HEADS, HEADS // MLA_MEMORY_TP)


def main() -> None:
    root = data_root("auto")
    rows = []
    for gpu in GPUS:
        for r in read_rows(root / AIC_SYSTEMS[gpu] / "mla" / "trtllm" / "1.3.0rc20" / "generation_mla_perf.parquet"):
            context = int(r["isl"]) + int(r["step"])
            if int(r["num_heads"]) in FITTED_HEADS or context >= KV_BOUND_CONTEXT:
                rows.append({"gpu": gpu, **{k: r[k] for k in FIELDS[1:-1]}, "latency": f"{float(r['latency']):.5g}"})
    with OUT.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT}: {len(rows)} rows")


if __name__ == "__main__":
    main()
