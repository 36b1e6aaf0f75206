"""Load-balanced expert placement with redundant experts, after DeepSeek's EPLB description.

Written here from the published description of the Expert Parallelism Load Balancer (deepseek-ai/EPLB
README; DeepSeek-V3 technical report, arXiv 2412.19437, section 3.4): the objective is balanced load
only, links and co-activation are ignored.

- hierarchical policy, used when the domains (nodes) divide the expert groups: pack the expert groups
  onto nodes so node loads are even (equal group counts per node); inside every node, add replicas one
  at a time to the expert with the highest load per replica; pack the replicas onto the node's GPUs
  with an equal slot count per GPU, heaviest first onto the lightest GPU with room;
- global policy otherwise: the same with one group and one node.

All steps are vectorised over layers (and nodes); Python loops run over items, never over layers.
"""

from __future__ import annotations

import numpy as np

from wideep.core.errors import InputError


def balanced_packing(weight: np.ndarray, n_packs: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack the items of every row into ``n_packs`` packs of equal item count, balancing pack weight.

    Items are taken heaviest first; each goes to the lightest pack that still has room.

    Parameters
    ----------
    weight : ndarray, shape (rows, items)
        Item weights (any unit); ``items`` must be a multiple of ``n_packs``.
    n_packs : int

    Returns
    -------
    pack : ndarray of int, shape (rows, items)
        Pack of each item.
    rank : ndarray of int, shape (rows, items)
        Position of each item inside its pack (0 .. items / n_packs - 1).

    >>> pack, rank = balanced_packing(np.array([[4.0, 3.0, 2.0, 1.0]]), 2)
    >>> pack.tolist(), rank.tolist()
    ([[0, 1, 1, 0]], [[0, 0, 1, 1]])
    """
    rows, items = weight.shape
    per_pack = items // n_packs
    if per_pack * n_packs != items:
        raise InputError(f"{items} items do not split evenly into {n_packs} packs", "placement", "slots")
    pack = np.zeros((rows, items), dtype=np.int64)
    rank = np.zeros((rows, items), dtype=np.int64)
    if per_pack == 1:
        order = np.argsort(-weight, axis=1, kind="stable")
        np.put_along_axis(pack, order, np.arange(items)[None, :].repeat(rows, 0), axis=1)
        return pack, rank
    order = np.argsort(-weight, axis=1, kind="stable")
    pack_w = np.zeros((rows, n_packs))
    pack_n = np.zeros((rows, n_packs), dtype=np.int64)
    r = np.arange(rows)
    for i in range(items):
        item = order[:, i]
        masked = np.where(pack_n < per_pack, pack_w, np.inf)
        p = np.argmin(masked, axis=1)
        pack[r, item] = p
        rank[r, item] = pack_n[r, p]
        pack_w[r, p] += weight[r, item]
        pack_n[r, p] += 1
    return pack, rank


def replicate(weight: np.ndarray, n_phy: int) -> tuple[np.ndarray, np.ndarray]:
    """Give ``n_phy - items`` extra replicas, one at a time, to the item of highest weight per replica.

    Parameters
    ----------
    weight : ndarray, shape (rows, items)
    n_phy : int
        Physical slots per row, >= items.

    Returns
    -------
    phy2item : ndarray of int, shape (rows, n_phy)
        Item held by each physical slot: slot i < items holds item i, later slots the added replicas.
    count : ndarray of int, shape (rows, items)
        Replicas of each item (>= 1).

    >>> phy2item, count = replicate(np.array([[10.0, 1.0]]), 3)
    >>> phy2item.tolist(), count.tolist()
    ([[0, 1, 0]], [[2, 1]])
    """
    rows, items = weight.shape
    phy2item = np.zeros((rows, n_phy), dtype=np.int64)
    phy2item[:, :items] = np.arange(items)
    count = np.ones((rows, items), dtype=np.int64)
    r = np.arange(rows)
    for i in range(items, n_phy):
        best = np.argmax(weight / count, axis=1)
        phy2item[:, i] = best
        count[r, best] += 1
    return phy2item, count


def rebalance(load: np.ndarray, n_slots: int, n_groups: int, n_nodes: int, n_gpus: int) -> np.ndarray:
    """Balanced placement: hierarchical when ``n_nodes`` divides ``n_groups``, else global.

    Parameters
    ----------
    load : ndarray, shape (layers, experts)
        Selections per logical expert (any non-negative weight).
    n_slots : int
        Physical slots per layer (experts + redundant), a multiple of ``n_gpus``.
    n_groups : int
        Expert groups of group-limited routing (1 when the model has none).
    n_nodes : int
        Scale-up domains the ``n_gpus`` GPUs span (equal GPU counts per domain).
    n_gpus : int
        EP size.

    Returns
    -------
    ndarray of int, shape (layers, n_slots)
        phy2log: logical expert of every slot; GPU of slot s is ``s // (n_slots // n_gpus)``.
    """
    layers, n_experts = load.shape
    hierarchical = (n_groups > 1 and n_groups % n_nodes == 0 and n_experts % n_groups == 0
                    and n_gpus % n_nodes == 0 and n_slots % n_nodes == 0)
    if not hierarchical:
        n_groups, n_nodes = 1, 1
    return _hierarchical(np.asarray(load, dtype=np.float64), n_slots, n_groups, n_nodes, n_gpus)


def _hierarchical(load: np.ndarray, n_slots: int, n_groups: int, n_nodes: int, n_gpus: int) -> np.ndarray:
    layers, n_experts = load.shape
    group_size = n_experts // n_groups
    groups_per_node = n_groups // n_nodes
    experts_per_node = n_experts // n_nodes
    slots_per_node = n_slots // n_nodes
    gpus_per_node = n_gpus // n_nodes
    # 1. groups to nodes; node-major order of logical experts ("node order")
    group_load = load.reshape(layers, n_groups, group_size).sum(-1)
    g_pack, g_rank = balanced_packing(group_load, n_nodes)
    group_pos = g_pack * groups_per_node + g_rank                      # (layers, groups)
    node_order = np.empty((layers, n_experts), dtype=np.int64)         # position -> logical id
    pos = (group_pos[:, :, None] * group_size + np.arange(group_size)).reshape(layers, n_experts)
    np.put_along_axis(node_order, pos, np.arange(n_experts)[None, :].repeat(layers, 0), axis=1)
    # 2. replicas inside each node
    node_load = np.take_along_axis(load, node_order, axis=1).reshape(layers * n_nodes, experts_per_node)
    phy2item, count = replicate(node_load, slots_per_node)
    # 3. replicas to GPUs inside each node
    replica_load = np.take_along_axis(node_load / count, phy2item, axis=1)
    pack, rank = balanced_packing(replica_load, gpus_per_node)
    slot_in_node = pack * (slots_per_node // gpus_per_node) + rank     # (layers*nodes, slots_per_node)
    item_of_slot = np.empty_like(phy2item)
    np.put_along_axis(item_of_slot, slot_in_node, phy2item, axis=1)
    # back to logical ids
    item_of_slot = item_of_slot.reshape(layers, n_nodes, slots_per_node)
    offset = (np.arange(n_nodes) * experts_per_node)[None, :, None]
    positions = (item_of_slot + offset).reshape(layers, n_slots)
    return np.take_along_axis(node_order, positions, axis=1)
