"""GPU and system specifications, built from the catalog files under ``topologies/``.

All fields are SI: bytes, bytes/s (per GPU per direction), FLOP/s (dense), seconds, watts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from wideep.core import units
from wideep.core.catalog import Field, check_table, read_file, resolve, sub_table
from wideep.core.errors import CatalogError, InputError, NotFoundError

GPU_FIELDS = {
    "name": Field(str),
    "arch": Field(str, choices=("hopper", "blackwell")),
    "bf16_TFLOPs": Field(float, "positive"),
    "fp8_TFLOPs": Field(float, "positive"),
    "fp4_TFLOPs": Field(float, "positive", required=False),
    "hbm_GB": Field(float, "positive"),
    "hbm_usable_GB": Field(float, "positive"),
    "hbm_TBps": Field(float, "positive"),
    "nvlink_GBps": Field(float, "positive"),
    "nic": Field(str),
    "nic_Gbps": Field(float, "positive"),
    "tdp_W": Field(float, "positive"),
    "all_in_kW": Field(float, "positive"),
    "sm_count": Field(int, "positive", required=False),
    "price_usd_per_gpu_hour": Field(dict),
}

SCALE_UP_FIELDS = {
    "gpus_per_domain": Field(int, "positive"),
    "switching": Field(str, choices=("nvswitch",)),
    "switch_chips": Field(int, "positive"),
    "bw_GBps": Field(float, "positive"),
    "latency_us": Field(float, "nonneg"),
}

SCALE_OUT_FIELDS = {
    "nic": Field(str),
    "nic_Gbps": Field(float, "positive"),
    "nics_per_gpu": Field(int, "positive"),
    "rails": Field(int, "positive"),
    "leaf_downlinks": Field(int, "positive"),
    "oversubscription": Field(float, "positive"),
    "spines": Field(int, "positive"),
    "latency_us": Field(float, "nonneg"),
}


@dataclass(frozen=True)
class GPU:
    """One accelerator: dense FLOP/s per dtype, HBM, links, power and price scenarios."""

    id: str
    name: str
    arch: str
    flops_per_s: dict[str, float]  # dtype name -> dense FLOP/s
    hbm_bytes: float
    hbm_usable_bytes: float
    hbm_Bps: float
    nvlink_Bps: float
    nic: str
    nic_Bps: float
    tdp_W: float
    all_in_W: float
    price_usd_per_gpu_hour: dict[str, float]  # scenario -> $/GPU-hour; the first is the default
    sm_count: int = 0  # streaming multiprocessors (0: unknown)

    def flops(self, dtype_name: str) -> float:
        """Dense FLOP/s for a dtype; a dtype the chip lacks (nvfp4 on Hopper) raises InputError."""
        if dtype_name not in self.flops_per_s:
            raise InputError(f"{self.name} has no {dtype_name} tensor cores "
                             f"(has {', '.join(self.flops_per_s)})", "--dtype")
        return self.flops_per_s[dtype_name]

    def compute_dtype(self, dtype_name: str) -> str:
        """Format a GEMM with ``dtype_name`` weights runs in on this chip: its own where the tensor cores
        exist (MXFP4 on Blackwell's FP4 cores), else its weight-only fallback (MXFP4 and INT4 dequantised to
        bf16 on Hopper), else "" (NVFP4 on Hopper: not runnable)."""
        dt = units.DTYPES.get(dtype_name)
        if dt is None:
            return ""
        if dt.tensor_cores in self.flops_per_s:
            return dt.tensor_cores
        return dt.weight_only_compute if dt.weight_only_compute in self.flops_per_s else ""

    def summary(self) -> dict:
        """Datasheet figures in the catalog's human units, for display and JSON."""
        return {"id": self.id, "name": self.name, "arch": self.arch,
                "dense_TFLOPs": {k: v / units.TFLOPs for k, v in self.flops_per_s.items()},
                "hbm_GB": self.hbm_bytes / units.GB, "hbm_usable_GB": self.hbm_usable_bytes / units.GB,
                "hbm_TBps": self.hbm_Bps / units.TBps, "nvlink_GBps": self.nvlink_Bps / units.GBps,
                "nic": self.nic, "nic_Gbps": self.nic_Bps / units.Gbps, "tdp_W": self.tdp_W,
                "all_in_kW": self.all_in_W / units.kW, "price_usd_per_gpu_hour": self.price_usd_per_gpu_hour}

    def price(self, scenario: str | None = None) -> tuple[str, float]:
        """(scenario name, $/GPU-hour); None picks the catalog's first scenario."""
        if scenario is None:
            return next(iter(self.price_usd_per_gpu_hour.items()))
        if scenario not in self.price_usd_per_gpu_hour:
            raise InputError(f"{self.id} has no price scenario {scenario!r} "
                             f"(has {', '.join(self.price_usd_per_gpu_hour)})", "--price-scenario")
        return scenario, self.price_usd_per_gpu_hour[scenario]


@dataclass(frozen=True)
class ScaleUp:
    """The NVLink domain: GPUs per domain, switch chips, per-GPU bandwidth per direction, latency."""

    gpus_per_domain: int
    switching: str
    switch_chips: int
    bw_Bps: float
    latency_s: float


@dataclass(frozen=True)
class ScaleOut:
    """The NIC fabric: a rail-optimised two-level fat tree."""

    nic: str
    nic_Bps: float  # per NIC per direction
    nics_per_gpu: int
    rails: int
    leaf_downlinks: int
    oversubscription: float
    spines: int
    latency_s: float

    @property
    def per_gpu_Bps(self) -> float:
        return self.nic_Bps * self.nics_per_gpu


@dataclass(frozen=True)
class System:
    """A building block: GPU type, its scale-up domain and the scale-out fabric joining domains."""

    id: str
    name: str
    gpu: GPU
    scale_up: ScaleUp
    scale_out: ScaleOut

    def summary(self) -> dict:
        """One catalog row: id, name, GPU, GPUs per domain, NVLink GB/s and NIC Gb/s per GPU (one direction)."""
        return {"id": self.id, "name": self.name, "gpu": self.gpu.id,
                "gpus_per_domain": self.scale_up.gpus_per_domain, "nvlink_GBps": self.scale_up.bw_Bps / units.GBps,
                "nic_Gbps": self.scale_out.per_gpu_Bps / units.Gbps}


def load_gpu(name: str) -> GPU:
    """GPU from a catalog id (``h100-sxm``) or a TOML path."""
    return _load_gpu(str(resolve("gpus", name)))


@lru_cache(maxsize=None)
def _load_gpu(path_str: str) -> GPU:
    path = Path(path_str)
    data = check_table(read_file(path), GPU_FIELDS, path_str)
    prices = data["price_usd_per_gpu_hour"]
    if not prices:
        raise CatalogError("needs at least one scenario", path_str, "price_usd_per_gpu_hour")
    check_table(prices, {k: Field(float, "positive") for k in prices}, path_str, "price_usd_per_gpu_hour.")
    flops = {"bf16": data["bf16_TFLOPs"] * units.TFLOPs, "fp8": data["fp8_TFLOPs"] * units.TFLOPs}
    if "fp4_TFLOPs" in data:
        flops["nvfp4"] = data["fp4_TFLOPs"] * units.TFLOPs
    if data["hbm_usable_GB"] > data["hbm_GB"] * units.GiB / units.GB:
        raise CatalogError(f"exceeds hbm_GB ({data['hbm_GB']}, read as GiB as marketing does)", path_str,
                           "hbm_usable_GB")
    return GPU(
        id=path.stem, name=data["name"], arch=data["arch"], flops_per_s=flops,
        hbm_bytes=data["hbm_GB"] * units.GB, hbm_usable_bytes=data["hbm_usable_GB"] * units.GB,
        hbm_Bps=data["hbm_TBps"] * units.TBps, nvlink_Bps=data["nvlink_GBps"] * units.GBps,
        nic=data["nic"], nic_Bps=data["nic_Gbps"] * units.Gbps, tdp_W=data["tdp_W"] * units.W,
        all_in_W=data["all_in_kW"] * units.kW, price_usd_per_gpu_hour=dict(prices), sm_count=data.get("sm_count", 0),
    )


def load_system(name: str) -> System:
    """System from a catalog id (``hgx-h100``) or a TOML path with [scale_up] and [scale_out]."""
    return _load_system(str(resolve("systems", name)))


@lru_cache(maxsize=None)
def _load_system(path_str: str) -> System:
    path = Path(path_str)
    data = read_file(path)
    check_table(data, {"name": Field(str), "gpu": Field(str), "scale_up": Field(dict),
                       "scale_out": Field(dict)}, path_str)
    up = check_table(sub_table(data, "scale_up", path_str), SCALE_UP_FIELDS, path_str, "scale_up.")
    out = check_table(sub_table(data, "scale_out", path_str), SCALE_OUT_FIELDS, path_str, "scale_out.")
    gpu = gpu_reference(data["gpu"], path_str)
    if up["bw_GBps"] * units.GBps > gpu.nvlink_Bps * (1 + 1e-9):
        raise CatalogError(f"{up['bw_GBps']} GB/s exceeds the NVLink bandwidth of {gpu.id} "
                           f"({gpu.nvlink_Bps / units.GBps:g} GB/s)", path_str, "scale_up.bw_GBps")
    if up["gpus_per_domain"] % out["rails"]:
        raise CatalogError(f"must divide scale_up.gpus_per_domain ({up['gpus_per_domain']})",
                           path_str, "scale_out.rails")
    return System(
        id=path.stem, name=data["name"], gpu=gpu,
        scale_up=ScaleUp(up["gpus_per_domain"], up["switching"], up["switch_chips"],
                         up["bw_GBps"] * units.GBps, up["latency_us"] * units.us),
        scale_out=ScaleOut(out["nic"], out["nic_Gbps"] * units.Gbps, out["nics_per_gpu"], out["rails"],
                           out["leaf_downlinks"], out["oversubscription"], out["spines"],
                           out["latency_us"] * units.us),
    )


def gpu_reference(name: str, source: str) -> GPU:
    """GPU named by a data file's ``gpu`` field; an unknown id names that file and field."""
    try:
        return load_gpu(name)
    except NotFoundError as exc:
        raise CatalogError(exc.problem, source, "gpu") from None
