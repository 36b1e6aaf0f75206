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


def checked_phy2log(phy2log: np.ndarray, n_experts: int, layers: int, ep_size: int) -> np.ndarray:
    """:func:`~wideep.placement.table.validate_phy2log` against routing statistics of ``layers`` layers."""
    return validate_phy2log(phy2log, n_experts, ep_size, "--placement", "phy2log", layers=layers,
                            layers_of="the routing statistics have")


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


def choose_replicas(phy2log: np.ndarray, topk_ids: np.ndarray, src_rank: np.ndarray, ep_size: int,
                    domain_of: np.ndarray) -> np.ndarray:
    """Destination slot of every selection: a copy on the token's own GPU, else in its domain, else any.

    Among equal candidates, token t takes candidate ``t mod count`` (spreads evenly).

    Parameters
    ----------
    phy2log : ndarray, shape (layers, slots)
    topk_ids : ndarray, shape (layers, tokens, top_k)
    src_rank : ndarray, shape (tokens,)
        EP rank holding each token.
    domain_of : ndarray, shape (ep_size,)
        NVLink domain of each rank.

    Returns
    -------
    ndarray of int64, shape (layers, tokens, top_k)

    >>> choose_replicas(np.array([[0, 1, 0, 1]]), np.array([[[0, 1]]]), np.array([1]), 2, np.array([0, 1])).tolist()
    [[[2, 3]]]
    """
    domain_of = np.asarray(domain_of)
    n_experts = int(phy2log.max()) + 1
    tok = np.arange(topk_ids.shape[1])[:, None]
    out = np.empty(topk_ids.shape, dtype=np.int64)
    for layer in range(phy2log.shape[0]):
        order, start, count = replica_table(phy2log[layer], ep_size, domain_of, n_experts)
        ids = topk_ids[layer]
        src = src_rank[:, None]
        out[layer] = order[start[src, ids] + tok % count[src, ids]]
    return out


def single_copy_gpu(p2l: np.ndarray, ep_size: int, n_experts: int) -> np.ndarray | None:
    """Logical expert -> GPU when every expert of the layer has exactly one slot, else None."""
    if len(p2l) != n_experts or np.bincount(p2l, minlength=n_experts).max() != 1:
        return None
    lut = np.empty(n_experts, dtype=lut_dtype(ep_size))
    lut[p2l] = slot_gpus(len(p2l), ep_size)
    return lut


def destination_columns(phy2log: np.ndarray, ids: np.ndarray, layer: int, src: np.ndarray, ep_size: int,
                        domain_of: np.ndarray, n_experts: int) -> np.ndarray:
    """Destination rank of every selection of one layer, column layout: shape (top_k, tokens)."""
    p2l = phy2log[layer]
    lut = single_copy_gpu(p2l, ep_size, n_experts)
    if lut is not None:
        return lut[ids[layer].T]
    slots = choose_replicas(p2l[None], ids[layer][None], src, ep_size, domain_of)[0]
    return (slots.T // (len(p2l) // ep_size)).astype(lut_dtype(ep_size))


def lut_dtype(ep_size: int):
    return np.int16 if ep_size < 2**15 else np.int32
