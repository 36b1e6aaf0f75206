"""How long and how much memory a ``wideep place`` request needs, estimated before any of it runs.

Each term counts the array elements one part of the request touches and multiplies by a cost per element
measured on the 2-core machine benchmarks/ are timed on (a profile of :func:`wideep.plan.studies.plan_placement`
over DeepSeek-V3 and Kimi K2, EP 32 to 1,024, 4,096 to 32,768 tokens per layer; the estimate lands within
-10% .. +40% of those runs). A request estimated past :data:`MAX_PLACE_S` or :data:`MAX_PLACE_BYTES` is
refused at once, naming the limit and the most ``--tokens`` that fits, instead of running for many minutes
(EP 1,024 x 256 tokens of topics routing ran over 5 minutes and took 11.6 GB).

Symbols: L MoE layers, N tokens per layer (EP x tokens per GPU), k top-k, E experts, P EP size, D NVLink
domains of the EP group, S domain caps the ``topology`` algorithm tries.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from wideep.core.errors import InputError
from wideep.routing.stats import draw_seconds

MAX_PLACE_S = 180.0  # three minutes on the reference machine
MAX_PLACE_BYTES = 8e9  # a third of a 24 GB machine

COACT_S = 6e-8  # per L x N x k(k-1)/2 expert pairs counted, once (co-activation graph)
REFINE_S = 8e-8  # per L x E x D/2 domain pairs x REFINE_ROUNDS, per candidate (Kernighan-Lin swaps)
REFINE_ROUNDS = 100  # wideep.placement.partition.REFINE_MAX_STEPS: the most the swaps run
DOMAIN_CAPS = 2  # searched candidates: len(DOMAIN_SLACKS) + len(LOCALITY_SHARES) of wideep.placement.topology
SCORE_TOKEN_S, SCORE_SLOT_S = 1e-7, 2.5e-7  # per L x N x k and per L x P x E, per scoring of a placement
A2A_PAIR_S, A2A_TOKEN_S = 6e-7, 5e-8  # per L x P^2 GPU pairs and per L x N x k selections, per a2a
COACT_BYTES = 13.0  # per L' x N x k^2 while the co-activation graph is counted, L' = min(L, COACT_LAYERS)
COACT_LAYERS = 8  # wideep.placement.topology counts the pairs of this many layers at a time
A2A_BYTES = 50.0  # per L x P^2: the traffic model's pair-to-link loads


@dataclass(frozen=True)
class PlaceSize:
    """The sizes a ``wideep place`` request's cost depends on (symbols: module docstring)."""

    layers: int
    tokens: int
    top_k: int
    n_experts: int
    ep: int
    domains: int
    routing: str  # "uniform", "zipf", "topics", "lognormal" or "file" (nothing to draw)
    algorithms: tuple[str, ...]

    @property
    def optimises(self) -> bool:
        """Does the ``topology`` algorithm run its search (several domains)?"""
        return any(a in self.algorithms for a in ("topology", "auto")) and self.domains > 1


def place_seconds(size: PlaceSize) -> dict[str, float]:
    """Estimated seconds of each part: drawing the routing, placing, measuring the placements."""
    L, N, k, E, P, D = size.layers, size.tokens, size.top_k, size.n_experts, size.ep, size.domains
    routing = 0.0 if size.routing == "file" else draw_seconds(size.routing, L, N, k, E)
    score = SCORE_TOKEN_S * L * N * k + SCORE_SLOT_S * L * P * E
    a2a = A2A_PAIR_S * L * P * P + A2A_TOKEN_S * L * N * k
    search = (COACT_S * L * N * k * (k - 1) / 2 + DOMAIN_CAPS * REFINE_S * REFINE_ROUNDS * L * E * D / 2
              + (DOMAIN_CAPS + 2) * (score + a2a)) if size.optimises else 0.0
    measure = 2 * len(size.algorithms) * (score + A2A_PAIR_S * L * P * P + A2A_TOKEN_S * L * N * k)  # + objective
    return {"routing": routing, "placement": search, "metrics": measure}


def place_bytes(size: PlaceSize) -> float:
    """Estimated peak memory, bytes."""
    layers = min(size.layers, COACT_LAYERS)
    coact = COACT_BYTES * layers * size.tokens * size.top_k ** 2 if size.optimises else 0.0
    return coact + A2A_BYTES * size.layers * size.ep ** 2


def fits(size: PlaceSize) -> bool:
    return sum(place_seconds(size).values()) <= MAX_PLACE_S and place_bytes(size) <= MAX_PLACE_BYTES


def most_tokens_per_gpu(size: PlaceSize) -> int:
    """The largest tokens per GPU (0 if none) that keeps ``size`` within both limits."""
    lo, hi = 0, max(1, size.tokens // size.ep)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(replace(size, tokens=mid * size.ep)) else (lo, mid)
    return hi if fits(replace(size, tokens=hi * size.ep)) else lo


def check_place_budget(size: PlaceSize) -> None:
    """Refuse, on ``--tokens``, a request estimated past :data:`MAX_PLACE_S` or :data:`MAX_PLACE_BYTES`."""
    if fits(size):
        return
    parts = place_seconds(size)
    total, gb = sum(parts.values()), place_bytes(size) / 1e9
    what = (f"{size.layers} layers x {size.tokens:,} tokens x {size.n_experts} experts over {size.ep:,} GPUs in "
            f"{size.domains} domains would take about {total / 60:.1f} minutes (" +
            " + ".join(f"{k} {v / 60:.1f}" for k, v in parts.items()) + f") and {gb:.1f} GB")
    limit = f"over the limit of {MAX_PLACE_S / 60:.0f} minutes and {MAX_PLACE_BYTES / 1e9:.0f} GB"
    most = most_tokens_per_gpu(size)
    hint = (f"at most --tokens {most:,} here" if most else
            "even --tokens 1 is too much here: use a smaller --ep" +
            (" or one --algorithm instead of --compare" if len(size.algorithms) > 1 else ""))
    raise InputError(f"{what}, {limit}; {hint}", "--tokens")
