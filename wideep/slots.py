"""The slot table (``phy2log[layer, slot]``) and the engine's replica choice, shared by traffic and placement.

A placement maps every physical slot of every MoE layer to a logical expert. There are ``slots = experts +
redundant`` slots per layer, ``slots_per_gpu = slots / ep_size`` on each GPU, and slot ``s`` lives on EP rank
``s // slots_per_gpu`` (the layout SGLang, vLLM and TensorRT-LLM share; docs/sources.md, "Placement formats").
"""

from __future__ import annotations

import numpy as np

from wideep.core.errors import InputError


def slot_gpus(n_slots: int, ep_size: int) -> np.ndarray:
    """EP rank of every slot, shape (n_slots,).

    >>> slot_gpus(6, 3).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    return np.arange(n_slots) // (n_slots // ep_size)


def validate_phy2log(phy2log: object, n_experts: int, ep_size: int, source: str = "placement",
                     field: str = "physical_to_logical_map", layers: int | None = None,
                     layers_of: str = "the model has") -> np.ndarray:
    """Check a phy2log table and return it as int64; problems raise :class:`InputError`.

    Every logical expert needs a slot in every layer, ids must lie in ``0 .. n_experts - 1`` and the
    slot count must divide evenly over ``ep_size`` GPUs. ``layers``, when given, is the row count
    required (``layers_of`` says whose: the model's MoE layers, or the routing statistics' layers).

    >>> validate_phy2log([[0, 1, 1, 0]], 2, 2).tolist()
    [[0, 1, 1, 0]]
    >>> validate_phy2log([[0, 0, 0, 0]], 2, 2)
    Traceback (most recent call last):
    wideep.core.errors.InputError: placement: physical_to_logical_map[0]: logical expert 1 has no slot
    """
    try:
        arr = np.asarray(phy2log)
    except (ValueError, TypeError):
        raise InputError("must be a rectangular [layers][slots] table of integers", source, field) from None
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"must be a [layers][slots] table, got shape {arr.shape}", source, field)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(np.isfinite(arr))
                                          and np.all(arr == np.round(arr))):
        raise InputError(f"entries must be integers (got {arr.dtype})", source, field)
    if layers is not None and arr.shape[0] != layers:
        raise InputError(f"has {arr.shape[0]} layers, {layers_of} {layers} MoE layers", source, field)
    bad = np.argwhere((arr < 0) | (arr >= n_experts))  # before the cast: huge floats and uint64 do not fit int64
    if len(bad):
        l, s = bad[0]
        raise InputError(f"expert id {arr[l, s]} out of range 0..{n_experts - 1}", source, f"{field}[{l}][{s}]")
    arr = arr.astype(np.int64, copy=False)
    if ep_size < 1:
        raise InputError(f"must be >= 1, got {ep_size}", "--ep")
    if arr.shape[1] % ep_size:
        raise InputError(f"{arr.shape[1]} slots do not divide over EP size {ep_size}", source, field)
    present = np.zeros((arr.shape[0], n_experts), dtype=bool)
    present[np.arange(arr.shape[0])[:, None], arr] = True
    missing = np.argwhere(~present)
    if len(missing):
        l, e = missing[0]
        raise InputError(f"logical expert {e} has no slot", source, f"{field}[{l}]")
    return arr


def relabel_domains(domain_of: np.ndarray) -> np.ndarray:
    """Domain of each rank renumbered 0 .. n - 1 in order of first appearance, int64, shape (ep,).

    >>> relabel_domains(np.array([5, 5, 2, 7, 2])).tolist()
    [0, 0, 1, 2, 1]
    """
    _, first, dom = np.unique(np.asarray(domain_of), return_index=True, return_inverse=True)
    remap = np.argsort(np.argsort(first))
    return remap[dom.reshape(-1)].astype(np.int64)


def contiguous_phy2log(layers: int, n_experts: int, n_slots: int) -> np.ndarray:
    """Engines' default layout: slot i holds logical expert i % n_experts; shape (layers, slots).

    >>> contiguous_phy2log(1, 4, 6).tolist()
    [[0, 1, 2, 3, 0, 1]]
    """
    if n_slots < n_experts:
        raise InputError(f"{n_slots} slots cannot hold {n_experts} experts", "--slots")
    return np.tile(np.arange(n_slots, dtype=np.int32) % n_experts, (layers, 1))


def rank_domains(domain_of, ep_size: int) -> np.ndarray:
    """NVLink domain of each of the first ``ep_size`` ranks; every rank its own when ``domain_of`` is None."""
    return np.arange(ep_size) if domain_of is None else np.asarray(domain_of)[:ep_size]


def checked_phy2log(phy2log: np.ndarray, n_experts: int, layers: int, ep_size: int) -> np.ndarray:
    """:func:`~wideep.placement.table.validate_phy2log` against routing statistics of ``layers`` layers."""
    return validate_phy2log(phy2log, n_experts, ep_size, "--placement", "phy2log", layers=layers,
                            layers_of="the routing statistics have")


#: The replica rules: which copy of a replicated expert a selection goes to (docs/sources.md section 4).
#: ``sglang`` (the default): SGLang's static dispatch; ``vllm``: vLLM's EPLB mapping; ``trtllm``:
#: TensorRT-LLM's load balancer routing; ``nearest``: wideep's own (own GPU, else own domain, else any).
REPLICA_RULES = ("sglang", "vllm", "trtllm", "nearest")
DEFAULT_REPLICA_RULE = "sglang"
#: A few words on each rule, for help texts and reports.
RULE_WORDS = {"sglang": "SGLang's static dispatch: own GPU, else own node, else a fixed fair pick per GPU",
              "vllm": "vLLM's EPLB: any copy, by a hash of the token index",
              "trtllm": "TensorRT-LLM's load balancer: round robin over every copy",
              "nearest": "own GPU, else own NVLink domain, else any, spread per token"}
#: Seed of SGLang's fair pick (``compute_logical_to_rank_dispatch_physical_map(..., seed=42)``); wideep draws
#: its own numbers from it, so the table has SGLang's counts and distribution, not its exact draw.
SGLANG_SEED = 42
#: Selections per thread block of TensorRT-LLM's ``moeComputeRouteKernel`` (256 threads x 4 items); the
#: round robin restarts in every block, offset by the block index and the EP rank.
TRTLLM_BLOCK = 1024


def check_replica_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`REPLICA_RULES`, else InputError on ``--replica-rule``."""
    if rule not in REPLICA_RULES:
        raise InputError(f"unknown replica rule {rule!r} (choose from {', '.join(REPLICA_RULES)})",
                         "--replica-rule")
    return rule


def expert_slots(p2l: np.ndarray, n_experts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, start, count) of one layer: expert e's slots, ascending, are ``order[start[e]:start[e] + count[e]]``.

    >>> [a.tolist() for a in expert_slots(np.array([1, 0, 1]), 2)]
    [[1, 0, 2], [0, 1], [1, 2]]
    """
    order = np.argsort(p2l, kind="stable")
    count = np.bincount(p2l, minlength=n_experts)
    return order, np.cumsum(count) - count, count


def replica_table(p2l: np.ndarray, ep_size: int, domain_of: np.ndarray, n_experts: int):
    """For one layer: (slot order, start, count) so that the slots rank r may use for expert e are
    ``order[start[r, e] : start[r, e] + count[r, e]]``: those on r, else those in r's domain, else all."""
    n_slots = len(p2l)
    gpu = slot_gpus(n_slots, ep_size)
    n_dom = int(domain_of.max()) + 1
    dom = domain_of[gpu]
    order = np.lexsort((gpu, dom, p2l))
    e_s = p2l[order].astype(np.int64)
    key_dom = e_s * n_dom + dom[order]
    key_gpu = key_dom * ep_size + gpu[order]
    e = np.arange(n_experts)[None, :]
    r = np.arange(ep_size)[:, None]
    want_dom = e * n_dom + domain_of[r]
    want_gpu = want_dom * ep_size + r
    spans = [(np.searchsorted(k, w, "left"), np.searchsorted(k, w, "right"))
             for k, w in ((key_gpu, want_gpu), (key_dom, want_dom), (e_s, np.broadcast_to(e, want_dom.shape)))]
    start, stop = spans[2]
    for lo, hi in spans[1::-1]:  # domain, then GPU, override when they have a replica
        start, stop = np.where(hi > lo, lo, start), np.where(hi > lo, hi, stop)
    return order, start, stop - start


def sglang_table(p2l: np.ndarray, ep_size: int, domain_of: np.ndarray, n_experts: int, layer: int = 0) -> np.ndarray:
    """:func:`build_sglang_table`, remembered for the last :data:`TABLE_CACHE` layers asked (placement search and
    traffic model ask for the same table several times). Read only."""
    key = (np.asarray(p2l).tobytes(), ep_size, np.asarray(domain_of).tobytes(), n_experts, layer)
    table = _TABLES.get(key)
    if table is None:
        if len(_TABLES) >= TABLE_CACHE:
            _TABLES.pop(next(iter(_TABLES)))
        table = _TABLES[key] = build_sglang_table(p2l, ep_size, domain_of, n_experts, layer)
        table.flags.writeable = False
    return table


#: Tables :func:`sglang_table` keeps (a few placements of a 61-layer model).
TABLE_CACHE = 512
_TABLES: dict = {}


def build_sglang_table(p2l: np.ndarray, ep_size: int, domain_of: np.ndarray, n_experts: int,
                       layer: int = 0) -> np.ndarray:
    """SGLang's static dispatch table of one layer: the slot every rank sends expert e to, shape (ep_size, n_experts).

    As ``compute_logical_to_rank_dispatch_physical_map`` (sglang/srt/eplb/expert_location.py) builds it: a
    copy on the rank's own GPU (the lowest-numbered if several); else, when some but not all copies are in
    the rank's domain (node), the lowest-numbered of those; else a fair pick: the ranks still without a
    copy are dealt the copies evenly (each copy ``m // c`` or ``m // c + 1`` of the ``m`` ranks, a random
    subset of copies taking the extra one, in random order), seeded by :data:`SGLANG_SEED` and ``layer``.
    A fixed choice per rank, not per token.

    >>> sglang_table(np.array([0, 1, 0, 2]), 2, np.array([0, 1]), 3).tolist()  # expert 0 on both GPUs
    [[0, 1, 3], [2, 1, 3]]
    """
    n_slots = len(p2l)
    domain_of = np.asarray(domain_of)
    gpu = slot_gpus(n_slots, ep_size)
    dom = domain_of[gpu]
    n_dom = int(domain_of.max()) + 1
    slot = np.arange(n_slots)
    big = np.iinfo(np.int64).max
    own = np.full((ep_size, n_experts), big, dtype=np.int64)
    np.minimum.at(own, (gpu, p2l), slot)
    node_first = np.full((n_dom, n_experts), big, dtype=np.int64)
    np.minimum.at(node_first, (dom, p2l), slot)
    node_count = np.zeros((n_dom, n_experts), dtype=np.int64)
    np.add.at(node_count, (dom, p2l), 1)
    order, start, count = expert_slots(p2l, n_experts)
    in_node = node_count[domain_of]                                    # (ep, E) copies in the rank's node
    node_ok = (in_node > 0) & (in_node < count[None, :])
    table = np.where(own < big, own, np.where(node_ok, node_first[domain_of], -1))
    # fair pick for the rest: ranks in random order take a random permutation of the copies, cyclically
    rng = np.random.default_rng([SGLANG_SEED, layer])
    todo = (table < 0).T                                               # (E, ep)
    keys = np.where(todo, rng.random(todo.shape), np.inf)
    pos = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1)  # place of each waiting rank
    shuffled = np.lexsort((rng.random(n_slots), p2l))                  # each expert's copies, random order
    pick = shuffled[start[:, None] + pos % np.maximum(count, 1)[:, None]]
    return np.where(todo, pick, table.T).T


def local_index(src: np.ndarray) -> np.ndarray:
    """Index of every token among its own rank's tokens, in token order, shape (tokens,).

    >>> local_index(np.array([0, 0, 1, 1, 1])).tolist()
    [0, 1, 0, 1, 2]
    """
    src = np.asarray(src)
    if np.all(src[1:] >= src[:-1]):
        return np.arange(len(src)) - np.searchsorted(src, src, "left")
    order = np.argsort(src, kind="stable")
    out = np.empty(len(src), dtype=np.int64)
    out[order] = local_index(src[order])
    return out


def token_hash(index: np.ndarray) -> np.ndarray:
    """A fixed 64-bit mix of each token index (splitmix64's finaliser), uint64; the stand-in for vLLM's hash.

    >>> (token_hash(np.arange(4)) % 2).tolist()
    [1, 1, 0, 1]
    """
    x = np.asarray(index).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def group_rank(key: np.ndarray) -> np.ndarray:
    """For every entry, how many earlier entries share its key, shape of ``key`` (1-D).

    >>> group_rank(np.array([5, 3, 5, 5, 3])).tolist()
    [0, 0, 1, 2, 1]
    """
    order = np.argsort(key, kind="stable")
    k = key[order]
    first = np.r_[True, k[1:] != k[:-1]]
    run_start = np.maximum.accumulate(np.where(first, np.arange(len(k)), 0))
    out = np.empty(len(key), dtype=np.int64)
    out[order] = np.arange(len(k)) - run_start
    return out


def layer_slots(p2l: np.ndarray, ids: np.ndarray, src: np.ndarray, ep_size: int, domain_of: np.ndarray,
                n_experts: int, rule: str = DEFAULT_REPLICA_RULE, layer: int = 0) -> np.ndarray:
    """Destination slot of every selection of one layer under ``rule``, int64, shape (tokens, top_k).

    - ``nearest``: a copy on the token's GPU, else in its domain, else any; token t (index in the step)
      takes candidate ``t mod count``;
    - ``sglang``: :func:`sglang_table` (one fixed copy per (rank, expert));
    - ``vllm``: copy ``hash(i) mod count`` of all copies in slot order, i the token's index on its rank
      (vLLM PR #40810; the earlier position variant, PR #24573, depends on the column order of the
      top-k ids, which routing statistics do not keep);
    - ``trtllm``: round robin per expert: the n-th selection of expert e in a block of
      :data:`TRTLLM_BLOCK` selections of a rank (flat order) takes copy ``(block + rank + n) mod count``.

    >>> p2l, ids, src = np.array([0, 1, 0, 2]), np.zeros((4, 1), int), np.array([0, 0, 1, 1])
    >>> layer_slots(p2l, ids, src, 2, np.array([0, 1]), 3, "trtllm")[:, 0].tolist()
    [0, 2, 2, 0]
    """
    check_replica_rule(rule)
    domain_of = np.asarray(domain_of)
    ids = np.asarray(ids, dtype=np.int64)
    src = np.asarray(src, dtype=np.int64)
    if rule == "nearest":
        order, start, count = replica_table(p2l, ep_size, domain_of, n_experts)
        tok = np.arange(ids.shape[0])[:, None]
        return order[start[src[:, None], ids] + tok % count[src[:, None], ids]]
    if rule == "sglang":
        return sglang_table(p2l, ep_size, domain_of, n_experts, layer)[src[:, None], ids]
    order, start, count = expert_slots(p2l, n_experts)
    c = count[ids]
    if rule == "vllm":
        pick = (token_hash(local_index(src))[:, None] % c.astype(np.uint64)).astype(np.int64)
        return order[start[ids] + pick]
    k = ids.shape[1]
    flat = local_index(src)[:, None] * k + np.arange(k)[None, :]       # position in the rank's selections
    block = flat // TRTLLM_BLOCK
    n = np.zeros(ids.shape, dtype=np.int64)
    multi = c > 1
    if multi.any():
        key = ((src[:, None] * (int(block.max()) + 1) + block) * n_experts + ids)[multi]
        n[multi] = group_rank(key)
    return order[start[ids] + (block + src[:, None] + n) % c]


def choose_replicas(phy2log: np.ndarray, topk_ids: np.ndarray, src_rank: np.ndarray, ep_size: int,
                    domain_of: np.ndarray, rule: str = DEFAULT_REPLICA_RULE) -> np.ndarray:
    """Destination slot of every selection under a replica rule (:func:`layer_slots`), layer by layer.

    Parameters
    ----------
    phy2log : ndarray, shape (layers, slots)
    topk_ids : ndarray, shape (layers, tokens, top_k)
    src_rank : ndarray, shape (tokens,)
        EP rank holding each token.
    domain_of : ndarray, shape (ep_size,)
        NVLink domain of each rank.
    rule : str
        One of :data:`REPLICA_RULES`.

    Returns
    -------
    ndarray of int64, shape (layers, tokens, top_k)

    >>> p, ids = np.array([[0, 1, 0, 1]]), np.array([[[0, 1]]])
    >>> choose_replicas(p, ids, np.array([1]), 2, np.array([0, 1]), "nearest").tolist()
    [[[2, 3]]]
    """
    domain_of = np.asarray(domain_of)
    n_experts = int(phy2log.max()) + 1
    out = np.empty(topk_ids.shape, dtype=np.int64)
    for layer in range(phy2log.shape[0]):
        out[layer] = layer_slots(phy2log[layer], topk_ids[layer], src_rank, ep_size, domain_of, n_experts,
                                 rule, layer)
    return out


def dispatch_weights(p2l: np.ndarray, ep_size: int, domain_of: np.ndarray, n_experts: int,
                     rule: str = DEFAULT_REPLICA_RULE, layer: int = 0) -> np.ndarray:
    """Share of rank r's selections of expert ``p2l[s]`` that slot s receives, shape (ep_size, slots).

    What the loads-only model uses: ``nearest`` spreads evenly over the rank's candidates, ``sglang``
    sends everything to the rank's table entry, ``vllm`` and ``trtllm`` spread evenly over every copy.
    Each rank's row sums to 1 over the slots of any one expert.

    >>> dispatch_weights(np.array([0, 1, 0, 2]), 2, np.array([0, 1]), 3, "vllm").tolist()
    [[0.5, 1.0, 0.5, 1.0], [0.5, 1.0, 0.5, 1.0]]
    """
    check_replica_rule(rule)
    n_slots = len(p2l)
    domain_of = np.asarray(domain_of)
    rows = np.arange(ep_size)[:, None]
    out = np.zeros((ep_size, n_slots))
    if rule == "sglang":
        out[rows, sglang_table(p2l, ep_size, domain_of, n_experts, layer)] = 1.0
        return out
    if rule == "nearest":
        order, start, count = replica_table(p2l, ep_size, domain_of, n_experts)
        s_rank = np.argsort(order)                                       # position of each slot in order
        lo = start[:, p2l]                                               # (ep, slots)
        inside = (s_rank[None, :] >= lo) & (s_rank[None, :] < lo + count[:, p2l])
        return np.where(inside, 1.0 / count[:, p2l], 0.0)
    count = np.bincount(p2l, minlength=n_experts)
    return np.broadcast_to(1.0 / count[p2l], (ep_size, n_slots)).copy()


def single_copy_gpu(p2l: np.ndarray, ep_size: int, n_experts: int) -> np.ndarray | None:
    """Logical expert -> GPU when every expert of the layer has exactly one slot, else None."""
    if len(p2l) != n_experts or np.bincount(p2l, minlength=n_experts).max() != 1:
        return None
    lut = np.empty(n_experts, dtype=lut_dtype(ep_size))
    lut[p2l] = slot_gpus(len(p2l), ep_size)
    return lut


def destination_ranks(phy2log: np.ndarray, ids: np.ndarray, layer: int, src: np.ndarray, ep_size: int,
                      domain_of: np.ndarray, n_experts: int, rule: str = DEFAULT_REPLICA_RULE,
                      columns: bool = False) -> np.ndarray:
    """Destination rank of every selection of one layer, shape (tokens, top_k), or (top_k, tokens) with ``columns``.

    With one copy per expert every rule gives the same destinations (a lookup table, no replica choice);
    so does ``sglang`` per (source rank, expert) (its table's slots as GPUs).
    """
    p2l, sel = phy2log[layer], (ids[layer].T if columns else ids[layer])
    lut = single_copy_gpu(p2l, ep_size, n_experts)
    if lut is not None:
        return lut[sel]
    if rule == "sglang":
        table = sglang_table(p2l, ep_size, np.asarray(domain_of), n_experts, layer) // (len(p2l) // ep_size)
        row = np.asarray(src, dtype=np.int32 if ep_size * n_experts < 2**31 else np.int64) * n_experts
        return np.take(table.astype(lut_dtype(ep_size)).ravel(), sel + (row[None, :] if columns else row[:, None]))
    slots = layer_slots(p2l, ids[layer], src, ep_size, domain_of, n_experts, rule, layer)
    return ((slots.T if columns else slots) // (len(p2l) // ep_size)).astype(lut_dtype(ep_size))


def lut_dtype(ep_size: int):
    return np.int16 if ep_size < 2**15 else np.int32
