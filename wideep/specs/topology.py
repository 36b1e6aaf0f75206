"""Clusters as graphs: GPUs, NVLink switches, NICs and fabric switches joined by directed links.

Nodes carry ``kind`` (gpu, switch, nic); GPU nodes also carry ``rank`` and ``domain``. Directed edges
carry ``bw_Bps`` (bytes/s in that direction), ``latency_s`` and ``tier`` (``nvlink`` or ``scale_out``).
A catalog system is expanded to N GPUs: ceil(N / gpus_per_domain) NVLink domains, each GPU linked to
one switch node standing for the domain's switch chips (equal-cost paths over the chips share evenly,
so one node of the summed bandwidth carries the same load), and, with more than one domain, a
rail-optimised two-level fat tree (GPU -> NIC -> rail leaf -> spine).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import networkx as nx
import numpy as np

from wideep.core import units
from wideep.core.catalog import Field, check_table, read_file, resolve
from wideep.core.errors import CatalogError, InputError
from wideep.specs.hardware import GPU, System, gpu_reference, load_system

TIERS = ("nvlink", "scale_out")
MAX_GPUS = 8192  # largest cluster graph built: an EP group of thousands of GPUs is already far past practice
MAX_CUSTOM_WALK = 5_000_000  # GPUs x links of a custom file: checking reachability takes ~10 s at this size (2 cores)
HOP_SAMPLE = 64  # destination ranks whose hop counts stand for all in summaries of larger clusters


@dataclass(frozen=True, eq=False)
class Cluster:
    """A cluster of GPUs as a directed graph.

    Attributes
    ----------
    graph : networkx.DiGraph
        Nodes and links as described in the module docstring.
    gpu_nodes : tuple of str
        Node id of each GPU, indexed by rank.
    domain_of : ndarray, shape (gpus,)
        NVLink domain index of each rank.
    """

    name: str
    gpu: GPU
    graph: nx.DiGraph
    gpu_nodes: tuple[str, ...]
    domain_of: np.ndarray
    system: System | None = None

    @property
    def n_gpus(self) -> int:
        return len(self.gpu_nodes)

    @property
    def n_domains(self) -> int:
        return int(self.domain_of.max()) + 1

    def holds_tp(self, tp: int) -> bool:
        """Whether every ``tp`` consecutive ranks (an attention group) sit in one NVLink domain."""
        whole = self.domain_of[: len(self.domain_of) // tp * tp].reshape(-1, tp)
        return 0 < tp <= self.n_gpus and bool((whole == whole[:, :1]).all())

    @property
    def domain_gpus(self) -> int:
        """GPUs of one NVLink domain: the system's (however few of them were built), else the custom file's
        smallest domain."""
        return self.system.scale_up.gpus_per_domain if self.system else int(np.bincount(self.domain_of).min())

    @cached_property
    def edges(self) -> list[tuple[str, str]]:
        """Directed edges in a fixed order: the column order of link-load vectors."""
        return list(self.graph.edges)

    @cached_property
    def edge_bw_Bps(self) -> np.ndarray:
        """Bandwidth of each edge of :attr:`edges`, bytes/s, shape (edges,)."""
        return np.array([self.graph.edges[e]["bw_Bps"] for e in self.edges])

    @cached_property
    def edge_tier(self) -> np.ndarray:
        """Tier name of each edge of :attr:`edges`, shape (edges,)."""
        return np.array([self.graph.edges[e]["tier"] for e in self.edges])

    def injection_Bps(self) -> dict[str, float]:
        """Per-GPU injection bandwidth per tier (bytes/s, one direction): sum of a GPU's out-links."""
        out = {t: 0.0 for t in TIERS}
        for _, _, d in self.graph.out_edges(self.gpu_nodes[0], data=True):
            out[d["tier"]] += d["bw_Bps"]
        if self.n_domains == 1:
            out["scale_out"] = 0.0
        return out

    def bisection_Bps(self) -> float:
        """Max flow (bytes/s, one direction) from the first half of the ranks to the second half."""
        g = nx.DiGraph()
        g.add_edges_from((u, v, {"capacity": d["bw_Bps"]}) for u, v, d in self.graph.edges(data=True))
        half = self.n_gpus // 2
        if half == 0:
            return 0.0
        for i, node in enumerate(self.gpu_nodes):
            if i < half:
                g.add_edge("_src", node, capacity=float("inf"))
            else:
                g.add_edge(node, "_dst", capacity=float("inf"))
        return float(nx.maximum_flow_value(g, "_src", "_dst"))

    def hop_counts(self, destinations: list[int] | None = None) -> np.ndarray:
        """Links crossed from every rank to each destination rank (no GPU forwards).

        Returns ndarray, shape (gpus, destinations); all ranks by default.
        """
        dests = list(range(self.n_gpus)) if destinations is None else destinations
        hops = np.zeros((self.n_gpus, len(dests)), dtype=int)
        for j, d in enumerate(dests):
            dist = self.distance_to(self.gpu_nodes[d])
            hops[:, j] = [dist[n] for n in self.gpu_nodes]
        return hops

    def distances_to_gpu(self) -> list[dict[str, int]]:
        """For each destination rank, hop distance of every node to it; GPUs never forward."""
        return [self.distance_to(dst) for dst in self.gpu_nodes]

    def distance_to(self, dst: str) -> dict[str, int]:
        """Breadth-first hop distance of every node to ``dst``; unreachable GPUs raise."""
        dist, frontier = {dst: 0}, [dst]
        while frontier:
            nxt = []
            for v in frontier:
                if v != dst and self.graph.nodes[v]["kind"] == "gpu":
                    continue
                for u in self.graph.predecessors(v):
                    if u not in dist:
                        dist[u] = dist[v] + 1
                        nxt.append(u)
            frontier = nxt
        lost = [n for n in self.gpu_nodes if n not in dist]
        if lost:
            raise CatalogError(f"GPU {lost[0]} cannot reach GPU {dst}", self.name, "edges")
        return dist

    def summary(self) -> dict:
        """Derived figures for display and JSON (bandwidths in GB/s per direction).

        Hop counts are over every pair up to HOP_SAMPLE GPUs, else to HOP_SAMPLE evenly spaced destinations.
        """
        dests = sorted(set(np.linspace(0, self.n_gpus - 1, min(self.n_gpus, HOP_SAMPLE)).astype(int).tolist()))
        hops = self.hop_counts(dests)
        off = hops[np.arange(self.n_gpus)[:, None] != np.array(dests)[None, :]]
        off = off if off.size else np.zeros(1)
        return {
            "name": self.name, "gpu": self.gpu.id, "gpus": self.n_gpus, "domains": self.n_domains,
            "gpus_per_domain": int(np.bincount(self.domain_of).max()),
            "nodes": self.graph.number_of_nodes(), "links": self.graph.number_of_edges(),
            "injection_GBps": {t: v / units.GBps for t, v in self.injection_Bps().items()},
            "bisection_GBps": self.bisection_Bps() / units.GBps,
            "hops_max": int(off.max()), "hops_mean": float(off.mean()),
        }


def add_link(g: nx.DiGraph, u: str, v: str, bw_Bps: float, latency_s: float, tier: str) -> None:
    """Add both directions of a full-duplex link."""
    for a, b in ((u, v), (v, u)):
        g.add_edge(a, b, bw_Bps=bw_Bps, latency_s=latency_s, tier=tier)


def build_cluster(system: System, n_gpus: int, option: str = "--gpus") -> Cluster:
    """Expand a catalog system to ``n_gpus`` GPUs (whole domains once it spans more than one)."""
    gpd = system.scale_up.gpus_per_domain
    if not 0 < n_gpus <= MAX_GPUS:
        raise InputError(f"must be between 1 and {MAX_GPUS:,}, got {n_gpus}", option)
    if n_gpus > gpd and n_gpus % gpd:
        raise InputError(f"{system.id} has {gpd} GPUs per domain; {n_gpus} is not a multiple of it", option)
    g = nx.DiGraph()
    n_domains = -(-n_gpus // gpd)
    ranks = np.arange(n_gpus)
    domain_of = ranks // gpd
    up = system.scale_up
    for d in range(n_domains):
        g.add_node(f"nvsw{d}", kind="switch", domain=d, chips=up.switch_chips)
    for r in ranks:
        g.add_node(f"gpu{r}", kind="gpu", rank=int(r), domain=int(domain_of[r]))
        add_link(g, f"gpu{r}", f"nvsw{domain_of[r]}", up.bw_Bps, up.latency_s / 2, "nvlink")
    if n_domains > 1:
        add_fat_tree(g, system, n_gpus)
    return Cluster(f"{system.id} x{n_gpus}", system.gpu, g, tuple(f"gpu{r}" for r in ranks), domain_of, system)


def add_fat_tree(g: nx.DiGraph, system: System, n_gpus: int) -> None:
    """Rail-optimised fat tree: rank r's NIC joins a leaf of rail (r mod gpus_per_domain) mod rails."""
    out, gpd = system.scale_out, system.scale_up.gpus_per_domain
    on_rail: dict[int, int] = {}
    leaves: set[str] = set()
    for r in range(n_gpus):
        rail = (r % gpd) % out.rails
        k = on_rail.get(rail, 0)
        on_rail[rail] = k + 1
        leaf = f"leaf{rail}.{k // out.leaf_downlinks}"
        g.add_node(f"nic{r}", kind="nic", rail=rail)
        g.add_node(leaf, kind="switch", rail=rail)
        leaves.add(leaf)
        add_link(g, f"gpu{r}", f"nic{r}", out.per_gpu_Bps, 0.0, "scale_out")
        add_link(g, f"nic{r}", leaf, out.per_gpu_Bps, out.latency_s / 2, "scale_out")
    if len(leaves) == 1:
        return
    uplink_Bps = out.leaf_downlinks * out.per_gpu_Bps / out.oversubscription / out.spines
    for s in range(out.spines):
        g.add_node(f"spine{s}", kind="switch")
        for leaf in sorted(leaves):
            add_link(g, leaf, f"spine{s}", uplink_Bps, 0.0, "scale_out")


def nic_fabric(cluster: Cluster) -> Cluster:
    """The same GPUs joined only through their NICs (no NVLink): what a pure-RDMA transport uses.

    A catalog system gets its rail-optimised fat tree even for one domain (in-node pairs then leave through
    the source's NIC and come back through the destination's); a custom graph loses its NVLink links, and a
    GPU pair left with no path raises :class:`InputError` on ``--transport``.
    """
    if cluster.system is not None:
        g = nx.DiGraph()
        for r, node in enumerate(cluster.gpu_nodes):
            g.add_node(node, kind="gpu", rank=r, domain=int(cluster.domain_of[r]))
        add_fat_tree(g, cluster.system, cluster.n_gpus)
    else:
        g = nx.DiGraph()
        g.add_nodes_from(cluster.graph.nodes(data=True))
        g.add_edges_from((u, v, d) for u, v, d in cluster.graph.edges(data=True) if d["tier"] != "nvlink")
    out = Cluster(f"{cluster.name} (NICs only)", cluster.gpu, g, cluster.gpu_nodes, cluster.domain_of, cluster.system)
    try:
        out.distances_to_gpu()
    except CatalogError as exc:
        raise InputError(f"a transport without NVLink needs a NIC path between every GPU pair of {cluster.name}: "
                         f"{exc.problem}", "--transport") from None
    return out


CUSTOM_TOP = {"name": Field(str), "gpu": Field(str), "nodes": Field(list), "edges": Field(list)}
CUSTOM_NODE = {"id": Field(str), "kind": Field(str, choices=("gpu", "switch", "nic")),
               "domain": Field(int, "nonneg", required=False)}
CUSTOM_EDGE = {"src": Field(str), "dst": Field(str), "bw_GBps": Field(float, "positive"),
               "latency_us": Field(float, "nonneg"), "tier": Field(str, choices=TIERS),
               "bidirectional": Field(bool, required=False)}


def load_custom(path: Path) -> Cluster:
    """A cluster described node by node and edge by edge in TOML (see README, "Custom topologies")."""
    src = str(path)
    data = check_table(read_file(path), CUSTOM_TOP, src)
    gpu = gpu_reference(data["gpu"], src)
    g = nx.DiGraph()
    gpus = []
    for i, node in enumerate(data["nodes"]):
        check_table(node if isinstance(node, dict) else {}, CUSTOM_NODE, src, f"nodes[{i}].")
        if node["kind"] == "gpu" and "domain" not in node:
            raise CatalogError("missing required field (GPUs need a domain)", src, f"nodes[{i}].domain")
        if node["id"] in g:
            raise CatalogError(f"duplicate node id {node['id']!r}", src, f"nodes[{i}].id")
        g.add_node(node["id"], kind=node["kind"], domain=node.get("domain"))
        if node["kind"] == "gpu":
            gpus.append(node["id"])
    if not gpus:
        raise CatalogError("no node of kind gpu", src, "nodes")
    check_custom_size(len(gpus), len(data["edges"]), src)
    given: dict[tuple[str, str], str] = {}  # (src, dst) -> the entry that gave that direction
    for i, e in enumerate(data["edges"]):
        add_custom_edge(g, e, src, f"edges[{i}]", given)
    for r, node in enumerate(gpus):
        g.nodes[node]["rank"] = r
    domains = sorted({g.nodes[n]["domain"] for n in gpus})
    domain_of = np.array([domains.index(g.nodes[n]["domain"]) for n in gpus])
    cluster = Cluster(data["name"], gpu, g, tuple(gpus), domain_of)
    try:
        cluster.distances_to_gpu()
    except CatalogError as exc:
        raise CatalogError(exc.problem, src, "edges") from None
    return cluster


def check_custom_size(n_gpus: int, n_edges: int, src: str) -> None:
    """A custom graph too large to check in seconds raises: reachability walks every link once per GPU."""
    if n_gpus > MAX_GPUS:
        raise CatalogError(f"{n_gpus:,} GPUs, over the limit of {MAX_GPUS:,}", src, "nodes")
    if n_gpus * n_edges > MAX_CUSTOM_WALK:
        raise CatalogError(f"{n_gpus:,} GPUs x {n_edges:,} links is over the limit of {MAX_CUSTOM_WALK:,} "
                           "(reachability is checked from every GPU over every link)", src, "edges")


def add_custom_edge(g: nx.DiGraph, e: object, src: str, name: str, given: dict[tuple[str, str], str]) -> None:
    """Add one ``[[edges]]`` entry (both directions unless ``bidirectional = false``) to ``g``.

    Unknown nodes, a link from a node to itself and a direction some earlier entry already gave raise.
    """
    check_table(e if isinstance(e, dict) else {}, CUSTOM_EDGE, src, f"{name}.")
    for end in ("src", "dst"):
        if e[end] not in g:
            raise CatalogError(f"unknown node {e[end]!r}", src, f"{name}.{end}")
    if e["src"] == e["dst"]:
        raise CatalogError(f"links node {e['src']!r} to itself", src, name)
    pairs = [(e["src"], e["dst"])] + ([(e["dst"], e["src"])] if e.get("bidirectional", True) else [])
    for u, v in pairs:
        if (u, v) in given:
            raise CatalogError(f"duplicate link {u} -> {v} (already given by {given[u, v]}); "
                               "give each link once, with its total bandwidth", src, name)
        given[u, v] = name
        g.add_edge(u, v, bw_Bps=e["bw_GBps"] * units.GBps, latency_s=e["latency_us"] * units.us, tier=e["tier"])


def load_cluster(topology: str, n_gpus: int | None = None, option: str = "--gpus") -> Cluster:
    """A cluster from a system id or file (expanded to ``n_gpus``, default one domain) or a custom file.

    A custom file is used whole; ``n_gpus`` (named ``option`` in errors) may not exceed its GPUs.
    """
    path = resolve("systems", topology)
    data = read_file(path)
    if "nodes" in data or "edges" in data:
        cluster = load_custom(path)
        if n_gpus is not None and n_gpus > cluster.n_gpus:
            raise InputError(f"{path} has {cluster.n_gpus} GPUs, fewer than {n_gpus}", option)
        return cluster
    system = load_system(str(path))
    return build_cluster(system, n_gpus if n_gpus is not None else system.scale_up.gpus_per_domain, option)
