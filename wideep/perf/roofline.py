"""Roofline terms and the calibration data that turns datasheet peaks into achieved times.

A term is one kind of work in a step (attention, routed experts, dispatch, ...). Its SOL time is
``max(FLOPs / peak FLOP/s, bytes / peak HBM bytes/s)``; its predicted time divides the SOL time by an
achieved efficiency read from ``topologies/calibration/`` (a data file with sources, never a constant in
code). Where a file has them, measured curves replace the single numbers: GEMM efficiency by the
kernel's shape (n, k) and m (``[[gemm_shape]]``, ``[[grouped_gemm]]`` for the routed experts), and a
memory-bound kernel's efficiency by the bytes it moves (``[memory_kernel]``, launch and tail included).
Every time also respects a per-kernel floor (``[kernel]``). :attr:`Calibration.sources` names the file
each table came from, so a plan can say which calibration set each term.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from wideep.core.catalog import KINDS, Field, catalog_root, check_table, not_a_file, read_file, sub_table
from wideep.core.curves import checked_curve, log_interp
from wideep.core.errors import CatalogError, InputError
from wideep.core.units import DTYPES

RESOURCES = ("hbm", "flops", "nvlink", "nic", "latency", "sms")  # sms: the all-to-all kernels' send blocks

# Tables and keys of a calibration file. [gemm] and [flops] may add ``efficiency_<dtype>`` (fp8, nvfp4,
# bf16) for a dtype whose kernels differ; ``efficiency`` serves every other dtype.
CALIBRATION_TABLES = {
    "gemm": {"tokens_per_expert": Field(list), "efficiency": Field(list)}
    | {f"efficiency_{d}": Field(list, required=False) for d in DTYPES},
    "attention": {"hbm_efficiency": Field(float, "positive"), "flops_efficiency": Field(float, "positive"),
                  "hbm_efficiency_fp8": Field(float, "positive", required=False),
                  "flops_efficiency_fp8": Field(float, "positive", required=False),
                  "sequence_tokens": Field(float, "nonneg", required=False),
                  "sequence_tokens_fp8": Field(float, "nonneg", required=False)},
    "hbm": {"efficiency": Field(float, "positive")},
    "flops": {"efficiency": Field(float, "positive")}
    | {f"efficiency_{d}": Field(float, "positive", required=False) for d in DTYPES},
    "memory": {"workspace_fraction": Field(float, "nonneg")},
}
# Optional tables: measured curves (``wideep calibrate``) and kernel floors.
OPTIONAL_TABLES = {
    "memory_kernel": {"bytes": Field(list), "efficiency": Field(list)},
    "kernel": {"gemm_floor_us": Field(float, "nonneg", required=False),
               "memory_floor_us": Field(float, "nonneg", required=False),
               "attention_floor_us": Field(float, "nonneg", required=False)},
    "overlap": {"hidden_fraction": Field(float, "nonneg")},
    "attention_gqa": {"hbm_efficiency": Field(float, "positive"), "kv_head_us": Field(float, "nonneg"),
                      "hbm_efficiency_fp8": Field(float, "positive", required=False),
                      "kv_head_us_fp8": Field(float, "nonneg", required=False),
                      "floor_us": Field(float, "nonneg", required=False),
                      "floor_us_fp8": Field(float, "nonneg", required=False),
                      "ramp_bytes": Field(list, required=False), "ramp_efficiency": Field(list, required=False),
                      "ramp_bytes_fp8": Field(list, required=False),
                      "ramp_efficiency_fp8": Field(list, required=False)},
}
SHAPE_FIELDS = {"shape": Field(str), "n": Field(int, "positive"), "k": Field(int, "positive"),
                "dtype": Field(str, choices=tuple(DTYPES)), "m": Field(list), "efficiency": Field(list)}
SHAPE_TABLES = {"gemm_shape": SHAPE_FIELDS,
                "grouped_gemm": SHAPE_FIELDS | {"experts": Field(int, "positive"),
                                                "covers": Field(str, required=False, choices=("gemm", "moe_layer")),
                                                "fixed_us": Field(float, "nonneg", required=False),
                                                "floor_us": Field(float, "nonneg", required=False),
                                                "moe_tp": Field(int, "positive", required=False)}}
ALLREDUCE_FIELDS = {"gpus": Field(int, "positive"), "bytes": Field(list), "us": Field(list)}
SHAPE_MATCH = np.log(4.0)  # a measured shape stands in for another within this log-distance in (n, k)


@dataclass(frozen=True)
class ShapeCurve:
    """Measured efficiency of one weight shape (and local expert count) by m."""

    n: int
    k: int
    dtype: str
    m: tuple[float, ...]
    efficiency: tuple[float, ...]
    experts: int = 1
    covers: str = "gemm"  # or "moe_layer": the time includes routing, permute, activation and unpermute
    fixed_s: float = 0.0  # moe_layer: the layer's time that does not grow with its experts, once per layer
    floor_s: float = 0.0  # this kernel's own least time (launch, its K loop), in place of the GEMM floor; 0: none
    moe_tp: int = 1  # moe_layer: the MoE tensor-parallel size whose layer it timed (its GEMMs are 1/moe_tp slices)

    def efficiency_at(self, m: float) -> float:
        return float(log_interp(max(m, 1e-9), self.m, self.efficiency))

    def distance(self, n: int, k: int, experts: int = 1) -> float:
        return abs(np.log(n / self.n)) + abs(np.log(k / self.k)) + abs(np.log(experts / self.experts))


@dataclass(frozen=True)
class Calibration:
    """Achieved fractions of peak (all in (0, 1]) and the HBM share kept as workspace.

    Attributes
    ----------
    source : str
        File(s) the values came from.
    gemm_tokens_per_expert : tuple of float
        GEMM M values of the efficiency curve.
    gemm_efficiency : dict
        dtype name (or ``"*"`` for every other dtype) -> achieved / roofline at each M.
    flops_efficiency : dict
        dtype name (or ``"*"``) -> achieved / peak FLOP/s of compute-bound kernels without a curve.
    """

    source: str
    gemm_tokens_per_expert: tuple[float, ...]
    gemm_efficiency: dict
    attention_hbm_efficiency: float
    attention_flops_efficiency: float
    hbm_efficiency: float
    flops_efficiency: dict
    workspace_fraction: float
    memory_bytes: tuple[float, ...] = ()
    memory_efficiency: tuple[float, ...] = ()
    gemm_floor_s: float = 0.0
    memory_floor_s: float = 0.0
    attention_floor_s: float = 0.0
    shapes: tuple[ShapeCurve, ...] = ()
    grouped: tuple[ShapeCurve, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()  # (table, file) for every table in use; grouped_gemm_<dtype> too
    overlap_hidden: float = 1.0  # share of the shorter side that two micro-batches hide
    allreduce: tuple[tuple[int, tuple[float, ...], tuple[float, ...]], ...] = ()  # (GPUs, message bytes, s)
    attention_fp8_flops_efficiency: float = 0.0  # against the fp8 peak, with an fp8 KV cache; 0: not measured
    attention_fp8_hbm_efficiency: float = 0.0  # with an fp8 KV cache; 0: as with a bf16 one
    attention_sequence_tokens: float = 0.0  # decode attention's fixed time per sequence: cached tokens' FLOPs at peak
    attention_fp8_sequence_tokens: float = 0.0  # the same with an fp8 KV cache
    attention_gqa: "GqaAttention | None" = None  # grouped-query decode attention's own kernel, where measured

    def __hash__(self) -> int:
        return hash(self.source)

    def source_of(self, table: str) -> str:
        """File the values of ``table`` came from."""
        return dict(self.sources).get(table, "")

    def memory_s(self, nbytes: float, hbm_Bps: float) -> float:
        """Seconds of one memory-bound kernel moving ``nbytes`` (read + written).

        On the measured curve where there is one (launch and tail inside it), else the floor plus the
        bytes at the large-transfer efficiency.
        """
        if self.memory_bytes:
            eff = float(log_interp(max(nbytes, 1.0), self.memory_bytes, self.memory_efficiency))
            return max(self.memory_floor_s, nbytes / (hbm_Bps * eff))
        return self.memory_floor_s + nbytes / (hbm_Bps * self.hbm_efficiency)

    def has_allreduce(self, gpus: int) -> bool:
        """Whether a measured all-reduce series of ``gpus`` GPUs is in the calibration."""
        return any(n == gpus for n, _, _ in self.allreduce)

    def allreduce_s(self, gpus: int, message_bytes: float) -> float | None:
        """Measured seconds of one bf16 all-reduce of ``message_bytes`` over ``gpus`` GPUs, or None when the
        calibration has no such series: log-log between measured sizes, the smallest's time below them, the
        largest's bandwidth above."""
        for n, xs, ys in self.allreduce:
            if n == gpus:
                if message_bytes > xs[-1]:
                    return ys[-1] * message_bytes / xs[-1]
                return float(np.exp(log_interp(max(message_bytes, 1.0), xs, tuple(np.log(ys)))))
        return None

    def shape_curve(self, dtype: str, n: int, k: int, experts: int = 0, moe_tp: int = 1) -> ShapeCurve | None:
        """The nearest measured shape (grouped, with ``experts`` local experts, when that is > 0), or None; of
        grouped curves equally near, one of MoE tensor-parallel size ``moe_tp`` (gpt-oss: the TP2 gate+up slice
        has the whole down's shape, 2,880 x 2,880, and a curve that timed the whole layer is the layer's)."""
        key = (dtype, n, k, experts, moe_tp)
        if key not in self._nearest:
            pool = [c for c in (self.grouped if experts else self.shapes) if c.dtype == dtype]
            best = min(pool, key=lambda c: (round(c.distance(n, k, max(experts, 1)), 9), c.moe_tp != moe_tp),
                       default=None)
            near = best is not None and best.distance(n, k, max(experts, 1)) <= SHAPE_MATCH
            self._nearest[key] = best if near else None
        return self._nearest[key]

    @cached_property
    def _nearest(self) -> dict:
        """Memo of :meth:`shape_curve` answers (the calibration is immutable)."""
        return {}

    def shape_efficiency(self, m: float, dtype: str, n: int, k: int, experts: int = 0,
                         moe_tp: int = 1) -> float | None:
        """Measured efficiency at ``m`` of the nearest measured shape, or None.

        A grouped GEMM between two measured local-expert counts of its shape (2 and 8, say, for 4) takes the
        two curves' efficiencies interpolated in log(experts), so fewer experts never cost more time than
        the next measured count gives. Grouped curves end where their tables do (AIConfigurator's MoE rows at
        512 rows per expert); past that a grouped GEMM runs as its experts' dense GEMMs do, so the efficiency
        follows the nearest measured dense shape's curve from the grouped curve's last point (their ratio
        there kept), where there is one."""
        if not experts:
            curve = self.shape_curve(dtype, n, k)
            return None if curve is None else curve.efficiency_at(m)
        return self.between_expert_counts(dtype, n, k, experts, lambda c: self.grouped_efficiency(c, m), moe_tp)

    def routes_in_moe_layer(self, dtype: str, n: int, k: int, experts: int, moe_tp: int = 1) -> bool:
        """Whether the grouped curve nearest (n, k, ``experts`` local experts) in ``dtype`` timed the whole MoE
        layer, its router top-k included (``covers = "moe_layer"``)."""
        curve = self.shape_curve(dtype, n, k, experts, moe_tp)
        return curve is not None and curve.covers == "moe_layer"

    def layer_fixed_s(self, dtype: str, n: int, k: int, experts: int, moe_tp: int = 1) -> float:
        """Fixed seconds per MoE layer of the grouped curve nearest (n, k, experts), interpolated in
        log(experts) between measured expert counts as :meth:`shape_efficiency` does; 0 without one."""
        return self.between_expert_counts(dtype, n, k, experts, lambda c: c.fixed_s, moe_tp) or 0.0

    def grouped_floor_s(self, dtype: str, n: int, k: int, experts: int, moe_tp: int = 1) -> float | None:
        """The measured least time of the grouped curve nearest (n, k, experts), interpolated in log(experts)
        as :meth:`shape_efficiency` does; None where that curve has none (the GEMM floor applies)."""
        return self.between_expert_counts(dtype, n, k, experts, lambda c: c.floor_s, moe_tp) or None

    def between_expert_counts(self, dtype: str, n: int, k: int, experts: int, value,
                              moe_tp: int = 1) -> float | None:
        """``value(curve)`` of the grouped curve nearest (n, k, experts), between the two measured expert counts
        of its shape around ``experts`` linear in log(experts); None without a curve."""
        curve = self.shape_curve(dtype, n, k, experts, moe_tp)
        if curve is None:
            return None
        lo, hi = self.expert_bracket(curve, experts)
        if lo is hi:
            return float(value(lo))
        w = np.log(experts / lo.experts) / np.log(hi.experts / lo.experts)
        return float((1 - w) * value(lo) + w * value(hi))

    def expert_bracket(self, curve: ShapeCurve, experts: int) -> tuple[ShapeCurve, ShapeCurve]:
        """The curves of ``curve``'s shape measured at the nearest expert counts at or below and at or above
        ``experts`` (``curve`` itself on a side with none)."""
        shape = (curve.dtype, curve.n, curve.k, curve.covers, curve.moe_tp)
        key = ("bracket", *shape, experts)
        if key not in self._nearest:
            same = [c for c in self.grouped if (c.dtype, c.n, c.k, c.covers, c.moe_tp) == shape]
            lo = max((c for c in same if c.experts <= experts), key=lambda c: c.experts, default=curve)
            hi = min((c for c in same if c.experts >= experts), key=lambda c: c.experts, default=curve)
            self._nearest[key] = (lo, hi) if lo.experts < hi.experts else (curve, curve)
        return self._nearest[key]

    def grouped_efficiency(self, curve: ShapeCurve, m: float) -> float:
        """``curve``'s efficiency at ``m``, past its last measured m following the nearest dense shape."""
        dense = self.shape_curve(curve.dtype, curve.n, curve.k) if m > curve.m[-1] else None
        if dense is None:
            return curve.efficiency_at(m)
        return min(1.0, curve.efficiency[-1] * dense.efficiency_at(m) / dense.efficiency_at(curve.m[-1]))

    def gemm(self, tokens_per_expert: float, dtype: str = "*") -> float:
        """Achieved / roofline of a GEMM with ``tokens_per_expert`` rows (log-linear interpolation).

        >>> cal = load_calibration()
        >>> cal.gemm(64) == cal.gemm(1)
        True
        """
        ys = self.gemm_efficiency.get(dtype, self.gemm_efficiency["*"])
        x = np.log(np.maximum(tokens_per_expert, 1.0))
        return float(np.interp(x, np.log(self.gemm_tokens_per_expert), ys))

    def flops(self, dtype: str = "*") -> float:
        """Achieved / peak FLOP/s for compute-bound kernels without a curve."""
        return self.flops_efficiency.get(dtype, self.flops_efficiency["*"])


@lru_cache(maxsize=1)
def calibration_dir() -> Path:
    return catalog_root() / KINDS["calibration"]


#: Where a calibration table's efficiencies come from (:func:`kernel_origin`), in words.
ORIGIN_WORDS = {"published": "published kernel benchmarks (DeepGEMM, FlashMLA on H800; default.toml)",
                "aic": "NVIDIA AIConfigurator's measured engine kernels (TensorRT-LLM's, and vLLM's where the file names it)",
                "measured": "kernels measured by wideep calibrate (PyTorch's GEMMs, a Triton fused MoE)",
                "given": "a calibration file given with --calibration"}


def kernel_origin(source: str) -> str:
    """Where the calibration table ``source`` ("file [table]", as a plan's ``calibration`` names it) came
    from, a key of :data:`ORIGIN_WORDS`: the catalog's default file, AIConfigurator (the file's stamp names it
    as the whole file's source or as ``table``'s), a file of ``wideep calibrate`` (any other stamp), else a
    file the user gave."""
    if source.startswith("default.toml"):
        return "published"
    name, _, table = source.partition(" [")
    stamp = calibration_stamp(name)
    if "AIConfigurator" in str(stamp.get("source", "")) or f"{table.rstrip(']')}_table" in stamp:
        return "aic"
    return "measured" if stamp else "given"


def source_name(path: str) -> str:
    """How a plan names a calibration file: a catalog file by its path in the catalog (``h200-sxm.toml``,
    ``trtllm/h200-sxm.toml``), a user's by its absolute path (so its stamp is read from it, wherever the
    command ran)."""
    full, catalog = Path(path).resolve(), calibration_dir().resolve()
    return str(full.relative_to(catalog)) if full.is_relative_to(catalog) else str(full)


@lru_cache(maxsize=None)
def calibration_stamp(name: str) -> dict:
    """The ``[stamp]`` of calibration file ``name`` (in the catalog, or a path) ({} without one), read once."""
    path = calibration_dir() / name
    return read_file(path).get("stamp", {}) if path.is_file() else {}


#: Kernel sets that ``--calibration NAME`` gives every GPU alike (a like-for-like comparison): name -> what.
#: A GPU reads ``<name>/<gpu>.toml`` of the catalog's calibration folder, else its own file where that file's
#: stamp names the set's engine.
KERNEL_SETS = {"trtllm": "NVIDIA AIConfigurator's TensorRT-LLM 1.3.0rc20 kernel tables"}


def load_calibration(gpu_id: str | None = None, path: str | None = None) -> Calibration:
    """Calibration for a GPU: ``default.toml`` overlaid with ``<gpu_id>.toml`` when that file exists.

    ``path`` (a user's file) overlays the result last; a name of :data:`KERNEL_SETS` takes that set's file for
    the GPU instead of ``<gpu_id>.toml``. Tables a file leaves out keep the default values.
    """
    if path in KERNEL_SETS:
        if Path(path).is_file():  # checked here, outside the cache: it depends on the working folder
            raise InputError(f"names the kernel set {path!r} and a file here; give ./{path} for the file",
                             "--calibration")
    elif path:  # the cache is keyed by the file, not by a name relative to a folder
        path = str(Path(path).absolute())
    return calibration_in(str(calibration_dir()), gpu_id, path)


@lru_cache(maxsize=256)
def calibration_in(folder: str, gpu_id: str | None, path: str | None) -> Calibration:
    """:func:`load_calibration` from the catalog folder ``folder`` (cached: a search asks per candidate)."""
    files = [Path(folder) / "default.toml"]
    if path in KERNEL_SETS:
        files.append(kernel_set_file(Path(folder), gpu_id, path))
    else:
        if gpu_id and (Path(folder) / f"{gpu_id}.toml").is_file():
            files.append(Path(folder) / f"{gpu_id}.toml")
        if path:
            files.append(Path(path))
    return _load(tuple(str(f) for f in files), gpu_id)


def kernel_set_file(folder: Path, gpu_id: str | None, name: str) -> Path:
    """The file of kernel set ``name`` for ``gpu_id`` (:data:`KERNEL_SETS`)."""
    for path in (folder / name / f"{gpu_id}.toml", folder / f"{gpu_id}.toml"):
        if path.is_file() and (path.parent != folder or of_engine(path, name)):
            return path
    have = sorted({p.stem for p in (folder / name).glob("*.toml")} | {p.stem for p in folder.glob("*.toml")
                                                                       if of_engine(p, name)})
    raise InputError(f"no {name} kernel tables for {gpu_id or 'an unnamed GPU'} (the catalog has them for "
                     f"{', '.join(have)})", "--calibration")


def of_engine(path: Path, name: str) -> bool:
    """Whether calibration file ``path``'s stamp names engine ``name`` (an AIConfigurator read of its tables)."""
    return str(calibration_stamp(str(path)).get("engine", "")).startswith(name)


@lru_cache(maxsize=None)
def _load(files: tuple[str, ...], gpu_id: str | None = None) -> Calibration:
    tables: dict[str, dict] = {}
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise CatalogError(not_a_file(path), f)
        data = read_file(path)
        spec = ({k: Field(dict, required=(f == files[0])) for k in CALIBRATION_TABLES}
                | {k: Field(dict, required=False) for k in OPTIONAL_TABLES | {"stamp": None}}
                | {k: Field(list, required=False) for k in (*SHAPE_TABLES, "allreduce")}
                | {"gpu": Field(str, required=False)})
        check_table(data, spec, f)
        if gpu_id and data.get("gpu", gpu_id) != gpu_id:
            raise CatalogError(f"calibrates {data['gpu']!r}, not {gpu_id!r}", f, "gpu")
        for name, fields in (CALIBRATION_TABLES | OPTIONAL_TABLES).items():
            if name in data:
                table = check_table(sub_table(data, name, f), fields, f, name + ".") | {"_source": f}
                tables[name] = merged_floors(tables[name], table) if name == "kernel" and name in tables else table
        for name, fields in SHAPE_TABLES.items():
            if name in data:
                tables[name] = {"_source": f, "curves": shape_curves(data[name], fields, f, name)}
        if "allreduce" in data:
            tables["allreduce"] = {"_source": f, "curves": allreduce_curves(data["allreduce"], f)}
        for key in data.get("stamp", {}):  # a dtype's grouped curves from another table than the file's own
            if key.startswith("grouped_gemm_") and key.endswith("_table") and "grouped_gemm" in data:
                tables[key.removesuffix("_table")] = {"_source": f}
    xs, gemm = gemm_curves(tables["gemm"])
    flops = {"*": tables["flops"]["efficiency"]} | {k[len("efficiency_"):]: v for k, v in tables["flops"].items()
                                                      if k.startswith("efficiency_")}
    checks = ([(name, k) for name in ("attention", "attention_gqa") for k, v in tables.get(name, {}).items()
               if "efficiency" in k and not isinstance(v, list)]  # a ramp's list is checked as a curve
              + [("hbm", "efficiency")]
              + ([("overlap", "hidden_fraction")] if "overlap" in tables else [])
              + [("flops", k) for k in tables["flops"] if k.startswith("eff")])
    for name, key in checks:
        if tables[name][key] > 1:
            raise CatalogError(f"must be <= 1, got {tables[name][key]}", tables[name]["_source"], f"{name}.{key}")
    if tables["memory"]["workspace_fraction"] >= 1:  # the rest of HBM holds the weights and the KV cache
        raise CatalogError(f"must be < 1, got {tables['memory']['workspace_fraction']}", tables["memory"]["_source"],
                           "memory.workspace_fraction")
    mem = tables.get("memory_kernel")
    mem_x, mem_y = checked_curve(mem["bytes"], mem["efficiency"], mem["_source"], "memory_kernel") if mem else ((), ())
    floors = tables.get("kernel", {})
    return Calibration(
        source=", ".join(files), gemm_tokens_per_expert=xs, gemm_efficiency=gemm,
        attention_hbm_efficiency=tables["attention"]["hbm_efficiency"],
        attention_flops_efficiency=tables["attention"]["flops_efficiency"],
        attention_fp8_flops_efficiency=tables["attention"].get("flops_efficiency_fp8", 0.0),
        attention_fp8_hbm_efficiency=tables["attention"].get("hbm_efficiency_fp8", 0.0),
        attention_sequence_tokens=tables["attention"].get("sequence_tokens", 0.0),
        attention_fp8_sequence_tokens=tables["attention"].get("sequence_tokens_fp8", 0.0),
        hbm_efficiency=tables["hbm"]["efficiency"], flops_efficiency=flops,
        workspace_fraction=tables["memory"]["workspace_fraction"], memory_bytes=mem_x, memory_efficiency=mem_y,
        gemm_floor_s=floors.get("gemm_floor_us", 0.0) * 1e-6, memory_floor_s=floors.get("memory_floor_us", 0.0) * 1e-6,
        attention_floor_s=floors.get("attention_floor_us", 0.0) * 1e-6,
        shapes=tables.get("gemm_shape", {}).get("curves", ()), grouped=tables.get("grouped_gemm", {}).get("curves", ()),
        overlap_hidden=tables.get("overlap", {}).get("hidden_fraction", 1.0),
        allreduce=tables.get("allreduce", {}).get("curves", ()),
        attention_gqa=GqaAttention.of(tables["attention_gqa"]) if "attention_gqa" in tables else None,
        sources=tuple((name, source_name(t["_source"])) for name, t in tables.items()))


@dataclass(frozen=True)
class GqaAttention:
    """Grouped-query decode attention (``[attention_gqa]``): the KV streams at a fraction of HBM that rises with
    the bytes one kernel call reads (``ramp``: (bytes, efficiencies); ``hbm_efficiency`` without a ramp and
    beyond its largest size), the work units (one per sequence and KV head on a rank, ``kv_head_s`` each: its
    query, softmax and output) run beside the stream, and one kernel takes at least ``floor_s``; with an fp8
    cache TensorRT-LLM runs another kernel (``*_fp8``; without an fp8 ramp or efficiency it reads the bf16
    ones). Seconds."""

    hbm_efficiency: float
    kv_head_s: float
    floor_s: float
    hbm_efficiency_fp8: float
    kv_head_s_fp8: float
    floor_s_fp8: float
    ramp: tuple = ()
    ramp_fp8: tuple = ()

    @classmethod
    def of(cls, table: dict) -> "GqaAttention":
        e, us, floor = table["hbm_efficiency"], table["kv_head_us"], table.get("floor_us", 0.0)
        ramp, ramp_fp8 = gqa_ramp(table, ""), gqa_ramp(table, "_fp8")
        if not ramp_fp8 and "hbm_efficiency_fp8" not in table:
            ramp_fp8 = ramp
        return cls(e, us * 1e-6, floor * 1e-6, table.get("hbm_efficiency_fp8", e),
                   table.get("kv_head_us_fp8", us) * 1e-6, table.get("floor_us_fp8", floor) * 1e-6, ramp, ramp_fp8)

    def rate(self, fp8_cache: bool) -> tuple[float, float]:
        """(seconds per sequence and KV head, floor seconds) for the cache's dtype."""
        return (self.kv_head_s_fp8, self.floor_s_fp8) if fp8_cache else (self.kv_head_s, self.floor_s)

    def efficiency(self, kernel_bytes: float, fp8_cache: bool) -> float:
        """Achieved fraction of HBM when one kernel call streams ``kernel_bytes`` of KV: the ramp, in log(bytes),
        held flat below its smallest size; the constant beyond its largest (and without one)."""
        ramp, constant = ((self.ramp_fp8, self.hbm_efficiency_fp8) if fp8_cache
                          else (self.ramp, self.hbm_efficiency))
        if ramp and kernel_bytes <= ramp[0][-1]:
            return float(log_interp(max(kernel_bytes, 1.0), *ramp))
        return constant


def gqa_ramp(table: dict, suffix: str) -> tuple:
    """``[attention_gqa]``'s ``ramp_bytes{suffix}`` and ``ramp_efficiency{suffix}`` as a checked curve, () when
    neither is given."""
    keys = (f"ramp_bytes{suffix}", f"ramp_efficiency{suffix}")
    if not any(k in table for k in keys):
        return ()
    source = table.get("_source", "[attention_gqa]")
    for key in keys:
        if key not in table:
            raise CatalogError(f"needs both {keys[0]} and {keys[1]}", source, f"attention_gqa.{key}")
    return checked_curve(table[keys[0]], table[keys[1]], source, f"attention_gqa.{keys[0]}")


def merged_floors(earlier: dict, later: dict) -> dict:
    """A GPU file's ``[kernel]`` floors over the earlier file's, key by key; the table is named after the file
    that set the memory floor (what ``layer_kernels`` reads)."""
    source = later["_source"] if "memory_floor_us" in later else earlier["_source"]
    return earlier | later | {"_source": source}


def shape_curves(rows: list, fields: dict, source: str, name: str) -> tuple[ShapeCurve, ...]:
    """Validated [[gemm_shape]] or [[grouped_gemm]] entries."""
    curves = []
    for i, row in enumerate(rows):
        where = f"{name}[{i}]"
        if not isinstance(row, dict):
            raise CatalogError("expected a table", source, where)
        check_table(row, fields, source, where + ".")
        m, eff = checked_curve(row["m"], row["efficiency"], source, where)
        curves.append(ShapeCurve(row["n"], row["k"], row["dtype"], m, eff, row.get("experts", 1),
                                 row.get("covers", "gemm"), row.get("fixed_us", 0.0) * 1e-6,
                                 row.get("floor_us", 0.0) * 1e-6, row.get("moe_tp", 1)))
    return tuple(curves)


def allreduce_curves(rows: list, source: str) -> tuple:
    """Validated [[allreduce]] entries: (GPUs, message bytes, seconds), one per GPU count."""
    out = {}
    for i, row in enumerate(rows):
        where = f"allreduce[{i}]"
        if not isinstance(row, dict):
            raise CatalogError("expected a table", source, where)
        check_table(row, ALLREDUCE_FIELDS, source, where + ".")
        if row["gpus"] in out:
            raise CatalogError(f"a second series for {row['gpus']} GPUs", source, where + ".gpus")
        xs, us = checked_curve(row["bytes"], row["us"], source, where, efficiencies=False)
        out[row["gpus"]] = (row["gpus"], xs, tuple(u * 1e-6 for u in us))
    return tuple(out.values())


def gemm_curves(table: dict) -> tuple[tuple[float, ...], dict]:
    """Validated M values and {dtype or "*": efficiencies} of a [gemm] table."""
    xs = gemm_curve(table, table["tokens_per_expert"], "tokens_per_expert")
    if any(b <= a for a, b in zip(xs, xs[1:])):
        raise CatalogError("must increase strictly", table["_source"], "gemm.tokens_per_expert")
    curves = {}
    for key in (k for k in table if k.startswith("efficiency")):
        ys = gemm_curve(table, table[key], key)
        if len(ys) != len(xs):
            raise CatalogError(f"needs as many values as tokens_per_expert ({len(xs)}), got {len(ys)}",
                               table["_source"], f"gemm.{key}")
        if max(ys) > 1:
            raise CatalogError(f"must be <= 1, got {max(ys)}", table["_source"], f"gemm.{key}")
        curves["*" if key == "efficiency" else key[len("efficiency_"):]] = ys
    return xs, curves


def gemm_curve(table: dict, values: list, key: str) -> tuple[float, ...]:
    """A non-empty list of finite numbers > 0 from the [gemm] table."""
    if not values:
        raise CatalogError("must not be empty", table["_source"], f"gemm.{key}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
            raise CatalogError(f"must be a number > 0, got {v!r}", table["_source"], f"gemm.{key}[{i}]")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Term:
    """One kind of work in a step, on the busiest GPU.

    Attributes
    ----------
    name : str
        ``attention``, ``routed_experts``, ``dispatch``, ...
    time_s : float
        Predicted time, seconds (after calibration, latency included).
    sol_s : float
        Time at datasheet peak with no latency, seconds.
    binding : str
        The resource that sets ``time_s``: one of :data:`RESOURCES`.
    flops : float
        FLOPs of the term.
    hbm_bytes : float
        Bytes read or written in HBM.
    comm : bool
        True for dispatch/combine (overlaps with compute under two micro-batches).
    """

    name: str
    time_s: float
    sol_s: float
    binding: str
    flops: float = 0.0
    hbm_bytes: float = 0.0
    comm: bool = False

    def scaled(self, k: float) -> "Term":
        """The same term repeated ``k`` times (micro-batches)."""
        return Term(self.name, self.time_s * k, self.sol_s * k, self.binding, self.flops * k,
                    self.hbm_bytes * k, self.comm)


def roofline(name: str, flops: float, hbm_bytes: float, peak_flops: float, peak_Bps: float,
             efficiency: float | tuple[float, float]) -> Term:
    """A compute/memory term: SOL from the roofline, time = SOL / efficiency.

    ``efficiency`` is one number for the whole roofline, or (flops_eff, hbm_eff) applied to each side.

    >>> t = roofline("x", flops=2e12, hbm_bytes=1e9, peak_flops=1e15, peak_Bps=1e12, efficiency=0.5)
    >>> round(t.sol_s * 1e3, 3), round(t.time_s * 1e3, 3), t.binding
    (2.0, 4.0, 'flops')

    With split efficiencies the binding side is the one that sets the time, not the SOL:

    >>> roofline("y", flops=1e12, hbm_bytes=1.1e9, peak_flops=1e15, peak_Bps=1e12, efficiency=(0.5, 1.0)).binding
    'flops'
    """
    flops_s, hbm_s = flops / peak_flops, hbm_bytes / peak_Bps
    flops_eff, hbm_eff = efficiency if isinstance(efficiency, tuple) else (efficiency, efficiency)
    flops_time, hbm_time = flops_s / flops_eff, hbm_s / hbm_eff
    binding = "flops" if flops_time >= hbm_time else "hbm"  # the side that sets the predicted time
    return Term(name, max(flops_time, hbm_time), max(flops_s, hbm_s), binding, flops, hbm_bytes)
