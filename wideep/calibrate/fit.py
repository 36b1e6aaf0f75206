"""Turn a raw measurement record (:mod:`wideep.calibrate.measure`) into a calibration TOML file.

Runs without a GPU: the record is plain JSON (seconds and bytes), the peaks come from the GPU catalog.
Every efficiency is ``time at datasheet peak / measured time``, so launch and tail costs stay inside it:

- ``[memory_kernel]``: bytes moved (read + written) -> efficiency of a memory-bound kernel;
- ``[[gemm_shape]]``: per weight shape and dtype, m -> efficiency against ``max(FLOPs / peak, bytes / HBM peak)``
  with bytes = weights + activations in + bf16 out;
- ``[[grouped_gemm]]``: the same for the routed-expert shapes, m tokens per expert, per local expert count:
  the fused MoE kernel's rows (``fused``: m = copies / experts touched, the roofline of the experts touched)
  where the record has them, else PyTorch's grouped kernels (``grouped``: every local expert m rows);
- ``[gemm]``, ``[hbm]``, ``[flops]``: the summary curves older files carry, from the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wideep.core import units
from wideep.core.catalog import Field, check_table, read_file
from wideep.core.errors import CatalogError
from wideep.specs.hardware import GPU

#: Bytes per weight and per activation value: nvfp4 4 bits + a 1-byte scale per 16; mxfp4 (W4A8 on Blackwell)
#: 4.25-bit weights, fp8 activations
BYTES_IN = {"bf16": 2, "fp8": 1, "nvfp4": units.DTYPES["nvfp4"].weight_bytes(1.0),
            "mxfp4": units.DTYPES["mxfp4"].weight_bytes(1.0)}
OUT_BYTES = 2  # bf16 output
FP8_SCALE_BYTES = 4  # float32 row / column scales of the fp8 measurements


GEMM_ROW = {"shape": Field(str), "n": Field(int, "positive"), "k": Field(int, "positive"),
            "m": Field(int, "positive"), "dtype": Field(str, choices=tuple(BYTES_IN)), "s": Field(float, "positive")}
#: Fields of a timed row of each section of a raw record (other keys are kept but not read).
ROW_FIELDS = {"memory": {"bytes": Field(int, "positive"), "s": Field(float, "positive")}, "gemm": GEMM_ROW,
              "grouped": GEMM_ROW | {"experts": Field(int, "positive")},
              "fused": {k: f for k, f in GEMM_ROW.items() if k != "m"}
              | {"experts": Field(int, "positive"), "copies": Field(float, "positive"),
                 "touched": Field(float, "positive")}}
OPTIONAL_SECTIONS = ("fused",)  # records written before the fused MoE kernel was measured have none


def read_record(path: str | Path) -> dict:
    """A raw record written by ``wideep calibrate --raw``; malformed files raise :class:`CatalogError`."""
    data = read_file(Path(path))
    for key, kind in (("stamp", dict), ("memory", list), ("gemm", list), ("grouped", list)):
        if not isinstance(data.get(key), kind):
            raise CatalogError("missing or malformed section", str(path), key)
    for key in OPTIONAL_SECTIONS:
        if not isinstance(data.setdefault(key, []), list):
            raise CatalogError("malformed section: expected a list", str(path), key)
    for key, fields in ROW_FIELDS.items():
        check_rows(data[key], fields, str(path), key)
    if not data["memory"]:
        raise CatalogError("no memory-kernel rows", str(path), "memory")
    return data


def check_rows(rows: list, fields: dict[str, Field], source: str, section: str) -> None:
    """Every timed row (one with ``s``; a failed measurement holds ``error`` instead) has ``fields``."""
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise CatalogError(f"expected an object, got {type(row).__name__}", source, f"{section}[{i}]")
        if "s" in row or section == "memory":
            check_table({k: v for k, v in row.items() if k in fields}, fields, source, f"{section}[{i}].")


def gemm_roofline_s(gpu: GPU, dtype: str, m: int, n: int, k: int, experts: int = 1) -> float:
    """Seconds at datasheet peak of ``experts`` products [m x k] x [k x n]."""
    flops = 2.0 * m * n * k * experts
    nbytes = experts * (n * k * BYTES_IN[dtype] + m * k * BYTES_IN[dtype] + m * n * OUT_BYTES)
    if dtype == "fp8":
        nbytes += experts * (m + n) * FP8_SCALE_BYTES
    return max(flops / gpu.flops(gpu.compute_dtype(dtype) or dtype), nbytes / gpu.hbm_Bps)


#: A row measured faster than the datasheet peak by more than this is not a measurement of the GPU named.
PEAK_SLACK = 1.05


def check_device(stamp: dict, gpu: GPU, source: str) -> None:
    """The record's device (``stamp.device``, CUDA's name) must be the GPU whose peaks the fit divides by."""
    def model(name: str) -> str:  # "NVIDIA H200" and "NVIDIA H200 SXM 141GB" -> "H200"
        return name.upper().removeprefix("NVIDIA ").split(" ")[0]
    device = str(stamp.get("device", ""))
    if device and model(device) != model(gpu.name):
        raise CatalogError(f"measured on {device!r}, not on {gpu.name} (--gpu {gpu.id})", source, "stamp.device")


def efficiency(roofline_s: float, s: float, gpu: GPU, source: str, where: str) -> float:
    """Time at datasheet peak / measured time, at most 1; far above 1 is an error naming the row."""
    eff = roofline_s / s
    if eff > PEAK_SLACK:
        raise CatalogError(f"{eff:.2f}x the {gpu.id} datasheet peak: faster than the GPU can run", source, where)
    return min(1.0, eff)


def memory_curve(record: dict, gpu: GPU, source: str) -> tuple[list[int], list[float]]:
    rows = sorted((r["bytes"], efficiency(r["bytes"] / gpu.hbm_Bps, r["s"], gpu, source, f"memory[{i}]"))
                  for i, r in enumerate(record["memory"]))
    return [b for b, _ in rows], [e for _, e in rows]


def shape_curves(rows: list[dict], gpu: GPU, keys: tuple[str, ...], source: str, section: str) -> list[dict]:
    """Group timed rows by ``keys`` + dtype; each group -> {keys..., dtype, m: [...], efficiency: [...]}."""
    groups: dict[tuple, list[tuple[int, float]]] = {}
    for i, r in enumerate(rows):
        if "s" in r:
            roof_s = gemm_roofline_s(gpu, r["dtype"], r["m"], r["n"], r["k"], r.get("experts", 1))
            groups.setdefault(tuple(r[k] for k in keys) + (r["dtype"],), []).append(
                (r["m"], efficiency(roof_s, r["s"], gpu, source, f"{section}[{i}]")))
    curves = []
    for key, pts in groups.items():
        pts.sort()
        curves.append(dict(zip(keys + ("dtype",), key)) | {"m": [m for m, _ in pts], "efficiency": [e for _, e in pts]})
    return curves


#: A fused-kernel row within this factor of its curve's least time waits mostly on the kernel's own K loop and
#: launch (``floor_us``): its time bounds how fast the kernel reads its experts from below, it does not measure it.
FLOOR_BOUND = 1.5


def fused_curves(rows: list[dict], gpu: GPU, source: str) -> list[dict]:
    """Group fused-kernel rows by (shape, n, k, experts, dtype); each group -> a grouped curve with the kernel's
    least time for its shape and dtype over every expert count (``floor_us``: its K loop and launch, where one
    or two experts are touched) and efficiencies at m = copies per expert touched (at equal m, the row of the
    most copies): roofline of the experts touched / measured time for the rows above :data:`FLOOR_BOUND` x the
    floor; a row below it takes the larger of its own ratio and the curve of the others there (uniform routing
    touches one or two experts at m = 1, where the floor sets the time, so a plan at m = 1 over more experts
    reads their bytes at the efficiency of the first rows past it)."""
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    floors: dict[tuple, float] = {}
    for i, r in enumerate(rows):
        if "s" in r:
            groups.setdefault((r["shape"], r["n"], r["k"], r["experts"], r["dtype"]), []).append((i, r))
            shape = (r["shape"], r["n"], r["k"], r["dtype"])  # one model's shape: its own floor
            floors[shape] = min(r["s"], floors.get(shape, r["s"]))
    curves = []
    for key, timed in groups.items():
        floor_s = floors[key[0], key[1], key[2], key[4]]
        free, bounded = {}, {}
        for i, r in timed:
            m = round(r["copies"] / r["touched"], 4) or r["copies"] / r["touched"]  # never 0: m is read in log
            roof_s = gemm_roofline_s(gpu, r["dtype"], m, r["n"], r["k"], r["touched"])
            (free if r["s"] >= FLOOR_BOUND * floor_s else bounded)[m] = efficiency(
                roof_s, r["s"], gpu, source, f"fused[{i}]")
        xs = sorted(free) or sorted(bounded)
        ys = [free.get(m, bounded.get(m)) for m in xs]
        pts = {m: max(e, float(np.interp(np.log(m), np.log(xs), ys))) for m, e in bounded.items()} | free
        curves.append({"shape": key[0], "n": key[1], "k": key[2], "experts": key[3], "dtype": key[4],
                       "m": sorted(pts), "efficiency": [pts[m] for m in sorted(pts)],
                       "floor_us": round(floor_s * 1e6, 2)})
    return curves


def expert_curve(grouped: list[dict], dtype: str, experts: int = 8) -> tuple[list[int], list[float]]:
    """Time-weighted efficiency of the whole gate_up + down at each m (the older M-only ``[gemm]`` curve;
    MoE tensor-parallel slices, named ``.../tpN``, left out)."""
    by_m: dict[int, list[float]] = {}
    for c in grouped:
        if c["dtype"] == dtype and c["experts"] == experts and "/tp" not in c["shape"]:
            for m, e in zip(c["m"], c["efficiency"]):
                by_m.setdefault(m, []).append(e)
    ms = sorted(m for m, es in by_m.items() if len(es) == 2)
    return ms, [len(by_m[m]) / sum(1 / e for e in by_m[m]) for m in ms]


def fit(record: dict, gpu: GPU, source: str = "record") -> dict:
    """Calibration tables (the structure of a ``topologies/calibration`` file) from one record (named
    ``source`` in errors)."""
    check_device(record["stamp"], gpu, source)
    mem_bytes, mem_eff = memory_curve(record, gpu, source)
    shapes = shape_curves(record["gemm"], gpu, ("shape", "n", "k"), source, "gemm")
    grouped = shape_curves(record["grouped"], gpu, ("shape", "n", "k", "experts"), source, "grouped")
    fused = fused_curves(record.get("fused", []), gpu, source)
    fused_shapes = {(f["shape"], f["n"], f["k"], f["dtype"]) for f in fused}
    ms, eff = expert_curve(grouped, "bf16")
    tables = {"memory_kernel": {"bytes": mem_bytes, "efficiency": mem_eff},
              "gemm": {"tokens_per_expert": ms, "efficiency": eff},
              "hbm": {"efficiency": max(mem_eff)},
              "flops": {"efficiency": best_flops(shapes, "bf16", gpu)},
              "gemm_shape": shapes,
              "grouped_gemm": fused + [c for c in grouped
                                       if (c["shape"], c["n"], c["k"], c["dtype"]) not in fused_shapes]}
    ms8, eff8 = expert_curve(grouped, "fp8")
    if ms8 == ms and ms:
        tables["gemm"]["efficiency_fp8"] = eff8
    if any(c["dtype"] == "fp8" for c in shapes):
        tables["flops"]["efficiency_fp8"] = best_flops(shapes, "fp8", gpu)
    return tables


def best_flops(curves: list[dict], dtype: str, gpu: GPU) -> float:
    """Highest efficiency of a compute-bound product: the largest m of each shape whose roofline there is its
    FLOPs (a router's 8-16 outputs stay memory-bound at any m)."""
    def compute_bound(c: dict) -> bool:
        m = c["m"][-1]
        return 2.0 * m * c["n"] * c["k"] / gpu.flops(gpu.compute_dtype(dtype) or dtype) >= gemm_roofline_s(
            gpu, dtype, m, c["n"], c["k"])
    return max((c["efficiency"][-1] for c in curves if c["dtype"] == dtype and compute_bound(c)), default=1.0)


def fmt(values: list, digits: int = 4) -> str:
    return "[" + ", ".join(f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in values) + "]"


def to_toml(tables: dict, stamp: dict, gpu: GPU, header: list[str]) -> str:
    """A calibration file: comment lines, the GPU, the stamp, every table present (arrays of tables last)."""
    lines = [f"# {h}" for h in header] + [f'gpu = "{gpu.id}"', "", "[stamp]"]
    lines += [f"{k} = {json.dumps(str(v))}" for k, v in stamp.items()]
    for name in ("memory_kernel", "gemm", "hbm", "flops", "attention", "attention_gqa", "kernel"):
        if tables.get(name):
            lines += ["", f"[{name}]"] + [f"{k} = {fmt(v) if isinstance(v, list) else f'{v:.4g}'}"
                                         for k, v in tables[name].items()]
    for name in ("gemm_shape", "grouped_gemm", "allreduce"):
        for c in tables.get(name, []):
            lines += ["", f"[[{name}]]"] + [f"{k} = " + (fmt(v) if isinstance(v, list) else json.dumps(v))
                                           for k, v in c.items()]
    return "\n".join(lines) + "\n"


def measured_header(record: dict, gpu: GPU, command: str) -> list[str]:
    """The comment lines of a file fitted from our own measurement."""
    st = record["stamp"]
    return [f"Measured on one {st.get('device', '?')} on {st.get('date', '?')} by `wideep calibrate`; written by `{command}`.",
            f"torch {st.get('torch', '?')}, CUDA {st.get('cuda', '?')}, driver {st.get('driver', '?')}, "
            f"max SM clock {st.get('max_sm_clock', '?')}, power limit {st.get('power_limit', '?')}.",
            f"Peaks from the GPU catalog ({gpu.id}): efficiency = time at datasheet peak / measured time."] + (
        [f"GEMM shapes ([[gemm_shape]]) measured on {record['gemm_stamp'].get('date', '?')}."]
        if "gemm_stamp" in record else []) + fused_header(record)


def fused_header(record: dict) -> list[str]:
    """The comment line naming where a record's fused MoE rows came from (none without them)."""
    if not any("s" in r for r in record.get("fused", [])):
        return []
    st = record.get("fused_stamp", record["stamp"])
    return [f"Routed experts ([[grouped_gemm]]): the fused MoE kernel in Triton {st.get('triton', '?')} "
            f"(wideep.calibrate.fused_moe) at uniform top-k routing's sparsity, measured on {st.get('date', '?')}."]
