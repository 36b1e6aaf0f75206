"""Token copies per GPU pair, as each transport counts them (the hot loop of the traffic model).

Three counts per MoE layer, from the destination GPU of every (token, selection):
``selection`` (source, destination GPU) one per selection; ``gpu`` one per (token, distinct destination
GPU); ``node`` (source, destination domain) one per (token, distinct destination domain). A fourth, ``all``
(:func:`all_gather_counts`), needs no routing: every token to every GPU of the group (an all-gather). Dedup
keeps the first of equal destinations in each token's sorted row (rows come sorted under the default layout;
otherwise a vectorised sorting network sorts them); counting is a CSR-to-dense tally.
:func:`pair_copies` turns them into copies per GPU pair for a transport, relays included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from wideep.routing.stats import sort_columns
from wideep.slots import relabel_domains

try:  # the kernel behind csr_matrix.toarray(), called directly to skip format checks and copies
    from scipy.sparse._sparsetools import csr_todense as _csr_todense
except ImportError:  # pragma: no cover
    _csr_todense = None

KINDS = ("selection", "gpu", "node")


@dataclass(frozen=True, eq=False)
class Group:
    """Geometry of an EP group.

    Attributes
    ----------
    domain : ndarray, shape (ep,)
        Domain of each rank, relabelled 0 .. n_domains-1 in order of first appearance.
    relay : ndarray, shape (ep, n_domains)
        The rank of domain n with the same local index as rank s (modulo the domain's size): where a
        rail-forwarding transport delivers s's scale-out copy for domain n.
    """

    ep: int
    domain: np.ndarray
    n_domains: int
    relay: np.ndarray

    @property
    def sorted_domains(self) -> bool:
        return bool(np.all(np.diff(self.domain) >= 0))


def group_of(domain_of: np.ndarray) -> Group:
    """:class:`Group` of ranks with domains ``domain_of`` (shape (ep,)).

    >>> group_of(np.array([0, 0, 1, 1])).relay.tolist()
    [[0, 2], [1, 3], [0, 2], [1, 3]]
    """
    dom = relabel_domains(domain_of)
    n = int(dom.max()) + 1
    members = [np.flatnonzero(dom == d) for d in range(n)]
    local = np.empty(len(dom), dtype=int)
    for m in members:
        local[m] = np.arange(len(m))
    relay = np.array([[members[d][local[s] % len(members[d])] for d in range(n)] for s in range(len(dom))])
    return Group(len(dom), dom, n, relay)


def tally(labels: np.ndarray, weights: np.ndarray | None, rows: int, n_labels: int) -> np.ndarray:
    """Counts of ``labels`` (flat, ``rows`` equal consecutive runs) per run, shape (rows, n_labels).

    Repeats are summed by scipy's CSR-to-dense kernel: about 1 ns per label, several times faster than
    a bincount (which first widens every label to intp).
    """
    if labels.dtype not in (np.int32, np.int64):
        labels = labels.astype(np.int32)
    data = np.ones(len(labels), np.int32) if weights is None else weights
    indptr = np.arange(0, len(labels) + 1, len(labels) // rows, dtype=labels.dtype)
    out = np.zeros((rows, n_labels), dtype=data.dtype)
    if _csr_todense is None:  # pragma: no cover - scipy without the private kernel
        return sp.csr_matrix((data, labels, indptr), shape=(rows, n_labels)).toarray()
    _csr_todense(rows, n_labels, indptr, labels, data, out)
    return out


def workspace(work: dict, name: str, n: int, dtype) -> np.ndarray:
    """A reusable flat buffer (fresh large arrays cost page faults on every layer)."""
    buf = work.get(name)
    if buf is None or len(buf) != n or buf.dtype != dtype:
        buf = work[name] = np.empty(n, dtype)
    return buf


def first_flags(keys: np.ndarray, k: int, out: np.ndarray) -> np.ndarray:
    """1 where a key differs from the previous one of its row (rows of ``k`` sorted keys, flattened), else 0."""
    np.not_equal(keys[1:], keys[:-1], out=out[1:], casting="unsafe")
    out[::k] = 1
    return out


def divided(values: np.ndarray, div: int, out: np.ndarray | None = None) -> np.ndarray:
    """``values // div`` (a shift for powers of two), into ``out`` (default a new int16 array)."""
    if div == 1:
        return values
    out = np.empty(values.shape, np.int16) if out is None else out
    if div & (div - 1) == 0:
        return np.right_shift(values, div.bit_length() - 1, out=out, casting="unsafe")
    return np.floor_divide(values, div, out=out, casting="unsafe")


def equal_blocks(group: Group) -> int:
    """GPUs per domain when domains are equal consecutive rank blocks, else 0."""
    size = int(np.bincount(group.domain).max())
    return size if np.array_equal(group.domain, np.arange(group.ep) // size) else 0


def count_sorted_experts(ids: np.ndarray, slots_per_gpu: int, group: Group, kinds: tuple[str, ...],
                         work: dict | None = None) -> dict:
    """Copies of one layer under the one-copy contiguous layout (expert e on GPU e // slots_per_gpu).

    Parameters
    ----------
    ids : ndarray, shape (tokens, top_k), int32/int64, each row sorted ascending, tokens = ep x tokens_per_gpu
        Rank r's tokens are rows r * tokens_per_gpu onward. Labels stay expert ids (no gather); the
        per-GPU dedup keys are ``id // slots_per_gpu`` and the per-expert tallies are summed to GPUs.
    work : dict, optional
        Buffers reused across layers.
    """
    ep, k = group.ep, ids.shape[1]
    flat = ids.reshape(-1)
    work = {} if work is None else work
    key = workspace(work, "key", len(flat), np.int16 if ep * slots_per_gpu < 2**15 else np.int32)
    n_experts = ep * slots_per_gpu
    to_gpu = lambda h: h.reshape(h.shape[0], ep, slots_per_gpu).sum(axis=2)  # noqa: E731
    out = {}
    if "selection" in kinds:
        out["selection"] = to_gpu(tally(flat, None, ep, n_experts))
    if "gpu" in kinds or "node" in kinds:
        gpu = divided(flat, slots_per_gpu, key)
        w = first_flags(gpu, k, workspace(work, "w", len(flat), np.int32))
        out["gpu"] = to_gpu(tally(flat, w, ep, n_experts))
    if "node" in kinds:
        gpd = equal_blocks(group)
        node = divided(flat, slots_per_gpu * gpd, key)
        w = first_flags(node, k, w)
        h = tally(flat, w, ep, n_experts)
        out["node"] = h.reshape(ep, group.n_domains, gpd * slots_per_gpu).sum(axis=2)
    return out


def count_gpus(cols: np.ndarray, group: Group, kinds: tuple[str, ...]) -> dict:
    """Copies of one layer from destination GPUs in column layout.

    Parameters
    ----------
    cols : ndarray, shape (top_k, tokens), narrow int
        Destination rank of selection j of every token (rank r's tokens from r * tokens_per_gpu on).
        Sorted per token in place with a vectorised network; tallies run over (j, rank) rows.
    """
    ep, k = group.ep, cols.shape[0]
    rows = k * ep
    out = {}
    if "selection" in kinds:
        out["selection"] = tally(cols.reshape(-1), None, rows, ep).reshape(k, ep, ep).sum(axis=0)
    if "gpu" not in kinds and "node" not in kinds:
        return out
    cols = np.stack(sort_columns(list(cols)))
    w = column_flags(cols)
    out["gpu"] = tally(cols.reshape(-1), w, rows, ep).reshape(k, ep, ep).sum(axis=0)
    if "node" in kinds:
        gpd = equal_blocks(group)
        nodes = divided(cols, gpd) if gpd else group.domain.astype(np.int16)[cols]
        if not gpd and not group.sorted_domains:
            nodes = np.stack(sort_columns(list(nodes)))
        nd = group.n_domains
        out["node"] = tally(nodes.reshape(-1), column_flags(nodes), rows, nd).reshape(k, ep, nd).sum(axis=0)
    return out


def column_flags(cols: np.ndarray) -> np.ndarray:
    """Flat int32 weights: 1 where row j of a token differs from row j-1 (cols sorted per token)."""
    w = np.empty(cols.shape, np.int32)
    w[0] = 1
    np.not_equal(cols[1:], cols[:-1], out=w[1:], casting="unsafe")
    return w.reshape(-1)


def expected_layer(share: np.ndarray, tokens_per_gpu: int, top_k: int, group: Group,
                   kinds: tuple[str, ...]) -> dict:
    """Expected copies when only loads are known: selections independent, GPU share ``share``.

    ``share`` has shape (ep,) (the same for every source rank) or (ep, ep) (row: the source rank). A token
    reaches GPU d with probability 1 - (1 - share_d)^top_k (and likewise a domain): exact for one
    selection, an approximation (no co-activation) beyond.
    """
    ep, out = group.ep, {}
    share = np.broadcast_to(share, (ep, ep))
    rows = np.ones((ep, 1)) * tokens_per_gpu
    if "selection" in kinds:
        out["selection"] = rows * top_k * share
    if "gpu" in kinds or "node" in kinds:
        out["gpu"] = rows * (1 - (1 - share) ** top_k)
    if "node" in kinds:
        dom_share = share @ np.eye(group.n_domains)[group.domain]
        out["node"] = rows * (1 - (1 - dom_share) ** top_k)
    return out


def needed(copies: str) -> tuple[str, ...]:
    """Counts a transport with ``copies`` (not ``all``: :func:`all_gather_counts`) needs from the routing."""
    return {"selection": ("selection",), "gpu": ("gpu",), "node": ("gpu", "node")}[copies]


def all_gather_counts(layers: int, ep: int, tokens_per_gpu: float) -> dict:
    """The ``all`` count: each GPU's ``tokens_per_gpu`` to every GPU of the group, its own included,
    shape (layers, ep, ep).

    >>> all_gather_counts(1, 2, 3)["all"].tolist()
    [[[3.0, 3.0], [3.0, 3.0]]]
    """
    return {"all": np.full((layers, ep, ep), float(tokens_per_gpu))}


def relay_operators(group: Group) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Sparse maps of flattened counts to flattened pairs for rail forwarding.

    ``stage1``: (s, n) node copies -> pair (s, relay[s, n]); ``stage2``: (s, d) GPU copies -> pair
    (relay[s, domain d], d). Self pairs are dropped later (they cross no link).
    """
    ep, nd = group.ep, group.n_domains
    s, n = np.divmod(np.arange(ep * nd), nd)
    stage1 = sp.csr_matrix((np.ones(ep * nd), (np.arange(ep * nd), s * ep + group.relay[s, n])),
                           shape=(ep * nd, ep * ep))
    s, d = np.divmod(np.arange(ep * ep), ep)
    stage2 = sp.csr_matrix((np.ones(ep * ep), (np.arange(ep * ep), group.relay[s, group.domain[d]] * ep + d)),
                           shape=(ep * ep, ep * ep))
    return stage1, stage2


def pair_copies(counts: dict, copies: str, forward: str, group: Group) -> np.ndarray:
    """Copies per (source, destination) GPU pair in the dispatch direction, shape (layers, ep, ep).

    ``counts`` maps kind -> (layers, ...) arrays from :func:`count_layer`. Rail forwarding splits each
    scale-out copy into source -> relay (per destination domain) and relay -> destination (per GPU).
    """
    ep = group.ep
    if copies in ("selection", "all"):
        pairs = counts[copies].astype(float)
    elif copies == "gpu" or forward == "direct":
        pairs = counts["gpu"].astype(float)
    else:
        layers = counts["gpu"].shape[0]
        stage1, stage2 = relay_operators(group)
        flat = (stage1.T @ counts["node"].reshape(layers, -1).T.astype(float)).T
        flat += (stage2.T @ counts["gpu"].reshape(layers, -1).T.astype(float)).T
        pairs = np.asarray(flat).reshape(layers, ep, ep)
    pairs = pairs.copy()
    pairs[:, np.arange(ep), np.arange(ep)] = 0.0
    return pairs


def logical_copies(counts: dict, copies: str, group: Group) -> np.ndarray:
    """Copies per GPU per layer that the transport's own benchmark counts, local ones included, (layers,).

    DeepEP low-latency: every selection; normal kernels across domains: one per (token, destination
    node), own node included; an all-gather one per (token, GPU of the group); otherwise one per (token,
    destination GPU), own GPU included.
    """
    kind = "node" if copies == "node" and group.n_domains > 1 else (copies if copies in ("selection", "all") else "gpu")
    c = counts[kind]
    return c.reshape(c.shape[0], -1).sum(axis=1) / group.ep
