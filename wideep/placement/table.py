"""Expert placements: the phy2log table, its validation, and the two baseline algorithms.

A placement maps every physical slot of every MoE layer to a logical expert: ``phy2log[layer, slot]``.
There are ``slots = experts + redundant`` slots per layer, ``slots_per_gpu = slots / ep_size`` on each
GPU, and slot ``s`` lives on EP rank ``s // slots_per_gpu`` (the layout SGLang, vLLM and TensorRT-LLM
share, REFERENCES.md section 3). EP rank ``r`` is GPU rank ``r`` of the cluster.

Algorithms (each a function of routing statistics, model, cluster, EP size and redundant slots; run
by name with :func:`wideep.placement.placers.place`):

- ``contiguous``: the engines' default, slot ``i`` holds expert ``i mod E``
  (:func:`wideep.traffic.a2a.contiguous_phy2log`, run by :mod:`wideep.placement.placers`);
- ``balanced``: DeepSeek's EPLB policy as published (:mod:`wideep.placement.eplb`), balanced load only;
- ``topology``: ours (:mod:`wideep.placement.topology`), fewer copies over slow links at a balance
  close to ``balanced``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wideep.traffic.copies import relabel_domains
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
        return np.arange(self.slots) // self.slots_per_gpu

    def replica_counts(self) -> np.ndarray:
        """Slots holding each logical expert, shape (layers, experts)."""
        return per_layer_counts(self.phy2log, self.n_experts)


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
    arr = arr.astype(np.int64, copy=False)
    if layers is not None and arr.shape[0] != layers:
        raise InputError(f"has {arr.shape[0]} layers, {layers_of} {layers} MoE layers", source, field)
    bad = np.argwhere((arr < 0) | (arr >= n_experts))
    if len(bad):
        l, s = bad[0]
        raise InputError(f"expert id {arr[l, s]} out of range 0..{n_experts - 1}", source, f"{field}[{l}][{s}]")
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


def from_table(phy2log: np.ndarray, model: Model, cluster: Cluster, ep_size: int, source: str,
               field: str = "physical_to_logical_map") -> Placement:
    """A placement read from a file, checked against the model and the cluster."""
    if ep_size <= 0 or ep_size > cluster.n_gpus:
        raise InputError(f"must be between 1 and the {cluster.n_gpus} GPUs of the cluster, got {ep_size}", "--ep")
    arr = validate_phy2log(phy2log, model.n_experts, ep_size, source, field, layers=model.moe_layers)
    return Placement(arr, model.n_experts, ep_size, ep_domains(cluster, ep_size), "file", 0.0)
