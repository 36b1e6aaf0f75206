"""The ``topology`` placement: the fastest predicted MoE layer with no more cross-domain copies than EPLB.

Steps, all vectorised over layers (Python loops run over experts, domain pairs or rounds only):

1. replica counts as EPLB gives them (extra replicas to the expert of highest load per replica); and, for
   the locality candidate (1b), a share of the redundant slots given instead to the experts whose next
   copy would keep the most selections inside their domain (:func:`locality_counts`);
2. co-activation graph of the experts (tokens selecting both, from ``topk_ids``) plus one terminal per
   NVLink domain joined to each expert by the selections coming from that domain's GPUs (token
   sources: EP rank ``r`` holds the ``r``-th equal block of the tokens, :func:`wideep.routing.stats.token_ranks`),
   counted once from every token of the statistics: the only step whose cost grows with the token count;
3. replicated experts go to distinct domains, those whose tokens use them most first;
4. single-copy experts grow into domains greedily, heaviest first, by modularity gain (co-activation
   and source affinity above what chance gives), under a per-domain load cap and slot count;
5. Kernighan-Lin style swaps between domain pairs with an exact incremental gain on that graph
   (weights: copies that cross the scale-out tier; the nvlink tier is left to step 6), the load cap held
   (steps 4 and 5: :mod:`wideep.placement.partition`);
6. inside each domain, slots pack onto its GPUs with EPLB's balanced packing;
7. per layer, among ``balanced`` and the candidates of steps 1-6 (one per domain cap, one with locality
   replicas), the one of least predicted layer time (:func:`wideep.placement.objective.layer_time`: routed
   experts of the busiest GPU + dispatch + combine, for the transport, payload and weight dtypes,
   calibration and replica rule in use, on one decode step of the statistics) among those with no more
   cross-domain copies than ``balanced``: never slower, never more copies than ``balanced`` on that step.
   The ``auto`` algorithm weighs EPLB's global policy too and drops the copy condition.
"""

from __future__ import annotations

import numpy as np

from wideep.placement.eplb import balanced_packing, replicate
from wideep.placement.objective import Basis, basis_time
from wideep.placement.partition import grow_domains, membership, refine_swaps
from wideep.placement.table import balanced, ep_domains, global_policy
from wideep.routing.stats import RoutingStats, per_layer_counts, sample_tokens, token_ranks
from wideep.slots import DEFAULT_REPLICA_RULE
from wideep.traffic.copies import tally

# Algorithm settings (tuned on benchmarks/bench_placement.py, not published figures).
#: Domain load caps tried, as mean domain load x (1 + slack) (step 7): looser caps cut more copies but
#: unbalance more; each extra slack is one more full run of steps 1-6.
DOMAIN_SLACKS = (0.05,)
#: Shares of the redundant slots placed for locality (step 1b), one candidate each. Kept because held out
#: it wins under every rule (benchmarks/bench_placement.py --locality: DeepSeek-V3 EP32, predicted layer
#: time -0.5 to -0.7% on topics:8, 0 to -8% on zipf:1.2; never worse).
LOCALITY_SHARES = (1.0,)
#: A layer leaves the candidate that is fastest over all layers only for one faster by more than this share
#: (step 7): smaller per-layer wins are sampling noise (on SGLang's DeepSeek-V3 counts they lost held out).
SWITCH_MARGIN = 0.01
#: Most tokens per GPU of the step the objective is predicted on when the caller names none.
STEP_TOKENS_PER_GPU = 128


def affinity(topk: np.ndarray, src_dom: np.ndarray, n_experts: int, n_domains: int) -> np.ndarray:
    """Selections of each expert by tokens of each source domain, shape (layers, experts, domains)."""
    layers = topk.shape[0]
    labels = (topk.astype(np.int32) * n_domains + src_dom.astype(np.int32)[None, :, None]).reshape(-1)
    counts = tally(labels, None, layers, n_experts * n_domains)
    return counts.reshape(layers, n_experts, n_domains).astype(np.float64)


def coactivation(topk: np.ndarray, n_experts: int, chunk_layers: int = 8) -> np.ndarray:
    """Tokens selecting both experts, symmetric with a zero diagonal, shape (layers, experts, experts), float32.

    A tally of the k(k-1)/2 expert pairs of every token (int32 pair ids), ``chunk_layers`` layers at a time
    into reused buffers: the only step whose cost grows with the token count, run once per placement.
    """
    layers, tokens, k = topk.shape
    a, b = np.triu_indices(k, 1)
    rows = min(chunk_layers, layers)
    pairs = np.empty((rows, len(a), tokens), dtype=np.int32)
    ones = np.ones(pairs.size, dtype=np.int32)
    c = np.empty((layers, n_experts, n_experts), dtype=np.float32)
    for lo in range(0, layers, rows):
        n = min(rows, layers - lo)
        cols = np.ascontiguousarray(topk[lo:lo + n].transpose(0, 2, 1), dtype=np.int32)   # (n, k, tokens)
        for j, (x, y) in enumerate(zip(a, b)):
            np.multiply(cols[:, x], np.int32(n_experts), out=pairs[:n, j])
            pairs[:n, j] += cols[:, y]
        flat = pairs[:n].reshape(-1)
        c[lo:lo + n] = tally(flat, ones[:flat.size], n, n_experts * n_experts).reshape(n, n_experts, n_experts)
    c += c.transpose(0, 2, 1)
    c[:, np.arange(n_experts), np.arange(n_experts)] = 0.0
    return c


def place_replicas(load: np.ndarray, count: np.ndarray, aff: np.ndarray, slots_per_domain: int) -> np.ndarray:
    """Domains of the copies of replicated experts: distinct domains, highest affinity first.

    Returns
    -------
    ndarray of int, shape (layers, experts, domains)
        Copies of each replicated expert in each domain (zero rows for single-copy experts).
    """
    layers, n_experts, n_domains = aff.shape
    has = np.zeros((layers, n_experts, n_domains), dtype=np.int64)
    multi = count > 1
    has[multi] = (count[multi] // n_domains)[:, None]
    rest = np.where(multi, count % n_domains, 0)
    used = has.sum(1)
    order = np.argsort(-np.where(multi, load, -1.0), axis=1, kind="stable")
    r = np.arange(layers)
    for i in range(int(multi.sum(1).max(initial=0))):
        e = order[:, i]
        need = rest[r, e]
        for _ in range(int(need.max(initial=0))):
            score = aff[r, e] - 1e9 * (has[r, e] > 0) - 1e12 * (used >= slots_per_domain)
            d = np.argmax(score, axis=1)
            go = need > 0
            has[r[go], e[go], d[go]] += 1
            used[r[go], d[go]] += 1
            need = need - go
    return has


def replica_loads(load: np.ndarray, aff: np.ndarray, has: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Load of one copy of each replicated expert in each domain (selections), shape (layers, experts, domains).

    Tokens from a domain holding a copy stay there; the rest spread evenly over all copies.
    """
    local = np.where(has > 0, aff, 0.0)
    remote = load - local.sum(-1)
    return np.where(has > 0, local / np.maximum(has, 1) + (remote / count)[..., None], 0.0)


def assemble(dom_e: np.ndarray, has: np.ndarray, load: np.ndarray, copy_load: np.ndarray, ep_dom: np.ndarray,
             slots_per_gpu: int) -> np.ndarray:
    """phy2log from domain assignments: each domain's slots packed onto its GPUs (EPLB's packing).

    Returns
    -------
    ndarray of int64, shape (layers, slots)
    """
    layers, n_experts, n_domains = has.shape
    per_dom = has + np.eye(n_domains, dtype=np.int64)[np.maximum(dom_e, 0)] * (dom_e >= 0)[..., None]
    item = np.repeat(np.arange(per_dom.size), per_dom.ravel())          # flat (layer, expert, domain) index
    layer, e, d = item // (n_experts * n_domains), (item // n_domains) % n_experts, item % n_domains
    order = np.argsort(layer * n_domains + d, kind="stable")
    e, d, layer = e[order], d[order], layer[order]
    weight = np.where(has[layer, e, d] > 0, copy_load[layer, e, d], load[layer, e])
    gpus_per_dom = len(ep_dom) // n_domains
    slots_per_dom = gpus_per_dom * slots_per_gpu
    pack, rank = balanced_packing(weight.reshape(layers * n_domains, slots_per_dom), gpus_per_dom)
    ranks_of = np.argsort(ep_dom, kind="stable").reshape(n_domains, gpus_per_dom)
    gpu = ranks_of[d.reshape(layers * n_domains, slots_per_dom), pack]
    slot = (gpu * slots_per_gpu + rank).reshape(layers, -1)
    phy2log = np.empty((layers, n_domains * slots_per_dom), dtype=np.int64)
    np.put_along_axis(phy2log, slot, e.reshape(layers, -1), axis=1)
    return phy2log


def locality_counts(load: np.ndarray, aff: np.ndarray, n_slots: int, share: float) -> np.ndarray:
    """Copies per expert when a ``share`` of the redundant slots go to locality, shape (layers, experts).

    The other redundant slots go as EPLB gives them (to the highest load per replica); each locality slot
    adds a copy to the expert whose next domain (in order of affinity) sends it the most selections, the
    selections that copy keeps inside their domain under a nearest-copy rule (at most one copy per domain).
    """
    layers, n_experts, n_domains = aff.shape
    extra = n_slots - n_experts
    n_loc = int(round(extra * share))
    _, count = replicate(load, n_slots - n_loc)
    ranked = -np.sort(-aff, axis=2)                                    # affinity, best domain first
    r = np.arange(layers)
    for _ in range(n_loc):
        nxt = np.take_along_axis(ranked, np.minimum(count, n_domains - 1)[..., None], 2)[..., 0]
        gain = np.where(count < n_domains, nxt, -1.0 - load / count)  # past one copy per domain: balance
        count[r, np.argmax(gain, axis=1)] += 1
    return count


def optimise_domains(load: np.ndarray, aff: np.ndarray, coact: np.ndarray, count: np.ndarray, src_share: np.ndarray,
                     top_k: int, n_slots: int, ep_dom: np.ndarray, slack: float) -> np.ndarray:
    """Steps 2-6 of the module docstring: a phy2log, shape (layers, n_slots).

    Parameters
    ----------
    load, count : ndarray, shape (layers, experts)
        Selections per expert in the statistics, and the copies each gets.
    aff, coact : ndarray
        :func:`affinity` (layers, experts, domains) and :func:`coactivation` (layers, experts, experts).
    src_share : ndarray, shape (domains,)
        Share of the tokens each domain holds.
    slack : float
        Domain load cap = mean domain load x (1 + slack).
    """
    n_domains = int(ep_dom.max()) + 1
    slots_per_domain = n_slots // n_domains
    has = place_replicas(load, count, aff, slots_per_domain)
    copy_load = replica_loads(load, aff, has, count)
    # A token whose k experts sit in one domain other than its own costs one copy, as does one split
    # evenly between its own domain and another: k x w = k^2/4 cut pairs + k/2 x w gives w = k/2.
    src_weight = top_k / 2.0
    pull = src_weight * (aff - load[..., None] * src_share)
    cap = load.sum(1) / n_domains * (1.0 + slack)
    dom_e = grow_domains(load, coact, pull, has, count, copy_load, slots_per_domain, cap)
    wt = membership(dom_e, has, count)
    dom_load = copy_load.sum(1) + np.einsum("le,led->ld", np.where(dom_e >= 0, load, 0.0),
                                            np.eye(n_domains)[np.maximum(dom_e, 0)])
    refine_swaps(dom_e, load, coact, src_weight * aff, wt, dom_load, cap)
    return assemble(dom_e, has, load, copy_load, ep_dom, n_slots // len(ep_dom))


def candidates(stats, model, ep_dom: np.ndarray, n_slots: int, slacks: tuple[float, ...],
               locality: tuple[float, ...]) -> dict[str, np.ndarray]:
    """The searched placements, {name: phy2log}: one per domain cap, then one per locality share.

    Co-activation and affinity are counted once, from every token of ``stats`` (EP rank ``r`` holding
    the ``r``-th equal block); nothing after them depends on the token count.
    """
    ep, n_domains = len(ep_dom), int(ep_dom.max()) + 1
    topk = stats.topk_ids
    src_dom = ep_dom[token_ranks(topk.shape[1], ep)]
    load = np.asarray(stats.load, dtype=np.float64)
    aff = affinity(topk, src_dom, model.n_experts, n_domains)
    coact = coactivation(topk, model.n_experts)
    share = np.bincount(src_dom, minlength=n_domains) / len(src_dom)
    _, count = replicate(load, n_slots)
    out = {f"cap +{slack:.0%}": optimise_domains(load, aff, coact, count, share, model.top_k, n_slots, ep_dom, slack)
           for slack in slacks}
    for loc in locality:
        c = locality_counts(load, aff, n_slots, loc)
        out[f"locality {loc:.0%}"] = optimise_domains(load, aff, coact, c, share, model.top_k, n_slots, ep_dom,
                                                      slacks[-1] if slacks else 0.0)
    return out


def place_topology(stats, model, cluster, ep_size: int, redundant: int, tokens_per_gpu: int | None = None,
                   seed: int = 0, replica_rule: str = DEFAULT_REPLICA_RULE, transport: str = "deepep-normal",
                   dispatch_dtype: str = "fp8", combine_dtype: str = "bf16", weights_dtype: str = "fp8",
                   calibration: str | None = None, slacks: tuple[float, ...] = DOMAIN_SLACKS,
                   locality: tuple[float, ...] | None = None, with_global: bool = False) -> np.ndarray:
    """The ``topology`` algorithm (module docstring); returns phy2log, shape (layers, slots).

    Parameters
    ----------
    tokens_per_gpu : int, optional
        Tokens per GPU of the decode step the objective is predicted for (default: the sample split evenly
        over the EP ranks, at most :data:`STEP_TOKENS_PER_GPU`).
    replica_rule, transport, dispatch_dtype, combine_dtype, weights_dtype : str
        What the objective (:func:`wideep.placement.objective.layer_time`) is predicted under.
    calibration : str, optional
        Calibration file laid over the GPU's for the objective's expert GEMMs (None: the catalog's).
    slacks : tuple of float
        Domain load caps tried (mean x (1 + slack)).
    locality : tuple of float, optional
        Shares of the redundant slots placed for locality, one candidate each (default :data:`LOCALITY_SHARES`).
    with_global : bool
        Also weigh EPLB's global policy per layer and drop the copy constraint (the ``auto`` algorithm).
    """
    ep_dom = ep_domains(cluster, ep_size)
    n_domains = int(ep_dom.max()) + 1
    n_slots = model.n_experts + redundant
    cands = {"balanced": balanced(stats, model, cluster, ep_size, redundant)}
    if with_global:
        cands["global"] = global_policy(stats, model, cluster, ep_size, redundant)
    even = np.all(np.bincount(ep_dom) == ep_size // n_domains)
    if stats.topk_ids is not None and n_domains > 1 and even:
        locality = LOCALITY_SHARES if locality is None else locality
        cands |= candidates(stats, model, ep_dom, n_slots, slacks, locality)
    if len(cands) == 1:
        return cands["balanced"]
    have = stats.topk_ids.shape[1] if stats.topk_ids is not None else ep_size * STEP_TOKENS_PER_GPU
    tpg = tokens_per_gpu or int(min(max(have // ep_size, 1), STEP_TOKENS_PER_GPU))
    step = step_stats(stats, ep_size * tpg, seed)
    basis = Basis(transport, dispatch_dtype, combine_dtype, weights_dtype, calibration)
    times = [basis_time(c, step, model, cluster, ep_size, tpg, basis, seed, replica_rule) for c in cands.values()]
    return choose_layers(list(cands.values()), times, copies_cap=not with_global)


def step_stats(stats, tokens: int, seed: int):
    """The statistics of the decode step the objective is predicted on (``tokens`` over the EP group)."""
    if stats.topk_ids is None:
        return stats
    ids = sample_tokens(stats, tokens, seed)
    return RoutingStats(stats.n_experts, per_layer_counts(ids, stats.n_experts).astype(np.float64), ids,
                        stats.rows_sorted)


def choose_layers(cands: list[np.ndarray], times: list, copies_cap: bool = True,
                  margin: float = SWITCH_MARGIN) -> np.ndarray:
    """Per layer a candidate by predicted layer time; with ``copies_cap``, only among those with no more
    cross-domain copies than the first (``balanced``).

    Every layer takes the candidate of least mean time over the layers, unless another is faster in that
    layer by more than ``margin`` (a share): per-layer switches that small do not survive held out.
    """
    total = np.stack([t.total_s for t in times])                       # (candidates, layers)
    if copies_cap and times[0].cross_domain_copies is not None:
        cross = np.stack([t.cross_domain_copies for t in times])
        total = np.where(cross <= cross[0], total, np.inf)
    layers = np.arange(total.shape[1])
    base = int(np.argmin(np.where(np.isfinite(total), total, total[0]).mean(axis=1)))
    best = np.argmin(total, axis=0)
    keep = np.isfinite(total[base]) & (total[best, layers] >= total[base] * (1.0 - margin))
    pick = np.where(keep, base, best)
    stacked = np.stack(cands)
    return stacked[pick, layers]
