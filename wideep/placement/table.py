"""Expert placements: the phy2log table, its validation, and the two baseline algorithms.

The table itself (``phy2log[layer, slot]``, slot ``s`` on EP rank ``s // slots_per_gpu``) and its check live in
:mod:`wideep.slots`. EP rank ``r`` is GPU rank ``r`` of the cluster.

Algorithms (each a function of routing statistics, model, cluster, EP size and redundant slots; run
by name with :func:`wideep.placement.placers.place`):

- ``contiguous``: the engines' default, slot ``i`` holds expert ``i mod E``
  (:func:`wideep.slots.contiguous_phy2log`, run by :mod:`wideep.placement.placers`);
- ``balanced``: DeepSeek's EPLB policy as published (:mod:`wideep.placement.eplb`), balanced load only:
  hierarchical (expert groups packed onto domains) when the domains divide the groups;
- ``global``: EPLB's global policy (replicate and pack over all GPUs, domains ignored);
- ``topology``: ours (:mod:`wideep.placement.topology`), fewer copies over slow links at a balance
  close to ``balanced``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wideep.slots import relabel_domains, slot_gpus, validate_phy2log
from wideep.placement.eplb import rebalance
from wideep.core.errors import InputError
from wideep.specs.model import Model
from wideep.routing.stats import per_layer_counts
from wideep.specs.topology import Cluster


@dataclass(frozen=True, eq=False)
class Placement:
    """Where every physical expert lives.

    Attributes
    ----------
    phy2log : ndarray of int64, shape (layers, slots)
        Logical expert held by each slot; slot ``s`` is on EP rank ``s // slots_per_gpu``.
    n_experts : int
        Logical experts per layer.
    ep_size : int
        GPUs of the EP group (ranks 0 .. ep_size - 1 of the cluster).
    domain_of : ndarray of int, shape (ep_size,)
        NVLink domain of each EP rank.
    algorithm : str
        What produced it (``contiguous``, ``balanced``, ``topology`` or ``file``).
    runtime_s : float
        Seconds the algorithm ran.
    """

    phy2log: np.ndarray
    n_experts: int
    ep_size: int
    domain_of: np.ndarray
    algorithm: str = "file"
    runtime_s: float = 0.0

    @property
    def layers(self) -> int:
        return self.phy2log.shape[0]

    @property
    def slots(self) -> int:
        return self.phy2log.shape[1]

    @property
    def redundant(self) -> int:
        return self.slots - self.n_experts

    @property
    def slots_per_gpu(self) -> int:
        return self.slots // self.ep_size

    def gpu_of_slot(self) -> np.ndarray:
        """EP rank of each slot, shape (slots,)."""
        return slot_gpus(self.slots, self.ep_size)

    def replica_counts(self) -> np.ndarray:
        """Slots holding each logical expert, shape (layers, experts)."""
        return per_layer_counts(self.phy2log, self.n_experts)


def ep_domains(cluster: Cluster, ep_size: int) -> np.ndarray:
    """Domain of each EP rank, renumbered 0 .. n - 1 in order of appearance, shape (ep_size,)."""
    return relabel_domains(np.asarray(cluster.domain_of)[:ep_size])


def balanced(stats, model: Model, cluster: Cluster, ep_size: int, redundant: int) -> np.ndarray:
    """EPLB's policy: hierarchical (groups to domains) when the domains divide the groups, else global."""
    dom = ep_domains(cluster, ep_size)
    n_nodes = int(dom.max()) + 1
    even = np.all(np.bincount(dom) == ep_size // n_nodes)
    return rebalance(stats.load, model.n_experts + redundant, max(model.n_group, 1),
                     n_nodes if even else 1, ep_size)


def global_policy(stats, model: Model, cluster: Cluster, ep_size: int, redundant: int) -> np.ndarray:
    """EPLB's global policy: replicas and packing over all ``ep_size`` GPUs as one domain, groups ignored."""
    return rebalance(stats.load, model.n_experts + redundant, 1, 1, ep_size)


def from_table(phy2log: np.ndarray, model: Model, cluster: Cluster, ep_size: int, source: str,
               field: str = "physical_to_logical_map") -> Placement:
    """A placement read from a file, checked against the model and the cluster."""
    if ep_size <= 0 or ep_size > cluster.n_gpus:
        raise InputError(f"must be between 1 and the {cluster.n_gpus} GPUs of the cluster, got {ep_size}", "--ep")
    arr = validate_phy2log(phy2log, model.n_experts, ep_size, source, field, layers=model.moe_layers)
    return Placement(arr, model.n_experts, ep_size, ep_domains(cluster, ep_size), "file", 0.0)
