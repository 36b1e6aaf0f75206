"""The placement algorithms by name: :func:`place` checks the request, runs one and times it.

- ``contiguous``: :func:`contiguous` here (the engines' default layout);
- ``balanced``: :func:`wideep.placement.table.balanced` (EPLB, hierarchical where it applies);
- ``global``: :func:`wideep.placement.table.global_policy` (EPLB's global policy);
- ``topology``: :func:`wideep.placement.topology.place_topology` (never more cross-domain copies than
  ``balanced`` in any layer, the fastest such candidate by :mod:`wideep.placement.objective`);
- ``auto``: per layer the fastest of ``balanced``, ``global`` and ``topology``'s candidates by the objective
  (predicted layer time on the busiest GPU), copies unconstrained.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from wideep.core.errors import InputError
from wideep.placement.objective import Basis
from wideep.specs.model import Model
from wideep.placement.table import Placement, balanced, ep_domains, global_policy
from wideep.slots import validate_phy2log
from wideep.placement.topology import place_topology
from wideep.specs.topology import Cluster
from wideep.slots import contiguous_phy2log

ALGORITHMS = ("contiguous", "balanced", "global", "topology", "auto")
#: The algorithms that search, weighing candidates by the objective (they take :data:`OBJECTIVE_OPTIONS`).
SEARCHING = ("topology", "auto")
#: Options of the searching algorithms: the step, and what the objective is predicted under (transport,
#: payload and weight dtypes, calibration file: :class:`wideep.placement.objective.Basis`).
OBJECTIVE_OPTIONS = ("tokens_per_gpu", "seed", "replica_rule", *Basis().options())


def check_request(model: Model, cluster: Cluster, ep_size: int, redundant: int, load: np.ndarray) -> None:
    """Options that cannot give a placement raise :class:`InputError` naming the option."""
    if not model.is_moe:
        raise InputError(f"{model.id} has no routed experts", "--model")
    if ep_size <= 0 or ep_size > cluster.n_gpus:
        raise InputError(f"must be between 1 and the {cluster.n_gpus} GPUs of the cluster, got {ep_size}", "--ep")
    if redundant < 0:
        raise InputError(f"must be >= 0, got {redundant}", "--redundant")
    slots = model.n_experts + redundant
    if slots % ep_size:
        raise InputError(f"{model.n_experts} experts + {redundant} redundant = {slots} slots do not divide over "
                         f"EP size {ep_size}", "--redundant")
    if slots // ep_size > model.n_experts:
        raise InputError(f"{slots // ep_size} slots per GPU, more than the {model.n_experts} logical experts "
                         f"of {model.id} (at most {model.n_experts * ep_size - model.n_experts} redundant at "
                         f"EP {ep_size})", "--redundant")
    if load.ndim != 2 or load.shape[1] != model.n_experts:
        raise InputError(f"statistics have {load.shape[-1]} experts, {model.id} has {model.n_experts}", "--stats")


def contiguous(stats, model: Model, cluster: Cluster, ep_size: int, redundant: int) -> np.ndarray:
    """The engines' default layout: slot ``i`` holds expert ``i mod E`` (no statistics used)."""
    return contiguous_phy2log(stats.load.shape[0], model.n_experts, model.n_experts + redundant)


def auto(stats, model: Model, cluster: Cluster, ep_size: int, redundant: int, **options) -> np.ndarray:
    """Per MoE layer the fastest of ``balanced``, ``global`` and the ``topology`` candidates (objective)."""
    return place_topology(stats, model, cluster, ep_size, redundant, with_global=True, **options)


PLACERS: dict[str, Callable[..., np.ndarray]] = {
    "contiguous": contiguous, "balanced": balanced, "global": global_policy, "topology": place_topology,
    "auto": auto}


def place(algorithm: str, stats, model: Model, cluster: Cluster, ep_size: int, redundant: int,
          **options) -> Placement:
    """Run one placement algorithm and time it.

    Parameters
    ----------
    algorithm : str
        One of :data:`ALGORITHMS`: ``contiguous``, ``balanced``, ``global``, ``topology`` or ``auto``.
    stats : wideep.routing.stats.RoutingStats
        ``load`` (layers, experts) and, for ``topology``, ``topk_ids`` (layers, tokens, top_k).
    model, cluster : Model, Cluster
    ep_size : int
        EP group size (GPUs 0 .. ep_size - 1 of the cluster).
    redundant : int
        Extra slots per layer beyond one per logical expert.
    **options
        Passed to the ``topology`` and ``auto`` algorithms (:data:`OBJECTIVE_OPTIONS`, ``slacks``, ``locality``).
    """
    if algorithm not in PLACERS:
        raise InputError(f"unknown algorithm {algorithm!r} (choose from {', '.join(ALGORITHMS)})", "--algorithm")
    load = np.asarray(stats.load, dtype=np.float64)
    check_request(model, cluster, ep_size, redundant, load)
    start = time.perf_counter()
    phy2log = PLACERS[algorithm](stats, model, cluster, ep_size, redundant, **options)
    runtime_s = time.perf_counter() - start
    phy2log = validate_phy2log(phy2log, model.n_experts, ep_size, algorithm, "phy2log")
    return Placement(phy2log, model.n_experts, ep_size, ep_domains(cluster, ep_size), algorithm, runtime_s)
