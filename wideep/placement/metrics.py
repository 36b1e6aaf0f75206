"""How good a placement is: balance, copies over each tier, predicted dispatch/combine time.

Counted on one decode step: ``ep_size x tokens_per_gpu`` tokens of the routing sample, EP rank ``r``
holding tokens ``[r * tokens_per_gpu, (r + 1) * tokens_per_gpu)`` (:func:`wideep.routing.stats.token_ranks`);
each selection goes to the copy the engine's replica rule picks (:func:`wideep.slots.choose_replicas`,
:data:`wideep.slots.REPLICA_RULES`; with loads only, :func:`wideep.slots.dispatch_weights`).

- balancedness: mean GPU load / max GPU load per layer (selections received), as SGLang and vLLM log it;
- busiest GPU: selections the most loaded GPU receives, mean over layers;
- cross-domain copies per token: distinct destination domains other than the token's own (a copy per
  destination node, as DeepEP's normal kernels send over RDMA); cross-GPU copies: distinct destination
  GPUs other than the token's own;
- dispatch and combine time from :func:`wideep.traffic.a2a.a2a` and their ratio to SOL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wideep.core import units
from wideep.specs.model import Model
from wideep.placement.table import Placement
from wideep.routing.stats import balancedness, per_layer_counts, sample_tokens, token_ranks
from wideep.specs.topology import Cluster
from wideep.traffic.a2a import A2AResult, a2a, gpu_loads
from wideep.slots import DEFAULT_REPLICA_RULE, check_replica_rule, choose_replicas, slot_gpus


@dataclass(frozen=True)
class PlacementMetrics:
    """Figures of merit of one placement (per decode step of ``tokens_per_gpu`` tokens per GPU).

    Attributes
    ----------
    balancedness : ndarray, shape (layers,)
        Mean over max GPU load.
    busiest_gpu_selections : float
        Token-expert selections received by the busiest GPU, mean over layers.
    cross_domain_copies_per_token, cross_gpu_copies_per_token : float or None
        Mean over layers and tokens; None when the statistics hold loads only.
    dispatch_s, combine_s, dispatch_sol_s, combine_sol_s : float or None
        Predicted phase times of one MoE layer (mean over layers), and their speed of light.
    binding_link : str or None
        Most loaded link of the dispatch phase.
    replica_rule : str
        The replica rule the figures were counted under.
    """

    algorithm: str
    balancedness: np.ndarray
    busiest_gpu_selections: float
    cross_domain_copies_per_token: float | None
    cross_gpu_copies_per_token: float | None
    dispatch_s: float | None
    combine_s: float | None
    dispatch_sol_s: float | None
    combine_sol_s: float | None
    binding_link: str | None
    runtime_s: float
    replica_rule: str = DEFAULT_REPLICA_RULE

    def summary(self) -> dict:
        """JSON-ready figures (times in microseconds)."""
        def us(x):
            return None if x is None else x / units.us

        sol = (self.dispatch_sol_s + self.combine_sol_s) if self.dispatch_sol_s is not None else None
        return {
            "algorithm": self.algorithm,
            "replica_rule": self.replica_rule,
            "balancedness_mean": float(self.balancedness.mean()),
            "balancedness_min": float(self.balancedness.min()),
            "busiest_gpu_selections": self.busiest_gpu_selections,
            "cross_domain_copies_per_token": self.cross_domain_copies_per_token,
            "cross_gpu_copies_per_token": self.cross_gpu_copies_per_token,
            "dispatch_us": us(self.dispatch_s), "combine_us": us(self.combine_s),
            "dispatch_sol_us": us(self.dispatch_sol_s), "combine_sol_us": us(self.combine_sol_s),
            "time_over_sol": None if not sol else (self.dispatch_s + self.combine_s) / sol,
            "binding_link": self.binding_link,
            "runtime_s": self.runtime_s,
        }


def distinct_remote(dest: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Distinct destinations other than the token's own, summed over tokens.

    Parameters
    ----------
    dest : ndarray of int, shape (layers, tokens, top_k)
        Destination (GPU or domain) of each selection.
    own : ndarray of int, shape (tokens,)
        The token's own GPU or domain.

    Returns
    -------
    ndarray of int, shape (layers,)

    >>> distinct_remote(np.array([[[0, 1, 1], [2, 2, 0]]]), np.array([0, 1])).tolist()
    [3]
    """
    d = np.where(dest == own[None, :, None], -1, dest)
    d.sort(axis=2)
    new = (d[..., 1:] != d[..., :-1]) & (d[..., 1:] >= 0)
    return ((d[..., 0] >= 0) + new.sum(-1)).sum(-1)


def step_destinations(phy2log: np.ndarray, topk: np.ndarray, src_rank: np.ndarray, ep_size: int,
                      ep_dom: np.ndarray, rule: str = DEFAULT_REPLICA_RULE) -> np.ndarray:
    """EP rank receiving each selection of the step, shape (layers, tokens, top_k)."""
    slot = choose_replicas(phy2log, topk, src_rank, ep_size, ep_dom, rule)
    return slot_gpus(phy2log.shape[1], ep_size)[slot]


def layer_scores(phy2log: np.ndarray, topk: np.ndarray, src_rank: np.ndarray, ep_size: int,
                 ep_dom: np.ndarray, rule: str = DEFAULT_REPLICA_RULE
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per layer: balancedness, busiest GPU selections, cross-domain and cross-GPU copies (totals).

    Returns four ndarrays of shape (layers,).
    """
    gpu = step_destinations(phy2log, topk, src_rank, ep_size, ep_dom, rule)
    gpu_load = per_layer_counts(gpu, ep_size)
    bal, peak = balancedness(gpu_load), gpu_load.max(1)
    cross_dom = distinct_remote(ep_dom[gpu], ep_dom[src_rank])
    cross_gpu = distinct_remote(gpu, src_rank)
    return bal, peak.astype(np.float64), cross_dom, cross_gpu


@dataclass(frozen=True)
class Scores:
    """Balance and copies of a placement on one set of statistics (the figures a held-out check compares).

    ``balancedness`` has shape (layers,); ``busiest_gpu_selections`` is per step of ``ep x tokens_per_gpu``
    tokens, mean over layers; the copies per token are None for loads-only statistics.
    """

    balancedness: np.ndarray
    busiest_gpu_selections: float
    cross_domain_copies_per_token: float | None
    cross_gpu_copies_per_token: float | None

    def summary(self) -> dict:
        return {"balancedness_mean": float(self.balancedness.mean()),
                "balancedness_min": float(self.balancedness.min()),
                "busiest_gpu_selections": self.busiest_gpu_selections,
                "cross_domain_copies_per_token": self.cross_domain_copies_per_token,
                "cross_gpu_copies_per_token": self.cross_gpu_copies_per_token}


def score(placement: Placement, stats, model: Model, tokens_per_gpu: int, rule: str = DEFAULT_REPLICA_RULE,
          seed: int = 0) -> Scores:
    """Balance and copies of ``placement`` for one decode step of ``tokens_per_gpu`` tokens per GPU.

    Token samples: the step's first ``ep x tokens_per_gpu`` tokens (resampled when fewer), each selection
    sent where ``rule`` sends it. Loads only: expected GPU loads (:func:`wideep.traffic.a2a.gpu_loads`).
    """
    check_replica_rule(rule)
    ep, dom = placement.ep_size, placement.domain_of
    if stats.topk_ids is not None:
        topk = np.asarray(sample_tokens(stats, ep * tokens_per_gpu, seed), dtype=np.int64)
        src = token_ranks(ep * tokens_per_gpu, ep)
        bal, peak, cd, cg = layer_scores(placement.phy2log, topk, src, ep, dom, rule)
        return Scores(bal, float(peak.mean()), float(cd.mean() / len(src)), float(cg.mean() / len(src)))
    gpu_load = np.asarray(gpu_loads(placement.phy2log, stats, ep, dom, rule), dtype=np.float64)
    # scale the sample's loads to one step of ep x tokens_per_gpu tokens
    peak = gpu_load.max(1) / np.maximum(gpu_load.sum(1), 1) * ep * tokens_per_gpu * model.top_k
    return Scores(balancedness(gpu_load), float(peak.mean()), None, None)


def evaluate(placement: Placement, stats, model: Model, cluster: Cluster, tokens_per_gpu: int,
             transport: str = "deepep-normal", dispatch_dtype: str = "fp8", combine_dtype: str = "bf16",
             seed: int = 0, replica_rule: str = DEFAULT_REPLICA_RULE, comm: A2AResult | None = None
             ) -> PlacementMetrics:
    """All metrics of ``placement`` for one decode step of ``tokens_per_gpu`` tokens per GPU, under ``replica_rule``;
    ``comm``: the traffic model's result for that same step, when the caller has it (else it runs here)."""
    s = score(placement, stats, model, tokens_per_gpu, replica_rule, seed)
    res = comm if comm is not None else a2a(model, cluster, placement.phy2log, stats, placement.ep_size, tokens_per_gpu,
                                            transport, dispatch_dtype, combine_dtype, seed, replica_rule)
    return PlacementMetrics(placement.algorithm, s.balancedness, s.busiest_gpu_selections,
                            s.cross_domain_copies_per_token, s.cross_gpu_copies_per_token,
                            res.dispatch_s, res.combine_s, res.dispatch_sol_s, res.combine_sol_s,
                            str(res.binding_link), placement.runtime_s, replica_rule)
