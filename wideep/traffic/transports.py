"""All-to-all transports (DeepEP normal / low-latency, NCCL, one-sided NVLink) from ``topologies/transports``.

A transport says how many copies of a token travel (``copies``: one per selection, per destination GPU, or
per destination node then per GPU), whether it relays through the same-rail GPU of the destination domain
(``forward``), its per-message header bytes, the fraction of datasheet bandwidth it reaches on each link
tier and its fixed cost per phase. Every number lives in the TOML file with its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from wideep.core import units
from wideep.core.catalog import Field, check_table, read_file, resolve, sub_table
from wideep.core.errors import CatalogError
from wideep.specs.topology import TIERS

PHASES = ("dispatch", "combine")

TRANSPORT_FIELDS = {
    "name": Field(str),
    "copies": Field(str, choices=("selection", "gpu", "node")),
    "forward": Field(str, choices=("direct", "rail")),
    "scope": Field(str, choices=("any", "domain")),
    "dispatch_header_bytes": Field(int, "nonneg"),
    "combine_header_bytes": Field(int, "nonneg"),
    "efficiency": Field(dict),
    "latency_us": Field(dict),
}
EFFICIENCY_FIELDS = {t: Field(float, "positive") for t in TIERS}
LATENCY_FIELDS = {p: Field(float, "nonneg") for p in PHASES}


@dataclass(frozen=True)
class Transport:
    """How one all-to-all implementation moves tokens; SI units.

    Attributes
    ----------
    copies : str
        ``selection`` (one message per token-expert selection), ``gpu`` (one per token and destination
        GPU) or ``node`` (one per token and destination domain over scale-out, then one per GPU).
    forward : str
        ``direct`` or ``rail`` (scale-out to the destination domain's GPU with the source's local index,
        then NVLink to the destination GPUs).
    efficiency : dict
        Tier name -> achieved fraction of datasheet bandwidth (0, 1].
    latency_s : dict
        Phase name -> fixed cost per phase, seconds.
    """

    id: str
    name: str
    copies: str
    forward: str
    scope: str
    header_bytes: dict[str, int]
    efficiency: dict[str, float]
    latency_s: dict[str, float]


def load_transport(name: str) -> Transport:
    """Transport from a catalog id (``deepep-ll``) or a TOML path."""
    return _load(str(resolve("transports", name)))


@lru_cache(maxsize=None)
def _load(path_str: str) -> Transport:
    path = Path(path_str)
    data = check_table(read_file(path), TRANSPORT_FIELDS, path_str)
    eff = check_table(sub_table(data, "efficiency", path_str), EFFICIENCY_FIELDS, path_str, "efficiency.")
    for tier, value in eff.items():
        if value > 1:
            raise CatalogError(f"must be <= 1, got {value}", path_str, f"efficiency.{tier}")
    lat = check_table(sub_table(data, "latency_us", path_str), LATENCY_FIELDS, path_str, "latency_us.")
    return Transport(
        id=path.stem, name=data["name"], copies=data["copies"], forward=data["forward"], scope=data["scope"],
        header_bytes={p: data[f"{p}_header_bytes"] for p in PHASES},
        efficiency={t: float(v) for t, v in eff.items()},
        latency_s={p: v * units.us for p, v in lat.items()},
    )
