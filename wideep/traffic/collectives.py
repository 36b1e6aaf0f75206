"""Tensor-parallel all-reduce inside one NVLink domain, from ``topologies/collectives``.

An all-reduce of ``message_bytes`` over ``gpus`` GPUs moves 2 (gpus - 1) / gpus x message_bytes over each GPU's
NVLink port (reduce-scatter then all-gather: nccl-tests' "bus bytes"). Time = the collective's fixed cost +
bus bytes / (per-GPU NVLink bandwidth x achieved fraction), the fraction a ``[ramp]`` curve over the chunk
each GPU exchanges with one peer, message / gpus (small chunks reach little of the link), held flat beyond it. Every number lives in the TOML with its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from wideep.core import units
from wideep.core.catalog import Field, check_table, read_file, resolve, sub_table
from wideep.core.curves import checked_curve, log_interp
from wideep.core.errors import CatalogError

COLLECTIVE_FIELDS = {"name": Field(str), "latency_us": Field(float, "nonneg"), "efficiency": Field(float, "positive"),
                     "ramp": Field(dict)}
DEFAULT_ALLREDUCE = "allreduce"


@dataclass(frozen=True)
class Collective:
    """One all-reduce implementation: fixed cost (s), large-message efficiency and ramp (chunk per peer, bytes ->
    fraction)."""

    id: str
    name: str
    latency_s: float
    efficiency: float
    ramp: tuple[tuple[float, ...], tuple[float, ...]]

    @staticmethod
    def bus_bytes(message_bytes: float, gpus: int) -> float:
        """Bytes each GPU's link carries: 2 (gpus - 1) / gpus x message.

        >>> Collective.bus_bytes(1000.0, 8)
        1750.0
        """
        return 2.0 * (gpus - 1) / gpus * message_bytes if gpus > 1 else 0.0

    def link_efficiency(self, chunk_bytes: float) -> float:
        """Achieved fraction of the link at ``chunk_bytes`` per peer (ramp, then the large-message value)."""
        if chunk_bytes > self.ramp[0][-1]:
            return self.efficiency
        return float(log_interp(chunk_bytes, *self.ramp))

    def time_s(self, message_bytes: float, gpus: int, link_Bps: float) -> tuple[float, float]:
        """(time, speed of light) of one all-reduce, seconds; 0 on one GPU."""
        bus = self.bus_bytes(message_bytes, gpus)
        if bus <= 0:
            return 0.0, 0.0
        return self.latency_s + bus / (link_Bps * self.link_efficiency(message_bytes / gpus)), bus / link_Bps


def load_collective(name: str = DEFAULT_ALLREDUCE) -> Collective:
    """All-reduce from a catalog id (``allreduce``) or a TOML path."""
    return _load(str(resolve("collectives", name)))


@lru_cache(maxsize=None)
def _load(path_str: str) -> Collective:
    data = check_table(read_file(Path(path_str)), COLLECTIVE_FIELDS, path_str)
    ramp = sub_table(data, "ramp", path_str)
    if set(ramp) != {"bytes", "efficiency"}:
        raise CatalogError("needs exactly the lists 'bytes' and 'efficiency'", path_str, "ramp")
    curve = checked_curve(ramp["bytes"], ramp["efficiency"], path_str, "ramp")
    checked_curve([1.0], [data["efficiency"]], path_str, "efficiency")  # in (0, 1]
    return Collective(Path(path_str).stem, data["name"], data["latency_us"] * units.us, data["efficiency"], curve)
