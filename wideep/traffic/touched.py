"""Distinct expert slots each GPU's grouped GEMM reads in one micro-batch, counted on a routing sample.

A grouped GEMM reads the weights of every local slot that receives at least one token copy, so its weight
bytes follow the distinct slots touched, not the slots held. With token samples the count is exact for the
sample: every selection goes to the slot the replica rule picks (:func:`wideep.slots.layer_slots`), and the
distinct slots per GPU are counted. With loads only, slot s receives a Poisson number of copies with mean
lambda_s (its expert's share of the selections, split over the copies as the rule does) and the expected
count is sum over the GPU's slots of 1 - exp(-lambda_s).
"""

from __future__ import annotations

import numpy as np

from wideep.core.errors import InputError
from wideep.routing.stats import RoutingStats, sample_tokens, token_ranks
from wideep.slots import (DEFAULT_REPLICA_RULE, check_replica_rule, checked_phy2log, dispatch_weights, layer_slots,
                          rank_domains)


def touched_slots(phy2log: np.ndarray, stats: RoutingStats, ep_size: int, tokens: int, top_k: int,
                  domain_of=None, rule: str = DEFAULT_REPLICA_RULE,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Selections and distinct slots touched per GPU when the EP group carries ``tokens`` tokens.

    Parameters
    ----------
    phy2log : ndarray, shape (layers, slots)
    stats : RoutingStats
        Token samples: the first ``tokens`` rows (resampled, seeded, when fewer) spread over the ranks in
        order (:func:`wideep.routing.stats.token_ranks`); loads only: the expected counts.
    tokens : int
        Tokens of one micro-batch over the whole EP group (>= 1).
    top_k : int
        Selections per token (the model's; used with loads only).
    domain_of : array_like, shape (ep_size,), optional
        NVLink domain of each rank (default: every rank its own).

    Returns
    -------
    selections, touched : ndarray of float, shape (layers, ep_size)

    >>> from wideep.routing.stats import from_topk
    >>> s = from_topk(np.array([[[0, 1], [0, 2], [0, 3]]]), 4)
    >>> sel, hit = touched_slots(np.array([[0, 1, 2, 3]]), s, 2, 3, 2)
    >>> sel.tolist(), hit.tolist()
    ([[4.0, 2.0]], [[2.0, 2.0]])
    """
    phy2log = checked_phy2log(phy2log, stats.n_experts, stats.layers, ep_size)
    check_replica_rule(rule)
    if tokens < 1:
        raise InputError(f"must be >= 1, got {tokens}", "tokens")
    dom = rank_domains(domain_of, ep_size)
    if stats.topk_ids is None:
        return expected_touched(phy2log, stats, ep_size, tokens * top_k, dom, rule)
    ids = sample_tokens(stats, tokens, seed)
    src = token_ranks(tokens, ep_size)
    spg = phy2log.shape[1] // ep_size
    selections = np.zeros((stats.layers, ep_size))
    touched = np.zeros((stats.layers, ep_size))
    for layer in range(stats.layers):
        slots = layer_slots(phy2log[layer], ids[layer], src, ep_size, dom, stats.n_experts, rule, layer)
        per_slot = np.bincount(slots.reshape(-1), minlength=phy2log.shape[1]).reshape(ep_size, spg)
        selections[layer] = per_slot.sum(axis=1)
        touched[layer] = (per_slot > 0).sum(axis=1)
    return selections, touched


def expected_touched(phy2log: np.ndarray, stats: RoutingStats, ep_size: int, n_selections: float,
                     domain_of: np.ndarray, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Loads only: expected selections and distinct slots per GPU, shape (layers, ep_size) each.

    Slot s of expert e gets lambda_s = n_selections x share(e) x (mean over ranks of the share of e's
    selections the rule sends to s); the slot is touched with probability 1 - exp(-lambda_s).
    """
    layers, n_slots = phy2log.shape
    spg = n_slots // ep_size
    selections = np.zeros((layers, ep_size))
    touched = np.zeros((layers, ep_size))
    for layer in range(layers):
        load = stats.load[layer]
        share = load / max(float(load.sum()), 1e-300)
        w = dispatch_weights(phy2log[layer], ep_size, domain_of, stats.n_experts, rule, layer).mean(axis=0)
        lam = (n_selections * share[phy2log[layer]] * w).reshape(ep_size, spg)
        selections[layer] = lam.sum(axis=1)
        touched[layer] = (-np.expm1(-lam)).sum(axis=1)
    return selections, touched


def busiest_touched(selections: np.ndarray, touched: np.ndarray) -> float:
    """Distinct slots of each layer's busiest GPU (most selections; ties: most slots), mean over layers.

    >>> busiest_touched(np.array([[3.0, 3.0, 1.0]]), np.array([[2.0, 3.0, 1.0]]))
    3.0
    """
    pick = np.lexsort((touched, selections), axis=-1)[:, -1]  # most selections, then most slots
    return float(touched[np.arange(len(pick)), pick].mean())
