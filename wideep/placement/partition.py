"""Experts into NVLink domains by co-activation: greedy growth by modularity gain, then Kernighan-Lin swaps.

Steps 4 and 5 of the ``topology`` placement (:mod:`wideep.placement.topology`): single-copy experts grow into
domains heaviest first under a per-domain load cap and slot count, then pairs of domains swap experts while
an exact incremental gain on the co-activation graph (copies that cross the scale-out tier) is positive.
"""

from __future__ import annotations

import numpy as np

# Algorithm settings (tuned on benchmarks/bench_placement.py, not published figures).
#: Most Kernighan-Lin swap rounds (step 5): more rounds find a few more small gains, at more runtime.
REFINE_MAX_STEPS = 100
#: Best movers per side of a domain pair scored against each other per round (step 5): a wider search
#: finds better swaps, at a cost growing with its square.
REFINE_TOP_M = 8


def membership(dom_e: np.ndarray, has: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Share of each expert's copies in each domain, shape (layers, experts, domains), float32."""
    n_domains = has.shape[2]
    single = np.eye(n_domains, dtype=np.float32)[np.maximum(dom_e, 0)] * (dom_e >= 0)[..., None]
    return single + (has / np.maximum(count, 1)[..., None]).astype(np.float32)


def grow_domains(load: np.ndarray, coact: np.ndarray, pull: np.ndarray, has: np.ndarray, count: np.ndarray,
                 copy_load: np.ndarray, slots_per_domain: int, cap: np.ndarray) -> np.ndarray:
    """Greedy first assignment of single-copy experts to domains, heaviest first, by modularity gain.

    Parameters
    ----------
    pull : ndarray, shape (layers, experts, domains)
        Source-affinity edge weights to each domain's terminal, already centred on their chance value.
    cap : ndarray, shape (layers,)
        Load cap per domain (selections).

    Returns
    -------
    ndarray of int, shape (layers, experts)
        Domain of each single-copy expert, -1 for replicated ones.
    """
    layers, n_experts, n_domains = has.shape
    dom_e = np.full((layers, n_experts), -1, dtype=np.int64)
    wt = membership(dom_e, has, count)
    deg = coact.sum(-1)
    two_m = np.maximum(deg.sum(-1), 1.0)
    dom_deg = np.einsum("le,led->ld", deg, wt)
    used = has.sum(1)
    dom_load = copy_load.sum(1)
    single = count == 1
    order = np.argsort(-np.where(single, load, -1.0), axis=1, kind="stable")
    r = np.arange(layers)
    for i in range(int(single.sum(1).max())):
        e = order[:, i]
        go = single[r, e]
        le = load[r, e]
        score = np.einsum("le,led->ld", coact[r, e], wt) - deg[r, e][:, None] * dom_deg / two_m[:, None] + pull[r, e]
        room = used < slots_per_domain
        fits = room & (dom_load + le[:, None] <= cap[:, None])
        score = np.where(fits, score, np.where(room, -1e12 - dom_load, -np.inf))
        d = np.argmax(score, axis=1)
        rg, eg, dg = r[go], e[go], d[go]
        dom_e[rg, eg] = dg
        wt[rg, eg, dg] = 1.0
        used[rg, dg] += 1
        dom_load[rg, dg] += le[go]
        dom_deg[rg, dg] += deg[rg, eg]
    return dom_e


def matchings(n_domains: int) -> list[list[tuple[int, int]]]:
    """Round-robin schedule: n-1 rounds (n rounded up to even) of disjoint domain pairs covering all pairs.

    >>> matchings(4)
    [[(0, 3), (1, 2)], [(0, 2), (3, 1)], [(0, 1), (2, 3)]]
    """
    n = n_domains + n_domains % 2
    ring = list(range(1, n))
    rounds = []
    for _ in range(n - 1):
        line = [0] + ring
        pairs = [(line[i], line[n - 1 - i]) for i in range(n // 2)]
        rounds.append([(a, b) for a, b in pairs if a < n_domains and b < n_domains])
        ring = ring[-1:] + ring[:-1]
    return rounds


def refine_swaps(dom_e: np.ndarray, load: np.ndarray, coact: np.ndarray, edges: np.ndarray, wt: np.ndarray,
                 dom_load: np.ndarray, cap: np.ndarray, max_steps: int = REFINE_MAX_STEPS,
                 top_m: int = REFINE_TOP_M) -> np.ndarray:
    """Kernighan-Lin style swaps of single-copy experts between domain pairs (in place on ``dom_e``).

    Each step takes one round-robin matching of domains; for every pair (a, b) and every layer the best
    swap among the ``top_m`` best movers of each side is applied when it lowers the cut weight of the
    co-activation graph plus terminal ``edges`` (exact gain, edge between the two swapped experts
    included) and keeps both domains within ``cap`` (or no worse than before).

    Parameters
    ----------
    edges : ndarray, shape (layers, experts, domains)
        Weights of the edges from each expert to each domain's terminal (source affinity).
    wt : ndarray, shape (layers, experts, domains)
        Current membership (:func:`membership`).
    dom_load, cap : ndarray, shapes (layers, domains) and (layers,)
        Selections per domain, updated in place, and the cap.
    """
    layers, n_experts, n_domains = wt.shape
    gain_to = np.matmul(coact, wt) + edges.astype(np.float32)  # weight of each expert's edges into each domain
    sched = matchings(n_domains)
    r = np.arange(layers)
    m = min(top_m, n_experts)
    idle = 0
    for step in range(max_steps):
        moved = False
        for a, b in sched[step % len(sched)]:
            diff = gain_to[:, :, b] - gain_to[:, :, a]
            ga = np.where(dom_e == a, diff, -np.inf)
            gb = np.where(dom_e == b, -diff, -np.inf)
            ia = np.argpartition(-ga, m - 1, axis=1)[:, :m]
            ib = np.argpartition(-gb, m - 1, axis=1)[:, :m]
            va, vb = np.take_along_axis(ga, ia, 1), np.take_along_axis(gb, ib, 1)
            gain = va[:, :, None] + vb[:, None, :] - 2.0 * coact[r[:, None, None], ia[:, :, None], ib[:, None, :]]
            la, lb = np.take_along_axis(load, ia, 1), np.take_along_axis(load, ib, 1)
            shift = lb[:, None, :] - la[:, :, None]
            limit = np.maximum(cap, np.maximum(dom_load[:, a], dom_load[:, b]))[:, None, None]
            ok = (dom_load[:, a, None, None] + shift <= limit) & (dom_load[:, b, None, None] - shift <= limit)
            gain = np.where(ok & np.isfinite(gain), gain, -np.inf).reshape(layers, m * m)
            best = np.argmax(gain, axis=1)
            go = gain[r, best] > 1e-6
            if not go.any():
                continue
            moved = True
            rl = r[go]
            e, f = ia[rl, best[go] // m], ib[rl, best[go] % m]
            dom_e[rl, e], dom_e[rl, f] = b, a
            delta = coact[rl, e, :] - coact[rl, f, :]
            gain_to[rl, :, a] -= delta
            gain_to[rl, :, b] += delta
            moved_load = load[rl, f] - load[rl, e]
            dom_load[rl, a] += moved_load
            dom_load[rl, b] -= moved_load
        idle = 0 if moved else idle + 1
        if idle >= len(sched):
            break
    return dom_e
