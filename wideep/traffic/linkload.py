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

from wideep.core import progress
from wideep.core.errors import InputError
from wideep.specs.topology import Cluster

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
    first_hop_tier : ndarray of str, shape (ep_size, ep_size)
        Tier of the link each pair leaves its source GPU on ('' on the diagonal).
    """

    ep_size: int
    fraction: sp.csr_matrix
    path_latency_s: np.ndarray
    first_hop_tier: np.ndarray

    def link_bytes(self, pair_bytes: np.ndarray) -> np.ndarray:
        """Bytes on every edge, shape (layers, edges), from ``pair_bytes`` shape (layers, ep, ep)."""
        flat = pair_bytes.reshape(pair_bytes.shape[0], -1)
        return np.asarray((self.fraction.T @ flat.T).T)


def routes(cluster: Cluster, ep_size: int) -> Routes:
    """Cached :class:`Routes` of ``cluster`` for EP group = ranks 0 .. ep_size-1."""
    if not 0 < ep_size <= min(cluster.n_gpus, MAX_EP):
        raise InputError(f"must be between 1 and {min(cluster.n_gpus, MAX_EP):,} (the cluster's GPUs, at most "
                         f"{MAX_EP:,}), got {ep_size}", "--ep")
    per = _CACHE.setdefault(cluster, {})
    if ep_size not in per:
        per[ep_size] = build_routes(cluster, ep_size)
    return per[ep_size]


def build_routes(cluster: Cluster, ep_size: int) -> Routes:
    """Per-hop ECMP fractions of every pair of the EP group over every edge."""
    g = cluster.graph
    nodes = list(g.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    edges = cluster.edges
    eu = np.array([index[u] for u, _ in edges])
    ev = np.array([index[v] for _, v in edges])
    is_gpu = np.array([g.nodes[n]["kind"] == "gpu" for n in nodes])
    lat = np.array([g.edges[e]["latency_s"] for e in edges])
    tier = cluster.edge_tier
    src_nodes = np.array([index[cluster.gpu_nodes[r]] for r in range(ep_size)])
    rows, cols, vals = [], [], []
    path_lat = np.zeros((ep_size, ep_size))
    for d in range(ep_size):
        frac = destination_fractions(cluster, nodes, eu, ev, is_gpu, src_nodes, d)  # (ep, edges) sparse
        coo = frac.tocoo()
        rows.append(coo.row * ep_size + d)
        cols.append(coo.col)
        vals.append(coo.data)
        path_lat[:, d] = frac @ lat
        progress.advance(f"routes over {cluster.name}", d + 1, ep_size)
    fraction = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(ep_size * ep_size, len(edges)))
    return Routes(ep_size, fraction, path_lat, first_hop(fraction, eu, src_nodes, tier, ep_size))


def destination_fractions(cluster: Cluster, nodes: list, eu: np.ndarray, ev: np.ndarray, is_gpu: np.ndarray,
                          src_nodes: np.ndarray, d: int) -> sp.csr_matrix:
    """Share of each source rank's bytes to rank ``d`` on every edge, shape (ep, edges)."""
    dst_node = src_nodes[d]
    dist_map = cluster.distance_to(nodes[dst_node])
    dist = np.array([dist_map.get(n, np.inf) for n in nodes])
    hop = (dist[ev] == dist[eu] - 1) & (~is_gpu[ev] | (ev == dst_node)) & np.isfinite(dist[eu])
    n_nodes, n_edges = len(nodes), len(eu)
    fanout = np.bincount(eu[hop], minlength=n_nodes)
    share = np.zeros(n_edges)
    share[hop] = 1.0 / fanout[eu[hop]]
    # node -> edge (leaving it) and edge -> node (entering) operators
    leave = sp.csr_matrix((share[hop], (eu[hop], np.flatnonzero(hop))), shape=(n_nodes, n_edges))
    enter = sp.csr_matrix((np.ones(hop.sum()), (np.flatnonzero(hop), ev[hop])), shape=(n_edges, n_nodes))
    ep = len(src_nodes)
    others = np.flatnonzero(np.arange(ep) != d)
    visit = sp.csr_matrix((np.ones(len(others)), (others, src_nodes[others])), shape=(ep, n_nodes))
    total = sp.csr_matrix((ep, n_edges))
    for _ in range(int(np.nanmax(np.where(np.isfinite(dist), dist, 0))) + 1):
        on_edges = visit @ leave
        if on_edges.nnz == 0:
            break
        total = total + on_edges
        visit = on_edges @ enter  # flow stops at the destination: no hop leaves it
    return total.tocsr()


def first_hop(fraction: sp.csr_matrix, eu: np.ndarray, src_nodes: np.ndarray, tier: np.ndarray,
              ep: int) -> np.ndarray:
    """Tier of the edge each pair's bytes leave the source GPU on (the tier carrying most of them)."""
    out = np.full((ep, ep), "", dtype=tier.dtype if len(tier) else "<U9")
    coo = fraction.tocoo()
    leaving = eu[coo.col] == src_nodes[coo.row // ep]
    out[coo.row[leaving] // ep, coo.row[leaving] % ep] = tier[coo.col[leaving]]
    return out
