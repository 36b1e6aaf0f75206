"""All-to-all transports (DeepEP normal / low-latency, NCCL, one-sided NVLink) from ``topologies/transports``.

A transport says how many copies of a token travel (``copies``: one per selection, per destination GPU, or
per destination node then per GPU), whether it relays through the same-rail GPU of the destination domain
(``forward``), its per-message header bytes, the fraction of datasheet bandwidth it reaches on each link
tier (a constant, or a ``[ramp]`` curve over the bytes the busiest link carries in one phase: small
transfers reach less of the link) and its fixed cost per phase. ``sms`` is the number of SMs its kernels hold
while compute overlaps them. Every number lives in the TOML file with its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from wideep.core import units
from wideep.core.curves import checked_curve, log_interp
from wideep.core.catalog import Field, check_table, read_file, resolve, sub_table
from wideep.core.errors import CatalogError
from wideep.specs.topology import TIERS

PHASES = ("dispatch", "combine")

TRANSPORT_FIELDS = {
    "name": Field(str),
    "copies": Field(str, choices=("selection", "gpu", "node")),
    "forward": Field(str, choices=("direct", "rail")),
    "scope": Field(str, choices=("any", "domain", "nic")),
    "dispatch_header_bytes": Field(int, "nonneg"),
    "combine_header_bytes": Field(int, "nonneg"),
    "efficiency": Field(dict),
    "latency_us": Field(dict),
    "ramp": Field(dict, required=False),
    "sms": Field(int, "nonneg", required=False),
    "scale_out_fixed_share": Field(float, "positive", required=False),
}
EFFICIENCY_FIELDS = {t: Field(float, "positive") for t in TIERS}
LATENCY_FIELDS = {p: Field((float, dict)) for p in PHASES}
TIER_LATENCY_FIELDS = {t: Field(float, "nonneg", required=False) for t in TIERS}


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
    scope : str
        ``any`` (shortest paths over NVLink and the NICs), ``domain`` (one NVLink domain only) or ``nic``
        (every pair through the NICs, in-node pairs too: pure-RDMA kernels; they share each GPU's NIC link
        with the cross-node pairs, :func:`wideep.specs.topology.nic_fabric`).
    efficiency : dict
        Tier name -> achieved fraction of datasheet bandwidth (0, 1].
    latency_s : dict
        Phase name -> {tier: fixed cost, seconds}; a phase pays the largest of the tiers it uses.
    ramp : dict
        Phase -> tier -> (bytes, efficiencies): achieved fraction of the link by the bytes it carries in
        one phase (tiers without a curve use ``efficiency``).
    scale_out_fixed_share : float
        0: the scale-out fixed cost is a constant. Else the share of the EP group's GPUs across the scale-out
        tier in the series that measured it: the part above the NVLink fixed cost grows in proportion to that
        share (DeepEP's low-latency kernels signal a count to every expert, remote ones through the NIC).
    """

    id: str
    name: str
    copies: str
    forward: str
    scope: str
    header_bytes: dict[str, int]
    efficiency: dict[str, float]
    latency_s: dict[str, float]
    ramp: dict = None
    sms: int = 0
    scale_out_fixed_share: float = 0.0

    def latency(self, phase: str, tiers: set, scale_out_share: float | None = None) -> float:
        """Fixed cost of ``phase`` when it uses links of ``tiers``, seconds; ``scale_out_share``: the share of
        GPU pairs of the EP group across the scale-out tier (None: the one the file's cost was measured at)."""
        fixed = {t: self.latency_s[phase].get(t, 0.0) for t in tiers}
        if "scale_out" in fixed and self.scale_out_fixed_share and scale_out_share is not None:
            base = self.latency_s[phase].get("nvlink", 0.0)
            fixed["scale_out"] = base + (fixed["scale_out"] - base) * scale_out_share / self.scale_out_fixed_share
        return max(fixed.values(), default=0.0)

    def link_efficiency(self, phase: str, tiers: np.ndarray, link_bytes: np.ndarray,
                        masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Achieved / datasheet bandwidth of links of ``tiers`` carrying ``link_bytes`` (same shape or broadcast).

        Interpolated in log(bytes) on the ramp, held flat outside it. ``masks``, optional: {tier: tiers == tier}
        for every tier in ``tiers``, sorted by name, when the caller has them.
        """
        tiers, link_bytes = np.broadcast_arrays(np.asarray(tiers), np.asarray(link_bytes, dtype=float))
        if masks is None:
            masks = {str(t): tiers == t for t in np.unique(tiers)}
        out = np.empty(link_bytes.shape)
        for tier, on in masks.items():
            on = np.broadcast_to(on, link_bytes.shape)
            curve = (self.ramp or {}).get(phase, {}).get(tier)
            out[on] = log_interp(link_bytes[on], *curve) if curve else self.efficiency[tier]
        return out


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
    latency = {}
    for p, v in lat.items():
        if isinstance(v, dict):
            check_table(v, TIER_LATENCY_FIELDS, path_str, f"latency_us.{p}.")
        elif not 0 <= v < float("inf"):
            raise CatalogError(f"must be >= 0, got {v}", path_str, f"latency_us.{p}")
        latency[p] = {t: (v[t] if isinstance(v, dict) else v) * units.us for t in TIERS
                      if not isinstance(v, dict) or t in v}
    return Transport(
        id=path.stem, name=data["name"], copies=data["copies"], forward=data["forward"], scope=data["scope"],
        header_bytes={p: data[f"{p}_header_bytes"] for p in PHASES},
        efficiency={t: float(v) for t, v in eff.items()},
        latency_s=latency, ramp=load_ramp(data.get("ramp"), path_str), sms=data.get("sms", 0),
        scale_out_fixed_share=checked_share(data.get("scale_out_fixed_share", 0.0), path_str),
    )


def checked_share(share: float, source: str) -> float:
    """``scale_out_fixed_share`` in [0, 1] (0: the scale-out fixed cost does not scale)."""
    if not 0 <= share <= 1:
        raise CatalogError(f"must lie in [0, 1], got {share}", source, "scale_out_fixed_share")
    return share


def load_ramp(table: dict | None, source: str) -> dict:
    """The optional [ramp.<phase>.<tier>] tables: ``bytes`` and ``efficiency`` in (0, 1] at those sizes."""
    curves: dict = {}
    for phase, tiers in (table or {}).items():
        if phase not in PHASES or not isinstance(tiers, dict):
            raise CatalogError(f"expected a table per phase ({', '.join(PHASES)})", source, f"ramp.{phase}")
        for tier, curve in tiers.items():
            where = f"ramp.{phase}.{tier}"
            if tier not in TIERS:
                raise CatalogError(f"unknown tier (choose {', '.join(TIERS)})", source, where)
            if not isinstance(curve, dict) or set(curve) != {"bytes", "efficiency"}:
                raise CatalogError("needs exactly the lists 'bytes' and 'efficiency'", source, where)
            curves.setdefault(phase, {})[tier] = checked_curve(curve["bytes"], curve["efficiency"], source, where)
    return curves
