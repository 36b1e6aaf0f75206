"""Dispatch/combine traffic of an EP group: destination GPUs, copies per GPU pair, all-to-all time.

Pipeline: placement (phy2log) + routing samples -> destination GPU of every (token, selection)
(:func:`wideep.slots.layer_slots` under the engine's replica rule when an expert has several copies) -> copies
per (source, destination) pair as the transport counts them (per selection, per GPU, per node then per GPU
through a relay, or every token to every GPU: an all-gather) -> bytes per pair -> bytes per link
(:mod:`wideep.traffic.linkload`) -> phase time = max over links of bytes / effective bandwidth, plus the
transport's fixed cost and the longest wire latency used.
Rank r holds tokens [r * tokens_per_gpu, (r + 1) * tokens_per_gpu) of the sample
(:func:`wideep.routing.stats.token_ranks`). Placements are validated by :func:`wideep.slots.validate_phy2log`
and read from files by :func:`wideep.placement.files.load_placement`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

from wideep.core import units
from wideep.core.memo import Memo
from wideep.traffic.copies import KINDS, Group, count_gpus, count_sorted_experts, all_gather_counts, equal_blocks, expected_layer, group_of, logical_copies, needed, pair_copies, tally
from wideep.core.errors import InputError
from wideep.traffic.linkload import Routes, routes
from wideep.specs.model import Model
from wideep.slots import (DEFAULT_REPLICA_RULE, check_replica_rule, checked_phy2log, destination_ranks,
                          dispatch_weights, lut_dtype, rank_domains)
from wideep.routing.stats import RoutingStats, sample_tokens, token_ranks
from wideep.specs.topology import TIERS, Cluster, nic_fabric
from wideep.traffic.transports import PHASES, Transport, load_transport


_NIC_FABRIC: "weakref.WeakKeyDictionary[Cluster, Cluster]" = weakref.WeakKeyDictionary()


def fabric(cluster: Cluster, tr: Transport) -> Cluster:
    """The links a transport uses: the whole cluster, or its NIC fabric alone (``scope = "nic"``, cached)."""
    if tr.scope != "nic":
        return cluster
    if cluster not in _NIC_FABRIC:
        _NIC_FABRIC[cluster] = nic_fabric(cluster)
    return _NIC_FABRIC[cluster]


def gpu_loads(phy2log: np.ndarray, stats: RoutingStats, ep_size: int, domain_of=None,
              rule: str = DEFAULT_REPLICA_RULE) -> np.ndarray:
    """Token-expert selections each GPU receives, shape (layers, ep_size).

    With token samples, every selection goes where the replica rule sends it (:func:`wideep.slots.layer_slots`;
    tokens spread evenly over the ranks, ``domain_of`` default: every GPU its own domain); with loads only,
    every rank is taken to hold an equal share of each expert's selections and to split them over the
    copies as the rule does (:func:`wideep.slots.dispatch_weights`).
    """
    phy2log = checked_phy2log(phy2log, stats.n_experts, stats.layers, ep_size)
    check_replica_rule(rule)
    layers, n_slots = phy2log.shape
    dom = rank_domains(domain_of, ep_size)
    if stats.topk_ids is None:
        return source_loads(phy2log, stats, ep_size, dom, rule).sum(axis=1)
    tokens = stats.topk_ids.shape[1]
    src = token_ranks(tokens, ep_size)
    out = np.zeros((layers, ep_size))
    for layer in range(layers):
        cols = destination_ranks(phy2log, stats.topk_ids, layer, src, ep_size, dom, stats.n_experts, rule, True)
        out[layer] = np.bincount(cols.reshape(-1), minlength=ep_size)
    return out


SHARE_TOKENS = 16384  # tokens whose steps are averaged: 16,384 one-token steps down to one large step


def step_busiest_share(phy2log: np.ndarray, stats: RoutingStats, ep_size: int, step_tokens: int, domain_of=None,
                       rule: str = DEFAULT_REPLICA_RULE) -> float:
    """Busiest GPU's share of one step's selections, mean over MoE layers and over the consecutive steps of
    ``step_tokens`` tokens (over the whole EP group) in the sample's first :data:`SHARE_TOKENS` tokens (at
    least one step); loads-only statistics give the expected share.

    Each step spreads its tokens evenly over the ranks (:func:`~wideep.routing.stats.token_ranks`); its
    selections go where the replica rule sends them.
    """
    if stats.topk_ids is None:  # loads only: the expected split, no sampling noise
        loads = np.asarray(gpu_loads(phy2log, stats, ep_size, domain_of, rule), dtype=float)
        return float(np.mean(loads.max(axis=1) / loads.sum(axis=1)))
    phy2log = checked_phy2log(phy2log, stats.n_experts, stats.layers, ep_size)
    dom = rank_domains(domain_of, ep_size)
    step_tokens = min(step_tokens, stats.tokens)
    steps = max(1, min(stats.tokens, SHARE_TOKENS) // step_tokens)
    ids = stats.topk_ids[:, :steps * step_tokens]
    src = np.tile(token_ranks(step_tokens, ep_size), steps)
    shares = []
    for layer in range(phy2log.shape[0]):  # a step's selections are consecutive: one tally row per step
        ranks = destination_ranks(phy2log, ids, layer, src, ep_size, dom, stats.n_experts, rule)
        loads = tally(ranks.reshape(-1), None, steps, ep_size)
        shares.append(np.mean(loads.max(axis=1) / loads.sum(axis=1)))
    return float(np.mean(shares))


def source_loads(phy2log: np.ndarray, stats: RoutingStats, ep_size: int, domain_of: np.ndarray,
                 rule: str) -> np.ndarray:
    """Loads only: selections each rank sends each GPU, shape (layers, ep_size src, ep_size dst).

    Every rank holds ``1 / ep_size`` of each expert's selections; the rule splits them over the copies
    (:func:`wideep.slots.dispatch_weights`).
    """
    layers, n_slots = phy2log.shape
    spg = n_slots // ep_size
    out = np.empty((layers, ep_size, ep_size))
    for layer in range(layers):
        w = dispatch_weights(phy2log[layer], ep_size, domain_of, stats.n_experts, rule, layer)
        per_slot = w * (stats.load[layer, phy2log[layer]] / ep_size)[None, :]
        out[layer] = per_slot.reshape(ep_size, ep_size, spg).sum(axis=2)
    return out


@dataclass(frozen=True)
class A2AResult:
    """Dispatch and combine of one MoE layer, averaged over the layers of the routing statistics.

    Times in seconds; ``bytes_by_tier`` = {phase: {tier: bytes}}, the bytes sent between GPU pairs of each
    tier (scale-out: the route crosses it) per layer-step for the whole EP group (a relayed copy counts on
    each tier it enters).
    ``logical_bytes_per_gpu`` = {phase: bytes} the transport's own benchmarks divide by time (local copies
    included), so ``logical_bytes_per_gpu[phase] / phase_s`` is the bandwidth as they report it.
    ``link_bytes`` = {phase: ndarray (edges,)} mean bytes per layer on each of ``edges``; ``sent_bytes`` =
    {phase: bytes} the busiest GPU's kernels move (:func:`busiest_sender`) and ``peer_bytes`` those of the
    busiest NVLink pair (:func:`busiest_peer`), means over layers.
    """

    transport: str
    dispatch_s: float
    combine_s: float
    dispatch_sol_s: float
    combine_sol_s: float
    binding_link: str
    binding_tier: str
    bytes_by_tier: dict
    combine_binding_link: str = ""
    combine_binding_tier: str = ""
    latency_s: dict = field(default_factory=dict)
    logical_bytes_per_gpu: dict = field(default_factory=dict)
    message_bytes: dict = field(default_factory=dict)
    dispatch_layer_s: np.ndarray | None = None
    combine_layer_s: np.ndarray | None = None
    link_bytes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    ep_size: int = 0
    tokens_per_gpu: int = 0
    replica_rule: str = DEFAULT_REPLICA_RULE
    sent_bytes: dict = field(default_factory=dict)
    peer_bytes: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Plain figures for JSON and tables (microseconds, bytes, GB/s)."""
        out = {"transport": self.transport, "ep_size": self.ep_size, "tokens_per_gpu": self.tokens_per_gpu,
               "replica_rule": self.replica_rule,
               "binding_link": self.binding_link, "binding_tier": self.binding_tier,
               "combine_binding_link": self.combine_binding_link, "combine_binding_tier": self.combine_binding_tier,
               "bytes_by_tier": self.bytes_by_tier, "message_bytes": self.message_bytes,
               "logical_bytes_per_gpu": self.logical_bytes_per_gpu}
        for p in PHASES:
            t = getattr(self, f"{p}_s")
            out[f"{p}_us"] = t / units.us
            out[f"{p}_sol_us"] = getattr(self, f"{p}_sol_s") / units.us
            out[f"{p}_latency_us"] = self.latency_s.get(p, 0.0) / units.us
            out[f"{p}_logical_GBps"] = self.logical_bytes_per_gpu.get(p, 0.0) / t / units.GBps if t else 0.0
        return out


def check_payload_dtypes(cluster: Cluster, dtypes: dict[str, str]) -> None:
    """Dispatch/combine payload dtypes ({option: name}) known and supported by the cluster's GPU.

    nvfp4 needs Blackwell (a GPU with nvfp4 in ``flops_per_s``); problems raise InputError on the option.
    """
    gpu = cluster.gpu
    for option, name in dtypes.items():
        dt = units.dtype(name, option)
        if dt.name == "nvfp4" and "nvfp4" not in gpu.flops_per_s:
            raise InputError(f"{gpu.name} ({gpu.arch}) has no nvfp4 support", option)


def message_bytes(model: Model, transport: Transport, dispatch_dtype: str, combine_dtype: str) -> dict:
    """Bytes of one token copy per phase: hidden values with their scales plus the transport's header."""
    dts = {"dispatch": units.dtype(dispatch_dtype, "--dtype"), "combine": units.dtype(combine_dtype, "--combine-dtype")}
    return {p: dts[p].activation_bytes(model.hidden) + transport.header_bytes[p] for p in PHASES}


def layer_counts(model: Model, stats: RoutingStats, phy2log: np.ndarray, group: Group, tokens_per_gpu: int,
                 domain_of: np.ndarray, kinds: tuple[str, ...], seed: int, rule: str = DEFAULT_REPLICA_RULE,
                 dest_gpu: np.ndarray | None = None) -> dict:
    """Copies of every layer, kind -> (layers, ep, ...), from token samples or (approximately) from loads.

    ``dest_gpu`` (layers, tokens, top_k), optional: the destination rank of every selection of the step's
    tokens, when the caller already has them (:func:`wideep.slots.choose_replicas`). Counted from token
    samples, every kind is counted at once and remembered (:func:`sample_counts`): the transports of one EP
    group count the same tokens.
    """
    if stats.topk_ids is None:
        sent = source_loads(phy2log, stats, group.ep, np.asarray(domain_of), rule)
        share = sent / np.maximum(sent.sum(axis=2, keepdims=True), 1e-300)
        per_layer = [expected_layer(s, tokens_per_gpu, model.top_k, group, kinds) for s in share]
        return {k: np.stack([c[k] for c in per_layer]) for k in kinds}
    if dest_gpu is not None:
        return token_counts(stats, phy2log, group, tokens_per_gpu, domain_of, kinds, seed, rule, dest_gpu)
    counts = sample_counts(stats, phy2log, group, tokens_per_gpu, domain_of, seed, rule)
    return {k: counts[k] for k in kinds}


_COUNTS = Memo(16)  # a search meets one EP group per EP size of each system, both transports in turn


def sample_counts(stats: RoutingStats, phy2log: np.ndarray, group: Group, tokens_per_gpu: int,
                  domain_of: np.ndarray, seed: int, rule: str) -> dict:
    """:func:`token_counts` of every kind, remembered per (sample, placement, domains, tokens, seed, rule);
    the arrays come back read-only."""
    def compute() -> dict:
        counts = token_counts(stats, phy2log, group, tokens_per_gpu, domain_of, KINDS, seed, rule)
        for c in counts.values():
            c.flags.writeable = False
        return {"stats": stats} | counts  # the sample kept alive: its id is in the key

    dom = np.asarray(domain_of)
    key = (id(stats), phy2log.shape, phy2log.tobytes(), dom.tobytes(), dom.dtype.str, tokens_per_gpu, seed, rule)
    return _COUNTS.get(key, compute)


def token_counts(stats: RoutingStats, phy2log: np.ndarray, group: Group, tokens_per_gpu: int,
                 domain_of: np.ndarray, kinds: tuple[str, ...], seed: int, rule: str,
                 dest_gpu: np.ndarray | None = None) -> dict:
    """:func:`layer_counts` from token samples, counted layer by layer."""
    ep = group.ep
    per_layer: list[dict] = []
    ids = sample_tokens(stats, ep * tokens_per_gpu, seed)
    src = token_ranks(ep * tokens_per_gpu, ep)
    fast = stats.rows_sorted and ("node" not in kinds or equal_blocks(group) > 0)
    identity = np.arange(phy2log.shape[1]) % stats.n_experts
    work: dict = {}
    for layer in range(stats.layers):
        if fast and phy2log.shape[1] == stats.n_experts and np.array_equal(phy2log[layer], identity):
            per_layer.append(count_sorted_experts(ids[layer], stats.n_experts // ep, group, kinds, work))
            continue
        cols = (dest_gpu[layer].T.astype(lut_dtype(ep)) if dest_gpu is not None else
                destination_ranks(phy2log, ids, layer, src, ep, domain_of, stats.n_experts, rule, True))
        per_layer.append(count_gpus(cols, group, kinds))
    return {k: np.stack([c[k] for c in per_layer]) for k in kinds}


@dataclass(frozen=True)
class KernelLoad:
    """What a transport's kernels handle in one phase beyond the link bytes: the EP group's expert slots, the
    model's hidden size, the tokens each GPU sends, the bytes the busiest GPU's kernels move
    (:func:`busiest_sender`), the busiest NVLink pair's bytes and the most GPUs one GPU sends to
    (:func:`busiest_peer`), those three (layers,) or scalar, and of the bytes moved the reduced outputs
    (:func:`reduced_bytes`)."""

    slots: int = 0
    hidden: int = 0
    tokens_per_gpu: float = 0.0
    sent_bytes: np.ndarray | float = 0.0
    peer_bytes: np.ndarray | float = 0.0
    peers: np.ndarray | int = 0
    reduced_bytes: float = 0.0


def phase_times(link_bytes: np.ndarray, pair_bytes: np.ndarray, cluster: Cluster, r: Routes, transport: Transport,
                phase: str, wire_s: np.ndarray | None = None, load: KernelLoad = KernelLoad()) -> dict:
    """Per-layer time: the busiest link's bytes over its achieved bandwidth (the transport's ramp at that
    size, or at the busiest pair's or the whole buffer's bytes: ``ramp_bytes``) plus the busiest NVLink
    pair's stream (:meth:`Transport.peer_time`), or the time the kernel's blocks need to send the busiest
    GPU's tokens (``load``; at the relaying rate when a ``node`` transport's group spans domains), whichever
    is longer, plus the transport's fixed cost and the longest wire latency
    used; and the SOL (datasheet, no latency). ``wire_s`` (layers,): :func:`wire_latency` of ``pair_bytes``
    when the caller already has it.
    """
    bw = cluster.edge_bw_Bps
    masks = tier_masks(cluster)
    pair = np.broadcast_to(np.reshape(load.peer_bytes, (-1, 1)), link_bytes.shape)  # each layer's busiest pair
    ramp_bytes = transport.ramp_read_at(link_bytes, pair, r.ep_size)
    busy = link_bytes / (bw * transport.link_efficiency(phase, cluster.edge_tier[None, :], ramp_bytes, masks))
    wire = wire_latency(pair_bytes, r) if wire_s is None else wire_s
    used = {t: (link_bytes[:, on] > 0).any(axis=1) for t, on in masks.items()}  # tier -> layers using it
    remote = float((r.pair_tier == "scale_out").mean())  # GPU pairs across the scale-out tier
    sms = cluster.gpu.sm_count
    peers = np.broadcast_to(load.peers, (len(link_bytes),))
    latency = wire + np.array([transport.latency(phase, {t for t, on in used.items() if on[i]}, remote, load.slots,
                                                 sms, load.hidden, int(peers[i]), r.ep_size)
                                for i in range(len(link_bytes))])
    relaying = transport.copies == "node" and remote > 0  # as busiest_sender counts: the group spans domains
    sending = transport.send_time(phase, load.tokens_per_gpu, np.asarray(load.sent_bytes, dtype=float), load.slots, sms,
                                  relaying, load.reduced_bytes)
    sending = np.where(np.any(list(used.values()), axis=0), sending, 0.0)  # nothing sent: no kernel time either
    mean_busy = busy.mean(axis=0)
    binding = int(mean_busy.argmax()) if busy.size and mean_busy.max() > 0 else None  # None: no link carries bytes
    u, v = cluster.edges[binding] if binding is not None else ("", "")
    link_s = busy.max(axis=1) + transport.peer_time(phase, load.peer_bytes)
    return {"layer_s": np.maximum(link_s, sending) + latency,
            "send_s": float(np.where(sending >= link_s, sending, 0.0).mean()),
            "sol_s": (link_bytes / bw).max(axis=1).mean(), "latency_s": float(latency.mean()),
            "binding": f"{u}->{v}" if binding is not None else "none",
            "tier": str(cluster.edge_tier[binding]) if binding is not None else ""}


def busiest_peer(pair_bytes: np.ndarray, r: Routes) -> tuple[np.ndarray, np.ndarray]:
    """(bytes of the busiest GPU pair joined by NVLink, the most GPUs one GPU sends bytes to, over any tier),
    each (layers,), from ``pair_bytes`` (layers, ep, ep)."""
    on_nvlink = r.pair_tier == "nvlink"
    peer_bytes = np.where(on_nvlink[None], pair_bytes, 0.0).reshape(len(pair_bytes), -1).max(axis=1, initial=0.0)
    off_self = ~np.eye(r.ep_size, dtype=bool)
    return peer_bytes, ((pair_bytes > 0) & off_self[None]).sum(axis=2).max(axis=1, initial=0)


def wire_latency(pair_bytes: np.ndarray, r: Routes) -> np.ndarray:
    """Longest wire latency of the pairs each layer sends bytes between, seconds, shape (layers,)."""
    return np.where(pair_bytes > 0, r.path_latency_s[None], 0.0).reshape(len(pair_bytes), -1).max(axis=1)


_TIER_MASKS: "weakref.WeakKeyDictionary[Cluster, dict[str, np.ndarray]]" = weakref.WeakKeyDictionary()


def tier_masks(cluster: Cluster) -> dict[str, np.ndarray]:
    """{tier: which edges of ``cluster.edges`` are of it, bool (edges,)}, tiers sorted by name (cached)."""
    if cluster not in _TIER_MASKS:
        _TIER_MASKS[cluster] = {str(t): cluster.edge_tier == t for t in np.unique(cluster.edge_tier)}
    return _TIER_MASKS[cluster]


def tier_bytes(pair_bytes: np.ndarray, r: Routes) -> dict:
    """Mean bytes per layer between GPU pairs of each tier (:attr:`Routes.pair_tier`), {tier: bytes}."""
    mean = pair_bytes.mean(axis=0)
    return {t: float(mean[r.pair_tier == t].sum()) for t in TIERS}


def phase_pairs(model: Model, cluster: Cluster, phy2log: np.ndarray, stats: RoutingStats, ep_size: int,
                tokens_per_gpu: int, tr: Transport, dispatch_dtype: str, combine_dtype: str, seed: int,
                rule: str = DEFAULT_REPLICA_RULE, dest_gpu: np.ndarray | None = None):
    """Bytes per (layer, source, destination) of each phase, the routes, message sizes, logical copies and the
    bytes the busiest GPU's kernels move (:func:`busiest_sender`)."""
    if tokens_per_gpu <= 0:
        raise InputError(f"must be > 0, got {tokens_per_gpu}", "--tokens")
    if stats.n_experts != model.n_experts:
        raise InputError(f"statistics have {stats.n_experts} experts, {model.id} has {model.n_experts}", "--routing")
    check_replica_rule(rule)
    r = routes(cluster, ep_size)
    phy2log = checked_phy2log(phy2log, model.n_experts, stats.layers, ep_size)
    domain_of = np.asarray(cluster.domain_of)[:ep_size]
    group = group_of(domain_of)
    if tr.scope == "domain" and group.n_domains > 1:
        raise InputError(f"{tr.id} needs the EP group inside one NVLink domain; EP {ep_size} spans "
                         f"{group.n_domains} domains of {cluster.name}", "--transport")
    counts = (all_gather_counts(stats.layers, ep_size, tokens_per_gpu) if tr.copies == "all" else
              layer_counts(model, stats, phy2log, group, tokens_per_gpu, domain_of, needed(tr.copies), seed, rule,
                           dest_gpu))
    copies = pair_copies(counts, tr.copies, tr.forward, group)
    msg = message_bytes(model, tr, dispatch_dtype, combine_dtype)
    pairs = {"dispatch": copies * msg["dispatch"], "combine": copies.transpose(0, 2, 1) * msg["combine"]}
    logical = logical_copies(counts, tr.copies, group).mean()
    return pairs, r, msg, logical, busiest_sender(counts, tr, tokens_per_gpu, msg)


def busiest_sender(counts: dict, tr: Transport, tokens_per_gpu: int, msg: dict) -> dict:
    """{phase: bytes the busiest GPU's kernels move, (layers,)}: dispatch the copies of its own tokens, combine
    the copies it received and sends back plus one reduced output per own token; local copies included,
    copies counted per selection (``copies = "selection"``), per GPU of the group (``all``) or else per
    destination GPU. A relaying transport (``copies = "node"``) whose group spans domains also moves one copy
    per (token, destination domain), its own domain included, in the first stage (DeepEP's internode kernels:
    every token passes the RDMA stage, then the forwarders)."""
    own = counts[tr.copies if tr.copies in ("selection", "all") else "gpu"]
    sent, received = own.sum(axis=2), own.sum(axis=1)
    if tr.copies == "node" and counts["node"].shape[2] > 1:
        relayed = counts["node"].sum(axis=2)
        sent, received = sent + relayed, received + relayed
    return {"dispatch": sent.max(axis=1) * msg["dispatch"],
            "combine": received.max(axis=1) * msg["combine"] + reduced_bytes("combine", tokens_per_gpu, msg)}


def reduced_bytes(phase: str, tokens_per_gpu: float, msg: dict) -> float:
    """Bytes of the outputs the busiest GPU's combine reduces its copies into, one per own token (0 for
    dispatch); :func:`busiest_sender` counts them in the combine's bytes."""
    return tokens_per_gpu * msg[phase] if phase == "combine" else 0.0


def a2a(model: Model, cluster: Cluster, phy2log: np.ndarray, stats: RoutingStats, ep_size: int,
        tokens_per_gpu: int, transport: str, dispatch_dtype: str = "fp8", combine_dtype: str = "bf16",
        seed: int = 0, replica_rule: str = DEFAULT_REPLICA_RULE, dest_gpu: np.ndarray | None = None) -> A2AResult:
    """All-to-all dispatch and combine time of one MoE layer (mean over the layers of ``stats``).

    Parameters
    ----------
    phy2log : ndarray, shape (layers, slots)
        Placement; slots // (slots / ep_size) is a slot's rank.
    stats : RoutingStats
        Token samples are resampled (seeded) to ep_size * tokens_per_gpu tokens when short; loads-only
        statistics use the independent-selection approximation of :func:`wideep.traffic.copies.expected_layer`.
    ep_size : int
        The EP group is ranks 0 .. ep_size-1 of ``cluster``.
    transport : str
        Catalog id or TOML path (``topologies/transports``).
    replica_rule : str
        Which copy of a replicated expert a selection goes to (:data:`wideep.slots.REPLICA_RULES`).
    dest_gpu : ndarray, shape (layers, ep_size x tokens_per_gpu, top_k), optional
        Destination rank of every selection of the step, when already known (saves choosing them again).
    """
    tr = load_transport(transport).for_gpu(cluster.gpu.id)
    cluster = fabric(cluster, tr)
    pairs, r, msg, logical, sent = phase_pairs(model, cluster, phy2log, stats, ep_size, tokens_per_gpu, tr,
                                               dispatch_dtype, combine_dtype, seed, replica_rule, dest_gpu)
    res = {}
    for p in PHASES:
        links = r.link_bytes(pairs[p])
        load = KernelLoad(np.shape(phy2log)[-1], model.hidden, tokens_per_gpu, sent[p], *busiest_peer(pairs[p], r),
                          reduced_bytes(p, tokens_per_gpu, msg))
        res[p] = phase_times(links, pairs[p], cluster, r, tr, p, None, load) | {
            "links": links.mean(axis=0), "peer_bytes": float(np.mean(load.peer_bytes))}
    d, c = res["dispatch"], res["combine"]
    return A2AResult(
        transport=tr.id, dispatch_s=float(d["layer_s"].mean()), combine_s=float(c["layer_s"].mean()),
        dispatch_sol_s=float(d["sol_s"]), combine_sol_s=float(c["sol_s"]),
        binding_link=d["binding"], binding_tier=d["tier"], combine_binding_link=c["binding"],
        combine_binding_tier=c["tier"], bytes_by_tier={p: tier_bytes(pairs[p], r) for p in PHASES},
        latency_s={p: res[p]["latency_s"] for p in PHASES},
        logical_bytes_per_gpu={p: float(logical * msg[p]) for p in PHASES}, message_bytes=msg,
        dispatch_layer_s=d["layer_s"], combine_layer_s=c["layer_s"],
        link_bytes={p: res[p]["links"] for p in PHASES}, edges=list(cluster.edges),
        ep_size=ep_size, tokens_per_gpu=tokens_per_gpu, replica_rule=replica_rule,
        sent_bytes={p: float(sent[p].mean()) for p in PHASES}, peer_bytes={p: res[p]["peer_bytes"] for p in PHASES})


def a2a_curve(model: Model, cluster: Cluster, phy2log: np.ndarray, stats: RoutingStats, ep_size: int,
              probe_tokens: int, tokens_grid: tuple[float, ...], transport: str, dispatch_dtype: str = "fp8",
              combine_dtype: str = "bf16", seed: int = 0, replica_rule: str = DEFAULT_REPLICA_RULE) -> dict:
    """Per-MoE-layer phase times at every size of ``tokens_grid`` (tokens per GPU), from one traffic count.

    Copies per token do not depend on how many tokens a step carries, so the pair bytes counted at
    ``probe_tokens`` scale linearly; the ramp and the fixed costs do not, and are applied at each size (the
    GPUs each GPU sends to, which NCCL's fixed cost counts, are those of ``probe_tokens``).
    Returns ``{phase: {"time_s", "sol_s", "latency_s", "send_s": ndarray over the grid, "tier": binding tier}}``
    (``send_s``: the mean over layers of the send-side time where it, not a link, binds).
    """
    tr = load_transport(transport).for_gpu(cluster.gpu.id)
    cluster = fabric(cluster, tr)
    pairs, r, msg, _, sent = phase_pairs(model, cluster, phy2log, stats, ep_size, probe_tokens, tr,
                                       dispatch_dtype, combine_dtype, seed, replica_rule)
    out = {}
    for p in PHASES:
        links = r.link_bytes(pairs[p])
        wire = wire_latency(pairs[p], r)
        peer_bytes, peers = busiest_peer(pairs[p], r) if tr.counts_peers else (0.0, 0)  # peers at probe_tokens
        rows = [phase_times(links * (t / probe_tokens), pairs[p], cluster, r, tr, p, wire,
                            KernelLoad(np.shape(phy2log)[-1], model.hidden, t, sent[p] * (t / probe_tokens),
                                       peer_bytes * (t / probe_tokens), peers, reduced_bytes(p, t, msg)))
                for t in tokens_grid]
        out[p] = {"time_s": np.array([float(x["layer_s"].mean()) for x in rows]),
                  "sol_s": np.array([float(x["sol_s"]) for x in rows]),
                  "latency_s": np.array([x["latency_s"] for x in rows]), "tier": rows[-1]["tier"],
                  "send_s": np.array([x["send_s"] for x in rows]),
                  "binding": rows[-1]["binding"]}
    return out
