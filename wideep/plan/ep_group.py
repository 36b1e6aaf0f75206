"""An EP group's placement and what a held-out routing sample measures on it: the busiest GPU's share of a
step's selections and the distinct expert slots it reads.

Each is cached per :func:`ep_layout` rather than per system: the placements wideep runs by default weigh only
which NVLink domain each rank is in, so every system whose EP group has the same domains (the HGX systems with
8-GPU domains, the NVL72 racks) shares one placement and one set of measurements.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from wideep.core.memo import Memo
from wideep.placement.objective import Basis
from wideep.placement.placers import SEARCHING, place
from wideep.routing.files import looks_like_file, routing_from_spec
from wideep.routing.split import token_slice
from wideep.routing.stats import RoutingStats
from wideep.slots import DEFAULT_REPLICA_RULE
from wideep.specs.model import Model
from wideep.specs.topology import Cluster, load_cluster
from wideep.traffic.a2a import step_busiest_share
from wideep.traffic.touched import busiest_touched, touched_slots

SAMPLE_TOKENS = 4096  # routing tokens over the whole EP group that placement and traffic are computed from
MAX_SHARE_TOKENS = 65536  # tokens of the held-out sample whose steps measure the busiest GPU
SAMPLE_LAYERS = 4  # MoE layers synthetic routing draws (a file keeps all its own); their mean stands for all
TOUCHED_STEPS = 256  # held-out steps the experts-touched count averages over at small batches ...
TOUCHED_SAMPLE_TOKENS = 1024  # ... up to this many tokens in all (one step of 1,024 tokens or more)
TRANSPORTS = {"decode": "deepep-ll", "prefill": "deepep-normal"}  # DeepSeek's choice per phase (docs/sources.md 3)


@lru_cache(maxsize=64)
def cluster_for(topology: str, ep_size: int) -> Cluster:
    """The EP group's cluster: ``ep_size`` GPUs of a system (replicas of the group do not share links)."""
    return load_cluster(topology, ep_size, option="--ep")


def ep_layout(topology: str, ep_size: int, placement: str) -> tuple[int, ...] | str:
    """What an EP group's placement and routing measurements depend on besides the model and the options: the
    NVLink domain of each rank (systems alike in that share them), or, for a placement that weighs the links
    (:data:`~wideep.placement.placers.SEARCHING`), the topology itself."""
    if placement in SEARCHING:
        return topology
    return tuple(cluster_for(topology, ep_size).domain_of[:ep_size].tolist())


_PLACED = Memo(64)


def placed(model: Model, topology: str, ep_size: int, redundant: int, routing: str, placement: str,
           seed: int, replica_rule: str = DEFAULT_REPLICA_RULE, basis: Basis | None = None
           ) -> tuple[np.ndarray, RoutingStats]:
    """phy2log (layers, slots) from a routing sample of SAMPLE_TOKENS tokens, and that sample (cached per
    :func:`ep_layout`, so systems with the same NVLink domains share one placement); a searching algorithm
    predicts under ``basis`` (the phase's transport, dtypes and calibration; None: decode's transport, default
    dtypes)."""
    layout = ep_layout(topology, ep_size, placement)

    def compute() -> tuple[np.ndarray, RoutingStats]:
        stats = placement_sample(model, routing, seed, min(SAMPLE_LAYERS, model.moe_layers))
        opts = ({"replica_rule": replica_rule} | (basis or Basis(TRANSPORTS["decode"])).options()
                if placement in SEARCHING else {})
        return place(placement, stats, model, cluster_for(topology, ep_size), ep_size, redundant, **opts).phy2log, stats

    return _PLACED.get((model, layout, ep_size, redundant, routing, placement, seed, replica_rule, basis), compute)


@lru_cache(maxsize=16)
def placement_sample(model: Model, routing: str, seed: int, layers: int) -> RoutingStats:
    """The routing sample placements are fitted to: the first SAMPLE_TOKENS tokens of :func:`synthetic_sample`,
    or a statistics file's own tokens."""
    if looks_like_file(routing):
        return routing_from_spec(routing, model, SAMPLE_TOKENS, seed=seed, layers=layers)
    return token_slice(synthetic_sample(model, routing, seed, layers), 0, SAMPLE_TOKENS)


@lru_cache(maxsize=16)
def held_out_sample(model: Model, routing: str, seed: int, layers: int) -> RoutingStats:
    """The routing sample steps are judged on: the MAX_SHARE_TOKENS tokens of :func:`synthetic_sample` after the
    placement's, or a statistics file's own tokens (the same ones placement saw: a file is one measurement)."""
    if looks_like_file(routing):
        return placement_sample(model, routing, seed, layers)
    return token_slice(synthetic_sample(model, routing, seed, layers), SAMPLE_TOKENS, None)


@lru_cache(maxsize=16)
def synthetic_sample(model: Model, routing: str, seed: int, layers: int) -> RoutingStats:
    """One draw of SAMPLE_TOKENS + MAX_SHARE_TOKENS tokens: placement and judgement then see the same per-layer
    popularity (``zipf``'s ranking, ``topics``' experts), on different tokens."""
    return routing_from_spec(routing, model, SAMPLE_TOKENS + MAX_SHARE_TOKENS, seed=seed, layers=layers)


def busiest_share(model: Model, topology: str, ep_size: int, redundant: int, routing: str, placement: str,
                  seed: int, step_tokens: int, replica_rule: str = DEFAULT_REPLICA_RULE,
                  basis: Basis | None = None) -> float:
    """Busiest GPU's share of one step's token-expert selections, mean over the sampled MoE layers and over
    the steps of ``step_tokens`` tokens (over the whole EP group) in a held-out routing sample.

    Judged on a sample the placement was not fitted to (:func:`held_out_sample`): a step's busiest GPU sees
    both the placement's imbalance and the step's own sampling noise. Selections go where ``replica_rule``
    sends them; ``basis`` as :func:`placed` takes it.
    """
    tokens = int(min(max(step_tokens, ep_size), MAX_SHARE_TOKENS))
    return measured_share(model, topology, ep_size, redundant, routing, placement, seed, tokens, replica_rule, basis)


_SHARES = Memo(2048)


def measured_share(model: Model, topology: str, ep_size: int, redundant: int, routing: str, placement: str,
                   seed: int, tokens: int, replica_rule: str, basis: Basis | None = None) -> float:
    """:func:`busiest_share` at ``tokens`` tokens per step (whole, at least ``ep_size``), cached per
    :func:`ep_layout`."""
    def compute() -> float:
        phy2log, _ = placed(model, topology, ep_size, redundant, routing, placement, seed, replica_rule, basis)
        held_out = held_out_sample(model, routing, seed, phy2log.shape[0])
        return step_busiest_share(phy2log, held_out, ep_size, tokens, cluster_for(topology, ep_size).domain_of[:ep_size],
                                  replica_rule)

    key = (model, ep_layout(topology, ep_size, placement), ep_size, redundant, routing, placement, seed, tokens,
           replica_rule, basis)
    return _SHARES.get(key, compute)


def experts_touched(model: Model, topology: str, ep_size: int, redundant: int, routing: str, placement: str,
                    seed: int, step_tokens: int, micro_batches: int,
                    replica_rule: str = DEFAULT_REPLICA_RULE, basis: Basis | None = None) -> tuple[float, str]:
    """Distinct slots the busiest GPU reads per MoE layer in one micro-batch, and what they were counted on.

    Counted (:func:`wideep.traffic.touched.touched_slots`) on steps of step_tokens / micro_batches tokens
    of the held-out sample :func:`busiest_share` uses (at most MAX_SHARE_TOKENS: past that every slot the
    routing uses is touched anyway), mean over the sampled MoE layers and, for small steps, over up to
    TOUCHED_STEPS steps (one step's busiest GPU is a noisy draw); loads-only statistics give the expected count.
    """
    tokens = int(min(max(step_tokens, ep_size), MAX_SHARE_TOKENS))
    mb_tokens = max(1, min(tokens, round(step_tokens / micro_batches)))
    return counted_touched(model, topology, ep_size, redundant, routing, placement, seed, mb_tokens, replica_rule,
                           basis)


_TOUCHED = Memo(2048)


def counted_touched(model: Model, topology: str, ep_size: int, redundant: int, routing: str, placement: str,
                    seed: int, mb_tokens: int, replica_rule: str, basis: Basis | None = None) -> tuple[float, str]:
    """:func:`experts_touched` on steps of ``mb_tokens`` tokens of the held-out sample (mean over
    :func:`step_samples`), cached per :func:`ep_layout`."""
    def compute() -> tuple[float, str]:
        phy2log, _ = placed(model, topology, ep_size, redundant, routing, placement, seed, replica_rule, basis)
        sample = held_out_sample(model, routing, seed, phy2log.shape[0])
        domains = cluster_for(topology, ep_size).domain_of[:ep_size]
        steps = [sample] if sample.topk_ids is None else step_samples(sample, mb_tokens)
        counts = [busiest_touched(*touched_slots(phy2log, step, ep_size, mb_tokens, model.top_k, domains,
                                                 replica_rule, seed)) for step in steps]
        layers = f"{phy2log.shape[0]} MoE layers"
        source = (f"expected from the routing loads ({layers})" if sample.topk_ids is None else
                  f"counted on a held-out {routing} routing sample ({layers}, {len(steps)} steps)"
                  if not looks_like_file(routing) else f"counted on the routing file's tokens ({layers})")
        return float(np.mean(counts)), source

    key = (model, ep_layout(topology, ep_size, placement), ep_size, redundant, routing, placement, seed, mb_tokens,
           replica_rule, basis)
    return _TOUCHED.get(key, compute)


def step_samples(sample: RoutingStats, tokens: int) -> list[RoutingStats]:
    """Consecutive disjoint steps of ``tokens`` tokens from ``sample``: enough that a small step's busiest GPU
    is an average (:data:`TOUCHED_SAMPLE_TOKENS` tokens in all, at most :data:`TOUCHED_STEPS` steps), one when
    the sample holds fewer tokens (it is then resampled)."""
    n = max(1, min(TOUCHED_STEPS, TOUCHED_SAMPLE_TOKENS // tokens, sample.tokens // tokens))
    return [RoutingStats(sample.n_experts, sample.load, sample.topk_ids[:, i * tokens:(i + 1) * tokens],
                         sample.rows_sorted) for i in range(n)]


def clear_caches() -> None:
    """Forget every placement and measurement (benchmarks' cold runs, tests that count placements)."""
    for memo in (_PLACED, _SHARES, _TOUCHED):
        memo.clear()
