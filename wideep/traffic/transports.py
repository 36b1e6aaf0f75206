"""All-to-all transports (DeepEP normal / low-latency, NCCL, one-sided NVLink) from ``topologies/transports``.

A transport says how many copies of a token travel (``copies``: one per selection, per destination GPU,
per destination node then per GPU, or to every GPU of the group: an all-gather, whose combine is the
reduce-scatter back), whether it relays through the same-rail GPU of the destination domain
(``forward``), its per-message header bytes, the fraction of datasheet bandwidth it reaches on each link
tier (a constant, or a ``[ramp]`` curve over the bytes the busiest link carries in one phase: small
transfers reach less of the link; with ``ramp_bytes`` the curve is read at the busiest GPU pair's bytes
(``pair``) or at the whole buffer's, the pair's times the group's GPUs (``buffer``), for a library whose
protocol changes at one of those sizes, as NCCL's does) and its fixed cost per phase, which may grow with the expert
slots (``[per_expert_us]``), step up once the kernel packs expert slots into warp groups (``[packed_us]``),
grow with the hidden size (``[per_hidden_us]``), with the GPUs each GPU sends to (``[per_peer_us]``) or with
each doubling of the EP group (``[per_doubling_us]``: every rank waits for completion flags from all ranks,
and the wait for the last of N grows with log2 N). Kernels
that send from a fixed set of blocks (DeepEP's: one per expert slot, or the SMs they hold) are also limited
on the send side: ``[issue_us]`` per round of one token per block, ``[block_GBps]`` per block
(:meth:`Transport.send_time`); across domains a relaying kernel's blocks move the copies of both of its stages
at ``[relay_GBps]`` per block; a combine whose blocks reduce each token's copies into its output writes those
outputs at ``[reduce_GBps]`` per block. A library that streams each GPU pair through that pair's own channels
(NCCL) adds the busiest NVLink pair's bytes at ``[peer_GBps]`` to the link time (:meth:`Transport.peer_time`).
``sms`` is the number of SMs the kernels hold while compute overlaps them. ``[gpu.<name>]`` tables hold
constants measured on other GPUs (``gpus`` lists the GPU ids they serve); the top level serves every other
GPU. Every number lives in the TOML file with its source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from wideep.core import units
from wideep.core.curves import checked_curve, log_interp
from wideep.core.catalog import Field, check_table, list_ids, read_file, resolve
from wideep.core.errors import CatalogError
from wideep.specs.topology import TIERS

PHASES = ("dispatch", "combine")

TRANSPORT_FIELDS = {
    "name": Field(str),
    "copies": Field(str, choices=("selection", "gpu", "node", "all")),
    "forward": Field(str, choices=("direct", "rail")),
    "scope": Field(str, choices=("any", "domain", "nic")),
    "dispatch_header_bytes": Field(int, "nonneg"),
    "combine_header_bytes": Field(int, "nonneg"),
    "efficiency": Field(dict),
    "latency_us": Field(dict),
    "ramp": Field(dict, required=False),
    "sms": Field(int, "nonneg", required=False),
    "scale_out_fixed_share": Field(float, "positive", required=False),
    "gpu": Field(dict, required=False),
}
# File table -> (name in SI units, scale, check): the kernels' fixed-cost growth and send-side limits.
KERNEL_TABLES = {"per_expert_us": ("per_expert_s", units.us, "nonneg"), "packed_us": ("packed_s", units.us, "nonneg"),
                 "per_hidden_us": ("per_hidden_s", units.us, "nonneg"), "issue_us": ("issue_s", units.us, "nonneg"),
                 "block_GBps": ("block_Bps", units.GBps, "positive"), "per_peer_us": ("per_peer_s", units.us, "nonneg"),
                 "per_doubling_us": ("per_doubling_s", units.us, "nonneg"),
                 "peer_GBps": ("peer_Bps", units.GBps, "positive"), "relay_GBps": ("relay_Bps", units.GBps, "positive"),
                 "reduce_GBps": ("reduce_Bps", units.GBps, "positive")}
TRANSPORT_FIELDS |= {k: Field(dict, required=False) for k in KERNEL_TABLES}
CONSTANT_TABLES = ("efficiency", "latency_us", "ramp", *KERNEL_TABLES)
RAMP_BYTES = {"ramp_bytes": Field(str, choices=("link", "pair", "buffer"), required=False)}
TRANSPORT_FIELDS |= RAMP_BYTES
VARIANT_FIELDS = {"gpus": Field(list), "fitted_on": Field(str)} | RAMP_BYTES | {
    k: Field(dict, required=False) for k in CONSTANT_TABLES}
TIER_LATENCY_FIELDS = {t: Field(float, "nonneg", required=False) for t in TIERS}


@dataclass(frozen=True)
class Transport:
    """How one all-to-all implementation moves tokens; SI units.

    Attributes
    ----------
    copies : str
        ``selection`` (one message per token-expert selection), ``gpu`` (one per token and destination
        GPU), ``node`` (one per token and destination domain over scale-out, then one per GPU) or ``all``
        (every token to every GPU of the group whatever its routing: an all-gather, and the reduce-scatter of
        the experts' partial outputs back).
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
    ramp_bytes : str
        What the ramp's bytes count: ``link`` (the link's own bytes), ``pair`` (the busiest GPU pair's) or
        ``buffer`` (the pair's times the EP group's GPUs: an all-gather's whole buffer).
    scale_out_fixed_share : float
        0: the scale-out fixed cost is a constant. Else the share of the EP group's GPUs across the scale-out
        tier in the series that measured it: the part above the NVLink fixed cost grows in proportion to that
        share (DeepEP's low-latency kernels signal a count to every expert, remote ones through the NIC).
    sms : int
        SMs the kernels hold while compute overlaps them; kernels that hold SMs also send from them (0: the
        low-latency kernels' grid of one block per expert slot, :meth:`send_time`).
    kernel : dict
        {name: {phase: value}} in SI units (:data:`KERNEL_TABLES`): fixed cost per expert slot
        (``per_expert_s``), once the slots outnumber the SMs (``packed_s``), per hidden element
        (``per_hidden_s``), per GPU sent to (``per_peer_s``) and per doubling of the EP group
        (``per_doubling_s``), seconds; seconds per round of one token
        per block (``issue_s``); bytes per second per block (``block_Bps``; ``relay_Bps`` when a relaying
        kernel spans domains; ``reduce_Bps`` for the combine's reduced outputs) and per GPU pair's stream
        (``peer_Bps``).
    variants : tuple
        (GPU ids, table name, constants) measured on other GPUs; :meth:`for_gpu` picks one.
    table : str
        The ``[gpu.<name>]`` table these constants came from ("" the file's top level).
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
    ramp_bytes: str = "link"
    sms: int = 0
    scale_out_fixed_share: float = 0.0
    kernel: dict = None
    variants: tuple = ()
    table: str = ""

    def for_gpu(self, gpu_id: str) -> "Transport":
        """The constants measured for ``gpu_id`` (a ``[gpu.<name>]`` table listing it), else these."""
        for ids, table, constants in self.variants:
            if gpu_id in ids:
                return replace(self, **constants, variants=(), table=table)
        return self

    @property
    def source(self) -> str:
        """Where the constants came from: ``transports/<id>.toml``, with ``[gpu.<name>]`` when a GPU's table."""
        return f"transports/{self.id}.toml" + (f" [gpu.{self.table}]" if self.table else "")

    def latency(self, phase: str, tiers: set, scale_out_share: float | None = None, n_experts: int = 0,
                device_sms: int = 0, hidden: int = 0, peers: int = 0, group: int = 1) -> float:
        """Fixed cost of ``phase`` when it uses links of ``tiers``, seconds; ``scale_out_share``: the share of
        GPU pairs of the EP group across the scale-out tier (None: the one the file's cost was measured at);
        ``n_experts``: the EP group's expert slots; ``device_sms``: the GPU's SMs; ``hidden``: the model's;
        ``peers``: the most GPUs one GPU sends to; ``group``: the EP group's GPUs."""
        fixed = {t: self.latency_s[phase].get(t, 0.0) for t in tiers}
        if not fixed:
            return 0.0
        if "scale_out" in fixed and self.scale_out_fixed_share and scale_out_share is not None:
            base = self.latency_s[phase].get("nvlink", 0.0)
            fixed["scale_out"] = base + (fixed["scale_out"] - base) * scale_out_share / self.scale_out_fixed_share
        return (max(fixed.values()) + self.constant("per_expert_s", phase) * n_experts
                + self.constant("packed_s", phase) * (n_experts > device_sms > 0)
                + self.constant("per_hidden_s", phase) * hidden + self.constant("per_peer_s", phase) * peers
                + self.constant("per_doubling_s", phase) * math.log2(max(group, 1)))

    def constant(self, name: str, phase: str) -> float:
        """One phase's kernel constant by its SI name (:data:`KERNEL_TABLES`), 0 when the file has none."""
        return (self.kernel or {}).get(name, {}).get(phase, 0.0)

    def send_time(self, phase: str, tokens_per_gpu: float, send_bytes: np.ndarray, slots: int,
                  device_sms: int, relaying: bool = False, reduced_bytes: np.ndarray | float = 0.0) -> np.ndarray:
        """Seconds the kernel's blocks need to send one GPU's tokens, 0 where the file models no such limit.

        A transport that holds SMs (``sms``, DeepEP's normal kernels) sends with them; DeepEP's low-latency
        kernels launch one block per expert slot, packing slots into warp groups when they outnumber the SMs:
        ceil(E / ceil(E / SMs)) blocks for E ``slots``. Each block handles one token at a time (a round of one
        token per block takes ``issue_s``) and moves its bytes at ``block_Bps``; the two add. Of
        ``send_bytes``, the ``reduced_bytes`` (the combine's outputs, one per own token) go at ``reduce_Bps``
        when the file has it (else at ``block_Bps``): the blocks read a token's copies together, so its
        reduce takes time by the hidden size more than by the copies. ``relaying`` (a ``node`` transport whose
        group spans domains): the blocks move ``send_bytes`` at ``relay_Bps`` alone, when the file has it.
        ``send_bytes``: the bytes the busiest GPU's kernels move (:func:`wideep.traffic.a2a.busiest_sender`),
        any shape.
        """
        blocks = self.sms or expert_blocks(slots, device_sms)
        zeros = np.zeros_like(send_bytes, dtype=float)
        if not blocks:
            return zeros
        relay = self.constant("relay_Bps", phase) if relaying else 0.0
        if relay:
            return send_bytes / (blocks * relay)
        rate = self.constant("block_Bps", phase)
        reduce = self.constant("reduce_Bps", phase) or rate
        by_rate = ((send_bytes - reduced_bytes) / rate + reduced_bytes / reduce) / blocks if rate else zeros
        return by_rate + self.constant("issue_s", phase) * np.ceil(max(tokens_per_gpu, 0) / blocks)

    @property
    def counts_peers(self) -> bool:
        """Whether the file has a cost per GPU sent to, a pair's stream rate or a ramp read at the pair's
        bytes (NCCL)."""
        return self.ramp_bytes != "link" or any(
            self.constant(name, p) for name in ("per_peer_s", "peer_Bps") for p in PHASES)

    def peer_time(self, phase: str, peer_bytes: np.ndarray) -> np.ndarray:
        """Seconds the busiest NVLink pair's stream takes for its ``peer_bytes`` (any shape) beyond the link
        time, 0 where the file models no such stream: NCCL moves each pair's bytes through that pair's own
        channels, so one or two peers cannot fill a GPU's NVLink however fast the link is."""
        rate = self.constant("peer_Bps", phase)
        return np.asarray(peer_bytes, dtype=float) / rate if rate else np.zeros_like(peer_bytes, dtype=float)

    def ramp_read_at(self, link_bytes, pair_bytes, ep_size: int):
        """The bytes the ramp is read at (:attr:`ramp_bytes`): the link's own, the busiest pair's, or that pair's
        times the EP group's GPUs (the whole buffer); numbers or broadcastable arrays."""
        return {"link": link_bytes, "pair": pair_bytes, "buffer": pair_bytes * ep_size}[self.ramp_bytes]

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


def expert_blocks(slots: int, device_sms: int) -> int:
    """DeepEP low-latency grid: one block per expert slot, slots packed into warp groups past the SM count,
    ceil(E / ceil(E / SMs)) blocks (0 when either count is unknown)."""
    return -(-slots // -(-slots // device_sms)) if slots and device_sms else 0


def load_transport(name: str) -> Transport:
    """Transport from a catalog id (``deepep-ll``) or a TOML path."""
    return _load(str(resolve("transports", name)))


@lru_cache(maxsize=None)
def _load(path_str: str) -> Transport:
    path = Path(path_str)
    data = check_table(read_file(path), TRANSPORT_FIELDS, path_str)
    if data["copies"] == "all" and data["forward"] != "direct":
        raise CatalogError("an all-gather (copies = \"all\") sends straight to every GPU: must be \"direct\"",
                           path_str, "forward")
    base = Transport(
        id=path.stem, name=data["name"], copies=data["copies"], forward=data["forward"], scope=data["scope"],
        header_bytes={p: data[f"{p}_header_bytes"] for p in PHASES}, sms=data.get("sms", 0),
        scale_out_fixed_share=checked_share(data.get("scale_out_fixed_share", 0.0), path_str),
        **constants(data, path_str, ""))
    return replace(base, variants=gpu_variants(data.get("gpu"), path_str, base))


def gpu_variants(tables: dict | None, source: str, base: Transport) -> tuple:
    """The ``[gpu.<name>]`` tables: (GPU ids, name, constants laid over ``base``'s) each; every id a catalog
    GPU, served by one table only."""
    variants, served, known = [], set(), list_ids("gpus") if tables else []
    for name, table in (tables or {}).items():
        where = f"gpu.{name}."
        if not isinstance(table, dict):
            raise CatalogError("expected a table", source, f"gpu.{name}")
        table = check_table(table, VARIANT_FIELDS, source, where)
        ids = table["gpus"]
        if not ids or not all(isinstance(g, str) for g in ids):
            raise CatalogError("expected a list of GPU ids", source, f"{where}gpus")
        for gpu in ids:
            if gpu not in known:
                raise CatalogError(f"unknown GPU {gpu!r} (choose {', '.join(known)})", source, f"{where}gpus")
            if gpu in served:
                raise CatalogError(f"{gpu} is served by another [gpu] table too", source, f"{where}gpus")
            served.add(gpu)
        variants.append((tuple(ids), name, constants(table, source, where, base)))
    return tuple(variants)


def constants(data: dict, source: str, where: str, base: Transport | None = None) -> dict:
    """The measured constants of a transport file's top level (``base`` None: efficiency and latency
    required) or of one ``[gpu.<name>]`` table, laid tier by tier and phase by phase over ``base``'s."""
    def table(key: str) -> dict:
        value = data.get(key)
        if value is None and base is None and key in ("efficiency", "latency_us"):
            raise CatalogError("missing required table", source, where + key)
        if value is not None and not isinstance(value, dict):
            raise CatalogError(f"expected a table, got {type(value).__name__}", source, where + key)
        return value or {}

    ramp = {p: dict(tiers) for p, tiers in (base.ramp if base else {}).items()}
    for p, tiers in load_ramp(data.get("ramp"), source, where).items():
        ramp.setdefault(p, {}).update(tiers)
    return {"efficiency": efficiencies(table("efficiency"), source, where, base),
            "latency_s": latencies(table("latency_us"), source, where, base), "ramp": ramp,
            "ramp_bytes": data.get("ramp_bytes", base.ramp_bytes if base else "link"),
            "kernel": kernel_constants(table, source, where, base)}


def efficiencies(table: dict, source: str, where: str, base: Transport | None) -> dict[str, float]:
    """``[efficiency]``: tier -> fraction of datasheet bandwidth in (0, 1] (both tiers at the top level)."""
    eff = check_table(table, {t: Field(float, "positive", required=base is None) for t in TIERS}, source,
                      f"{where}efficiency.")
    for tier, value in eff.items():
        if value > 1:
            raise CatalogError(f"must be <= 1, got {value}", source, f"{where}efficiency.{tier}")
    return ({**base.efficiency} if base else {}) | {t: float(v) for t, v in eff.items()}


def latencies(table: dict, source: str, where: str, base: Transport | None) -> dict[str, dict[str, float]]:
    """``[latency_us]``: phase -> {tier: fixed cost, s}. A GPU table that gives a phase's NVLink cost but not
    its scale-out one keeps the top level's scale-out premium over NVLink (the NIC's part is not the GPU's)."""
    fields = {p: Field((float, dict), required=base is None) for p in PHASES}
    out = {p: dict(base.latency_s[p]) for p in PHASES} if base else {}
    for p, v in check_table(table, fields, source, f"{where}latency_us.").items():
        if isinstance(v, dict):
            check_table(v, TIER_LATENCY_FIELDS, source, f"{where}latency_us.{p}.")
        elif not 0 <= v < float("inf"):
            raise CatalogError(f"must be >= 0, got {v}", source, f"{where}latency_us.{p}")
        given = {t: (v[t] if isinstance(v, dict) else v) * units.us for t in TIERS if not isinstance(v, dict) or t in v}
        if base and "nvlink" in given and "scale_out" not in given and "scale_out" in out.get(p, {}):
            given["scale_out"] = out[p]["scale_out"] + given["nvlink"] - out[p].get("nvlink", 0.0)
        out.setdefault(p, {}).update(given)
    return out


def kernel_constants(table, source: str, where: str, base: Transport | None) -> dict[str, dict[str, float]]:
    """The :data:`KERNEL_TABLES`: SI name -> {phase: value}, over ``base``'s phase by phase."""
    out = {}
    for key, (name, scale, check) in KERNEL_TABLES.items():
        fields = {p: Field(float, check, required=False) for p in PHASES}
        given = {p: v * scale for p, v in check_table(table(key), fields, source, where + key + ".").items()}
        out[name] = ((base.kernel or {}).get(name, {}) if base else {}) | given
    return out


def checked_share(share: float, source: str) -> float:
    """``scale_out_fixed_share`` in [0, 1] (0: the scale-out fixed cost does not scale)."""
    if not 0 <= share <= 1:
        raise CatalogError(f"must lie in [0, 1], got {share}", source, "scale_out_fixed_share")
    return share


def load_ramp(table: dict | None, source: str, prefix: str = "") -> dict:
    """The optional [ramp.<phase>.<tier>] tables: ``bytes`` and ``efficiency`` in (0, 1] at those sizes."""
    curves: dict = {}
    if table is not None and not isinstance(table, dict):
        raise CatalogError("expected a table per phase", source, f"{prefix}ramp")
    for phase, tiers in (table or {}).items():
        if phase not in PHASES or not isinstance(tiers, dict):
            raise CatalogError(f"expected a table per phase ({', '.join(PHASES)})", source, f"{prefix}ramp.{phase}")
        for tier, curve in tiers.items():
            where = f"{prefix}ramp.{phase}.{tier}"
            if tier not in TIERS:
                raise CatalogError(f"unknown tier (choose {', '.join(TIERS)})", source, where)
            if not isinstance(curve, dict) or set(curve) != {"bytes", "efficiency"}:
                raise CatalogError("needs exactly the lists 'bytes' and 'efficiency'", source, where)
            curves.setdefault(phase, {})[tier] = checked_curve(curve["bytes"], curve["efficiency"], source, where)
    return curves
