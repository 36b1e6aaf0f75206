"""The use cases behind ``wideep a2a`` and ``wideep place``: resolve names, build statistics, run, summarise."""

from __future__ import annotations

from wideep.core.errors import InputError
from wideep.specs.model import Model, load_model
from wideep.placement.table import Placement
from wideep.placement.files import load_placement
from wideep.placement.metrics import PlacementMetrics, evaluate
from wideep.placement.placers import place
from wideep.plan.budget import PlaceSize, check_place_budget
from wideep.routing.stats import check_seed, parse_spec
from wideep.routing.files import routing_from_spec
from wideep.specs.topology import Cluster, load_cluster
from wideep.traffic.a2a import A2AResult, a2a, check_payload_dtypes
from wideep.slots import contiguous_phy2log

MAX_PLACE_TOKENS = 2**18  # placement search and metrics over more tokens than this run for minutes


def a2a_by_name(model: str, topology: str, gpus: int | None, ep_size: int | None, tokens_per_gpu: int,
                transport: str, dispatch_dtype: str = "fp8", combine_dtype: str = "bf16",
                routing: str = "uniform", placement: str | None = None, seed: int = 0) -> A2AResult:
    """:func:`a2a` from catalog names and files, as the ``wideep a2a`` command takes them.

    ``gpus`` defaults to ``ep_size`` and ``ep_size`` to ``gpus``; the placement defaults to the engines'
    contiguous layout with one slot per expert (padded with copies of the first experts up to a multiple
    of ``ep_size``), else is read by :func:`wideep.placement.files.load_placement` (any format ``wideep
    place --out`` writes, or a ``.npy``).
    """
    m = load_model(model)
    if not m.is_moe:
        raise InputError(f"{m.id} has no routed experts", "--model")
    if gpus is None and ep_size is None:
        raise InputError("give --ep or --gpus", "--ep")
    ep = ep_size if ep_size is not None else gpus
    if ep <= 0:
        raise InputError(f"must be > 0, got {ep}", "--ep")
    cluster = load_cluster(topology, gpus if gpus is not None else ep)
    if tokens_per_gpu <= 0:
        raise InputError(f"must be > 0, got {tokens_per_gpu}", "--tokens")
    check_seed(seed)
    check_payload_dtypes(cluster, {"--dtype": dispatch_dtype, "--combine-dtype": combine_dtype})
    phy2log = None if placement is None else load_placement(placement, m, cluster, ep).phy2log
    stats = routing_from_spec(routing, m, ep * tokens_per_gpu, seed)
    if phy2log is None:
        slots = -(-m.n_experts // ep) * ep  # one slot per expert, padded with copies when ep does not divide
        phy2log = contiguous_phy2log(stats.layers, m.n_experts, slots)
    return a2a(m, cluster, phy2log, stats, ep, tokens_per_gpu, transport, dispatch_dtype, combine_dtype, seed)


def place_and_evaluate(algorithms: list[str], stats, model: Model, cluster: Cluster, ep_size: int, redundant: int,
                       tokens_per_gpu: int, transport: str = "deepep-normal", dispatch_dtype: str = "fp8",
                       combine_dtype: str = "bf16", seed: int = 0) -> list[tuple[Placement, PlacementMetrics]]:
    """Run each algorithm on the same statistics and measure it (``wideep place`` and ``--compare``)."""
    if tokens_per_gpu <= 0:
        raise InputError(f"must be > 0, got {tokens_per_gpu}", "--tokens")
    out = []
    for name in algorithms:
        opts = {"tokens_per_gpu": tokens_per_gpu, "seed": seed} if name == "topology" else {}
        p = place(name, stats, model, cluster, ep_size, redundant, **opts)
        out.append((p, evaluate(p, stats, model, cluster, tokens_per_gpu, transport, dispatch_dtype,
                                combine_dtype, seed)))
    return out


def plan_placement(model: Model, cluster: Cluster, ep_size: int, redundant: int, tokens_per_gpu: int,
                   algorithms: list[str], stats_path: str | None = None, routing: str | None = None,
                   transport: str = "deepep-normal", dispatch_dtype: str = "fp8", combine_dtype: str = "bf16",
                   seed: int = 0) -> list[tuple[Placement, PlacementMetrics]]:
    """``wideep place``: statistics from a file (``stats_path``) or a synthetic spec, then
    :func:`place_and_evaluate`. Synthetic specs sample ``ep_size x tokens_per_gpu`` tokens."""
    if (stats_path is None) == (routing is None):
        raise InputError("give exactly one of --stats FILE or --routing SPEC", "--stats")
    if tokens_per_gpu <= 0:
        raise InputError(f"must be > 0, got {tokens_per_gpu}", "--tokens")
    if not 0 < ep_size <= cluster.n_gpus:
        raise InputError(f"must be between 1 and the {cluster.n_gpus} GPUs of the cluster, got {ep_size}", "--ep")
    if ep_size * tokens_per_gpu > MAX_PLACE_TOKENS:
        raise InputError(f"EP x --tokens is at most {MAX_PLACE_TOKENS:,} tokens per layer for placement "
                         f"(the statistics of a step, not a prefill chunk), got {ep_size * tokens_per_gpu:,}",
                         "--tokens")
    check_seed(seed)
    check_payload_dtypes(cluster, {"--dtype": dispatch_dtype, "--combine-dtype": combine_dtype})
    kind = "file" if stats_path is not None or routing is None else parse_spec(routing)[0]
    check_place_budget(PlaceSize(model.moe_layers, ep_size * tokens_per_gpu, model.top_k, model.n_experts, ep_size,
                                 len(set(cluster.domain_of[:ep_size].tolist())), kind, tuple(algorithms)))
    stats = routing_from_spec(stats_path or routing, model, ep_size * tokens_per_gpu, seed)
    return place_and_evaluate(algorithms, stats, model, cluster, ep_size, redundant, tokens_per_gpu, transport,
                              dispatch_dtype, combine_dtype, seed)
