"""Routing GPU-pair bytes over a cluster graph: per-hop ECMP fractions and link loads.

For each destination GPU, every node splits what it forwards equally over its next hops on shortest
paths (per-hop ECMP); GPUs never forward (a transport that relays through a GPU, such as DeepEP's
normal kernels, is modelled as two pair transfers). The fractions of every (source, destination) pair
on every directed link form one sparse matrix per cluster and EP size, built once and cached, so the
link loads of all layers are one sparse product.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from wideep.core import progress
from wideep.core.errors import InputError
from wideep.core.memo import Memo
from wideep.specs.topology import Cluster

DEST_CHUNK = 32  # destinations propagated together (bounds the block operators' size)
MAX_EP = 1024  # the pair-to-link matrix grows as EP^2 x links: EP 1024 builds in about a minute on 2 cores
_CACHE: "weakref.WeakKeyDictionary[Cluster, dict[int, Routes]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class Routes:
    """Pair-to-link fractions for the first ``ep_size`` ranks of a cluster.

    Attributes
    ----------
    fraction : scipy.sparse.csr_matrix, shape (ep_size**2, edges)
        Share of pair ``src * ep_size + dst``'s bytes crossing each edge of ``cluster.edges``.
    path_latency_s : ndarray, shape (ep_size, ep_size)
        Wire latency of each pair's path (sum of ``latency_s`` along it), seconds.
    pair_tier : ndarray of str, shape (ep_size, ep_size)
        Tier of each pair: ``scale_out`` where its route crosses a scale-out link anywhere (a custom graph
        may reach one through a switch), else the tier it leaves the source GPU on ('' on the diagonal).
    """

    ep_size: int
    fraction: sp.csr_matrix
    path_latency_s: np.ndarray
    pair_tier: np.ndarray

    def link_bytes(self, pair_bytes: np.ndarray) -> np.ndarray:
        """Bytes on every edge, shape (layers, edges), from ``pair_bytes`` shape (layers, ep, ep)."""
        flat = pair_bytes.reshape(pair_bytes.shape[0], -1)
        return np.asarray((self.fraction.T @ flat.T).T)


def routes(cluster: Cluster, ep_size: int) -> Routes:
    """Cached :class:`Routes` of ``cluster`` for EP group = ranks 0 .. ep_size-1 (clusters of the same graph,
    such as the same fabric under two GPU models, share one, :func:`graph_key`)."""
    if not 0 < ep_size <= min(cluster.n_gpus, MAX_EP):
        raise InputError(f"must be between 1 and {min(cluster.n_gpus, MAX_EP):,} (the cluster's GPUs, at most "
                         f"{MAX_EP:,}), got {ep_size}", "--ep")
    per = _CACHE.setdefault(cluster, {})
    if ep_size not in per:
        per[ep_size] = _SHARED.get(graph_key(cluster, ep_size), lambda: build_routes(cluster, ep_size))
    return per[ep_size]


_SHARED = Memo(32)


def graph_key(cluster: Cluster, ep_size: int) -> tuple:
    """Everything :func:`build_routes` reads of a cluster: its nodes and their kinds, its edges in order with
    their latency and tier, and the GPU nodes of the EP group (not bandwidths, which routes do not weigh)."""
    g = cluster.graph
    edges = tuple((u, v, g.edges[u, v]["latency_s"], g.edges[u, v]["tier"]) for u, v in cluster.edges)
    return tuple(g.nodes(data="kind")), edges, cluster.gpu_nodes[:ep_size]


def build_routes(cluster: Cluster, ep_size: int) -> Routes:
    """Per-hop ECMP fractions of every pair of the EP group over every edge.

    Destinations go :data:`DEST_CHUNK` at a time through one block-diagonal propagation (a block of
    nodes and of edges per destination), which gives the same sums in the same order as one
    destination at a time with far fewer sparse operations.
    """
    g = cluster.graph
    nodes = list(g.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    edges = cluster.edges
    eu = np.array([index[u] for u, _ in edges], dtype=np.int64)
    ev = np.array([index[v] for _, v in edges], dtype=np.int64)
    is_gpu = np.array([g.nodes[n]["kind"] == "gpu" for n in nodes])
    lat = np.array([g.edges[e]["latency_s"] for e in edges])
    src_nodes = np.array([index[cluster.gpu_nodes[r]] for r in range(ep_size)], dtype=np.int64)
    dist = gpu_distances(cluster, nodes, eu, ev, is_gpu, src_nodes)
    parts = []
    for lo in range(0, ep_size, DEST_CHUNK):
        dests = np.arange(lo, min(lo + DEST_CHUNK, ep_size))
        parts.append(chunk_fractions(dist[dests], eu, ev, is_gpu, src_nodes, dests))
        progress.advance(f"routes over {cluster.name}", int(dests[-1]) + 1, ep_size)
    rows, cols, vals = (np.concatenate(x) for x in zip(*parts))
    fraction = sp.csr_matrix((vals, (rows, cols)), shape=(ep_size * ep_size, len(edges)))
    path_lat = (fraction @ lat).reshape(ep_size, ep_size)
    crosses = (fraction @ (cluster.edge_tier == "scale_out")).reshape(ep_size, ep_size) > 0
    first = first_hop(fraction, eu, src_nodes, cluster.edge_tier, ep_size)
    return Routes(ep_size, fraction, path_lat, np.where(crosses, "scale_out", first).astype(first.dtype))


def gpu_distances(cluster: Cluster, nodes: list, eu: np.ndarray, ev: np.ndarray, is_gpu: np.ndarray,
                  src_nodes: np.ndarray) -> np.ndarray:
    """Hops from every node to each rank's GPU, no GPU forwarding, shape (ep, nodes) (inf: no path).

    Breadth-first search backwards from every node with a link into a rank's GPU, over the links into switches
    and NICs only, then that last link: the distances :meth:`~wideep.specs.topology.Cluster.distance_to` gives
    (which raises for an unreachable GPU).
    """
    n = len(nodes)
    into_fabric = ~is_gpu[ev]
    adj = sp.csr_matrix((np.ones(int(into_fabric.sum())), (eu[into_fabric], ev[into_fabric])), shape=(n, n))
    last = np.unique(eu[np.isin(ev, src_nodes)])  # nodes with a link into a rank's GPU
    to_last = shortest_path(adj.T, unweighted=True, indices=last)  # (last, nodes): hops, no GPU in between
    dist = np.empty((len(src_nodes), n))
    for d, node in enumerate(src_nodes):
        dist[d] = 1.0 + to_last[np.searchsorted(last, eu[ev == node])].min(axis=0, initial=np.inf)
        dist[d, node] = 0.0
        if not np.isfinite(dist[d, src_nodes]).all():
            cluster.distance_to(nodes[node])  # raises, naming the GPU that cannot reach this one
    return dist


def chunk_fractions(dist: np.ndarray, eu: np.ndarray, ev: np.ndarray, is_gpu: np.ndarray, src_nodes: np.ndarray,
                    dests: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Share of each source rank's bytes to each rank of ``dests`` on every edge, as (pair row, edge, share).

    ``dist`` (len(dests), nodes): hops to each destination. Each node splits what it forwards equally over
    its next hops (links one hop closer, into a switch or NIC or the destination itself); the flow from
    every source is pushed hop by hop until it has all arrived. Destination k's nodes and edges are block k
    of the operators, so all destinations move at once.
    """
    n_dest, n_nodes = dist.shape
    n_edges, ep = len(eu), len(src_nodes)
    dst_node = src_nodes[dests]
    hop = ((dist[:, ev] == dist[:, eu] - 1) & (~is_gpu[ev][None, :] | (ev[None, :] == dst_node[:, None]))
           & np.isfinite(dist[:, eu]))  # (dests, edges)
    k, e = np.nonzero(hop)
    fanout = np.bincount(k * n_nodes + eu[e], minlength=n_dest * n_nodes)
    share = 1.0 / fanout[k * n_nodes + eu[e]]
    leave = sp.csr_matrix((share, (k * n_nodes + eu[e], k * n_edges + e)), shape=(n_dest * n_nodes, n_dest * n_edges))
    enter = sp.csr_matrix((np.ones(len(e)), (k * n_edges + e, k * n_nodes + ev[e])),
                          shape=(n_dest * n_edges, n_dest * n_nodes))
    s, kk = np.nonzero(np.arange(ep)[:, None] != dests[None, :])  # every source but the destination itself
    rows = s * ep + dests[kk]
    visit = sp.csr_matrix((np.ones(len(s)), (rows, kk * n_nodes + src_nodes[s])), shape=(ep * ep, n_dest * n_nodes))
    hops = []  # a pair's edge is one hop away from its source on every shortest path: no entry repeats
    for _ in range(int(np.max(np.where(np.isfinite(dist), dist, 0), initial=0)) + 1):
        on_edges = visit @ leave
        if on_edges.nnz == 0:
            break
        coo = on_edges.tocoo()
        hops.append((coo.row, coo.col % n_edges, coo.data))
        visit = on_edges @ enter  # flow stops at the destination: no hop leaves it
    if not hops:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return tuple(np.concatenate(x) for x in zip(*hops))


def first_hop(fraction: sp.csr_matrix, eu: np.ndarray, src_nodes: np.ndarray, tier: np.ndarray,
              ep: int) -> np.ndarray:
    """Tier of the edge each pair's bytes leave the source GPU on (the tier carrying most of them)."""
    out = np.full((ep, ep), "", dtype=tier.dtype if len(tier) else "<U9")
    names, code = np.unique(tier, return_inverse=True)
    at = np.flatnonzero(np.isin(eu, src_nodes)[fraction.indices])  # entries on an edge out of some rank's GPU
    row = np.searchsorted(fraction.indptr, at, "right") - 1
    col = fraction.indices[at]
    leaving = eu[col] == src_nodes[row // ep]
    picked = np.full((ep, ep), -1, dtype=np.int64)
    picked[row[leaving] // ep, row[leaving] % ep] = code.reshape(-1)[col[leaving]]  # in storage order, as before
    out[picked >= 0] = names[picked[picked >= 0]]
    return out
