"""Tensor-parallel all-reduce: wideep's collective model against measured custom all-reduce kernels.

Rows: NVIDIA AIConfigurator 0.12.0's silicon-measured custom all-reduce tables (bf16, message size in
elements per rank, latency in ms), copied to ``benchmarks/data/aic_custom_allreduce.csv`` (README there).
The model (:mod:`wideep.traffic.collectives`) is fitted on ONE series, SGLang 0.5.6.post2's kernel on 8 H200s
(``--fit`` prints the TOML lines); every other series (2 and 4 H200s, TensorRT-LLM's build on H200, H100,
B200, GB200, GB300) is held out. Each system's NVLink bandwidth per GPU comes from its catalog entry.

Run: python benchmarks/allreduce_validation.py [--fit] [--max-elements N]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from wideep.core import units
from wideep.specs.hardware import load_system
from wideep.traffic.collectives import Collective, load_collective

DATA = Path(__file__).resolve().parent / "data" / "aic_custom_allreduce.csv"
FITTED = ("h200_sxm", "sglang/0.5.6.post2", 8)
SYSTEMS = {"h200_sxm": "hgx-h200", "h100_sxm": "hgx-h100", "b200_sxm": "hgx-b200", "gb200": "gb200-nvl72",
           "gb300": "gb300-nvl72"}
BF16_BYTES = 2
DECODE_MAX_ELEMENTS = 4 * 1024 * 1024  # up to 512 tokens x 8,192 hidden: the sizes a TP decode step sends


def series() -> dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]]:
    """(system, source, gpus) -> (message bytes, measured seconds), sorted by size."""
    out: dict = {}
    with DATA.open() as f:
        for row in csv.DictReader(f):
            key = (row["system"], row["source"], int(row["num_gpus"]))
            out.setdefault(key, []).append((int(row["message_size"]) * BF16_BYTES, float(row["latency"]) * units.ms))
    return {k: tuple(np.array(v).T) for k, v in ((k, sorted(v)) for k, v in out.items())}


def link_Bps(system: str) -> float:
    return load_system(SYSTEMS[system]).scale_up.bw_Bps


def fit() -> str:
    """Fixed cost = the smallest message's time; ramp over message / gpus (the chunk per peer) of
    bus bytes / (link x (time - fixed cost)), at most 1."""
    sizes, times = series()[FITTED]
    gpus, bw = FITTED[2], link_Bps(FITTED[0])
    latency = float(times[0])
    bus = np.array([Collective.bus_bytes(s, gpus) for s in sizes])
    keep = times > latency * 1.05
    eff = np.clip(bus[keep] / (bw * (times[keep] - latency)), 1e-3, 1.0)
    fmt = lambda xs, f: "[" + ", ".join(f.format(x) for x in xs) + "]"  # noqa: E731
    return (f"latency_us = {latency / units.us:.2f}\nefficiency = {eff[-1]:.3f}\n[ramp]\n"
            f"bytes = {fmt(sizes[keep] / gpus, '{:.0f}')}\nefficiency = {fmt(eff, '{:.3f}')}")


def errors(max_elements: int) -> list[tuple[tuple, float, float, int]]:
    """Per series: mean |predicted / measured - 1| and mean signed error over messages up to ``max_elements``,
    and the row count."""
    model = load_collective()
    out = []
    for key, (sizes, times) in sorted(series().items()):
        on = sizes <= max_elements * BF16_BYTES
        pred = np.array([model.time_s(s, key[2], link_Bps(key[0]))[0] for s in sizes[on]])
        err = pred / times[on] - 1
        out.append((key, float(np.mean(np.abs(err))), float(np.mean(err)), int(on.sum())))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="Print the fitted TOML lines.")
    ap.add_argument("--max-elements", type=int, default=DECODE_MAX_ELEMENTS, help="Largest message, elements.")
    args = ap.parse_args()
    if args.fit:
        print(fit())
        return
    rows = errors(args.max_elements)
    print(f"{'system':10} {'source':20} {'GPUs':>4} {'rows':>4} {'mean |err|':>10} {'mean err':>9}  role")
    for key, err, signed, n in rows:
        role = "fitted" if key == FITTED else "held out"
        print(f"{key[0]:10} {key[1]:20} {key[2]:>4} {n:>4} {err:>10.1%} {signed:>+9.1%}  {role}")
    held = [e for k, e, _, _ in rows if k != FITTED]
    print(f"held-out series: {len(held)}, mean of their mean |err| {np.mean(held):.1%}, worst {max(held):.1%}")


if __name__ == "__main__":
    main()
