"""The placement objective: predicted time of each MoE layer on its busiest GPU, in one unit (seconds).

``layer time = routed-expert time of the busiest GPU + dispatch + combine``, per MoE layer, for one decode
step of ``tokens_per_gpu`` tokens per GPU, every selection sent to the copy the engine's replica rule picks
(:mod:`wideep.slots`):

- routed-expert time: the grouped expert GEMMs (gate/up and down) over the slots of the GPU that receive a
  selection, ``received / active`` rows each, plus the per-copy kernels around them (permute, SiLU-mul,
  unpermute) or a measured MoE layer's fixed time, from the performance model
  (:func:`wideep.perf.step.expert_terms`, calibrated efficiency); the
  GPU taken is the slower of the one receiving the most selections and the one with the most active slots;
- dispatch and combine: the traffic model's per-layer phase times for the transport in use
  (:func:`wideep.traffic.a2a.a2a`: copies per GPU pair as the transport counts them, busiest link, ramp and
  fixed cost).

The two add (no overlap assumed: with two micro-batches the step hides part of the communication, which
favours neither placement). Balance (busiest GPU) and locality (copies over slow links) are so traded in
the same unit: node-limited (``balanced``) versus global balance, and replicas for balance versus for
locality.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from wideep.core import units
from wideep.perf.roofline import Calibration, load_calibration
from wideep.perf.step import expert_terms
from wideep.routing.stats import per_layer_counts, sample_tokens, token_ranks
from wideep.slots import DEFAULT_REPLICA_RULE, choose_replicas, dispatch_weights
from wideep.specs.model import Model
from wideep.specs.topology import Cluster
from wideep.traffic.a2a import A2AResult, a2a


@dataclass(frozen=True)
class Basis:
    """What the objective is predicted under besides the placement and the step: the transport, the dispatch
    and combine payload dtypes, the routed-expert weights dtype, and a calibration file laid over the GPU's
    (None: the catalog's). Hashable: a cache of placements keys on it.
    """

    transport: str = "deepep-normal"
    dispatch_dtype: str = "fp8"
    combine_dtype: str = "bf16"
    weights_dtype: str = "fp8"
    calibration: str | None = None

    def options(self) -> dict:
        """The keyword options of the searching placement algorithms that carry it."""
        return asdict(self)


@dataclass(frozen=True)
class LayerTime:
    """Predicted time of every MoE layer on its busiest GPU, seconds, arrays of shape (layers,).

    ``cross_domain_copies`` (layers,): copies of the step's tokens to NVLink domains other than their own
    (one per token and distinct remote domain); None for loads-only statistics. ``comm``: the traffic
    model's result the dispatch and combine times come from (the study reuses it for its metrics).
    """

    experts_s: np.ndarray
    dispatch_s: np.ndarray
    combine_s: np.ndarray
    transport: str
    replica_rule: str
    cross_domain_copies: np.ndarray | None = None
    comm: A2AResult | None = None

    @property
    def total_s(self) -> np.ndarray:
        return self.experts_s + self.dispatch_s + self.combine_s

    def summary(self) -> dict:
        """Means over layers in milliseconds (``layer_ms`` the objective) and the slowest layer."""
        ms = units.ms
        return {"layer_ms": float(self.total_s.mean() / ms), "layer_ms_max": float(self.total_s.max() / ms),
                "experts_ms": float(self.experts_s.mean() / ms), "dispatch_ms": float(self.dispatch_s.mean() / ms),
                "combine_ms": float(self.combine_s.mean() / ms), "transport": self.transport}


def expert_time_s(model: Model, cluster: Cluster, cal: Calibration, received: float, active: float,
                  slots_per_gpu: int, weights_dtype: str = "fp8") -> float:
    """Routed-expert time of one GPU receiving ``received`` selections spread over ``active`` of its slots, s."""
    if received <= 0:
        return 0.0
    terms = expert_terms(model, cluster.gpu, cal, weights_dtype, received, max(active, 1.0), slots_per_gpu)
    return sum(t.time_s for t in terms)


def busiest_experts_s(model: Model, cluster: Cluster, received: np.ndarray, active: np.ndarray, slots_per_gpu: int,
                      weights_dtype: str = "fp8", cal: Calibration | None = None) -> np.ndarray:
    """Routed-expert time of each layer's slowest GPU, seconds, shape (layers,).

    ``received`` and ``active`` (layers, ep): selections and active slots per GPU. The slowest GPU is taken
    as the slower of the most loaded and the one with the most active slots (time grows with both).
    """
    cal = cal or load_calibration(cluster.gpu.id)
    out = np.empty(received.shape[0])
    for layer, (a, b) in enumerate(zip(received.argmax(1), active.argmax(1))):
        out[layer] = max(expert_time_s(model, cluster, cal, received[layer, g], active[layer, g], slots_per_gpu,
                                       weights_dtype) for g in {int(a), int(b)})
    return out


def remote_domains(dom: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Distinct destination domains other than the token's own, summed over tokens, shape (layers,).

    ``dom`` (layers, tokens, top_k) destination domain of each selection, ``own`` (tokens,); a bit mask per
    token (at most 16 domains, else a sort).

    >>> remote_domains(np.array([[[0, 1, 1], [2, 2, 0]]]), np.array([0, 1])).tolist()
    [3]
    """
    n_dom = int(max(dom.max(initial=0), own.max(initial=0))) + 1
    if n_dom > 16:
        from wideep.placement.metrics import distinct_remote
        return distinct_remote(dom, own)
    one = np.uint16(1)
    bits = np.zeros(dom.shape[:2], dtype=np.uint16)
    for j in range(dom.shape[2]):
        bits |= np.left_shift(one, dom[:, :, j].astype(np.uint16))
    bits &= ~np.left_shift(one, own.astype(np.uint16))[None, :]
    return POPCOUNT16[bits].sum(axis=1, dtype=np.int64)


#: Set bits of every 16-bit mask (a domain set of up to 16 domains).
POPCOUNT16 = np.unpackbits(np.arange(2**16, dtype=">u2").view(np.uint8)).reshape(-1, 16).sum(1).astype(np.uint8)


def slot_loads(phy2log: np.ndarray, stats, model: Model, ep_size: int, domain_of: np.ndarray,
               tokens_per_gpu: int, rule: str, seed: int = 0) -> tuple:
    """(received, active) per GPU of one step, shapes (layers, ep): selections and slots receiving any;
    the cross-domain copies per layer (:func:`remote_domains`) and the destination rank of every selection
    (layers, tokens, top_k); those two are None for loads only.

    Token samples: the selections of the step's ``ep x tokens_per_gpu`` tokens where ``rule`` sends them.
    Loads only: expected selections per slot ``lam`` (every rank an equal share of each expert, split as the
    rule does), scaled to the step, and expected active slots ``1 - exp(-lam)`` each.
    """
    layers, n_slots = phy2log.shape
    spg = n_slots // ep_size
    if stats.topk_ids is not None:
        topk = np.asarray(sample_tokens(stats, ep_size * tokens_per_gpu, seed), dtype=np.int64)
        src = token_ranks(ep_size * tokens_per_gpu, ep_size)
        slot = choose_replicas(phy2log, topk, src, ep_size, domain_of, rule)
        per_slot = per_layer_counts(slot, n_slots).reshape(layers, ep_size, spg).astype(np.float64)
        gpu = slot // spg
        cross = remote_domains(domain_of[gpu], domain_of[src])
        return per_slot.sum(2), (per_slot > 0).sum(2).astype(np.float64), cross, gpu
    lam = np.empty((layers, n_slots))
    for layer in range(layers):
        w = dispatch_weights(phy2log[layer], ep_size, domain_of, model.n_experts, rule, layer).mean(0)
        lam[layer] = w * stats.load[layer, phy2log[layer]]
    lam *= ep_size * tokens_per_gpu * model.top_k / np.maximum(lam.sum(1, keepdims=True), 1e-300)
    lam = lam.reshape(layers, ep_size, spg)
    return lam.sum(2), (-np.expm1(-lam)).sum(2), None, None


def layer_time(phy2log: np.ndarray, stats, model: Model, cluster: Cluster, ep_size: int, tokens_per_gpu: int,
               transport: str = "deepep-normal", dispatch_dtype: str = "fp8", combine_dtype: str = "bf16",
               seed: int = 0, rule: str = DEFAULT_REPLICA_RULE, weights_dtype: str = "fp8",
               cal: Calibration | None = None) -> LayerTime:
    """The objective of the module docstring for placement ``phy2log`` (layers, slots) on ``stats``.

    ``transport``, the payload dtypes and ``weights_dtype`` as :class:`Basis` names them (``transport`` "": no
    all-to-all, dispatch and combine 0); ``cal`` the calibration the expert GEMMs are timed with (default: the
    catalog's for the cluster's GPU).
    """
    dom = np.asarray(cluster.domain_of)[:ep_size]
    received, active, cross, gpu = slot_loads(phy2log, stats, model, ep_size, dom, tokens_per_gpu, rule, seed)
    experts = busiest_experts_s(model, cluster, received, active, phy2log.shape[1] // ep_size, weights_dtype, cal)
    if not transport:  # the layout sends no all-to-all (MoE tensor parallelism): the experts alone
        none = np.zeros_like(experts)
        return LayerTime(experts, none, none, "", rule, cross)
    res = a2a(model, cluster, phy2log, stats, ep_size, tokens_per_gpu, transport, dispatch_dtype, combine_dtype,
              seed, rule, gpu)
    return LayerTime(experts, np.asarray(res.dispatch_layer_s), np.asarray(res.combine_layer_s), res.transport, rule,
                     cross, res)


def basis_time(phy2log: np.ndarray, stats, model: Model, cluster: Cluster, ep_size: int, tokens_per_gpu: int,
               basis: Basis, seed: int = 0, rule: str = DEFAULT_REPLICA_RULE) -> LayerTime:
    """:func:`layer_time` under ``basis`` (its calibration file laid over the GPU's)."""
    return layer_time(phy2log, stats, model, cluster, ep_size, tokens_per_gpu, basis.transport, basis.dispatch_dtype,
                      basis.combine_dtype, seed, rule, basis.weights_dtype,
                      load_calibration(cluster.gpu.id, basis.calibration))
