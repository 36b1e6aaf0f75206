"""The use cases behind ``wideep a2a`` and ``wideep place``: resolve names, build statistics, run, summarise."""

from __future__ import annotations

from dataclasses import dataclass, field

from wideep.core import units
from wideep.core.errors import InputError
from wideep.perf.roofline import load_calibration
from wideep.specs.model import Model, load_model
from wideep.placement.table import Placement
from wideep.placement.files import load_placement
from wideep.placement.metrics import PlacementMetrics, Scores, evaluate, score
from wideep.placement.objective import Basis, LayerTime, basis_time
from wideep.placement.placers import ALGORITHMS, SEARCHING, place
from wideep.plan.budget import PlaceSize, check_place_budget
from wideep.routing.stats import RoutingStats, check_seed, parse_spec, resolve_auto
from wideep.routing.files import routing_from_spec
from wideep.routing.split import held_out_split, load_all
from wideep.specs.topology import Cluster, load_cluster
from wideep.traffic.a2a import A2AResult, a2a, check_payload_dtypes
from wideep.slots import DEFAULT_REPLICA_RULE, check_replica_rule, contiguous_phy2log

MAX_PLACE_TOKENS = 2**18  # placement search and metrics over more tokens than this run for minutes


def a2a_by_name(model: str, topology: str, gpus: int | None, ep_size: int | None, tokens_per_gpu: int,
                transport: str, dispatch_dtype: str = "fp8", combine_dtype: str = "bf16",
                routing: str = "auto", placement: str | None = None, seed: int = 0,
                replica_rule: str = DEFAULT_REPLICA_RULE) -> A2AResult:
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
    check_replica_rule(replica_rule)
    check_payload_dtypes(cluster, {"--dtype": dispatch_dtype, "--combine-dtype": combine_dtype})
    phy2log = None if placement is None else load_placement(placement, m, cluster, ep).phy2log
    stats = routing_from_spec(routing, m, ep * tokens_per_gpu, seed)
    if phy2log is None:
        slots = -(-m.n_experts // ep) * ep  # one slot per expert, padded with copies when ep does not divide
        phy2log = contiguous_phy2log(stats.layers, m.n_experts, slots)
    return a2a(m, cluster, phy2log, stats, ep, tokens_per_gpu, transport, dispatch_dtype, combine_dtype, seed,
               replica_rule)


def place_and_evaluate(algorithms: list[str], stats, model: Model, cluster: Cluster, ep_size: int, redundant: int,
                       tokens_per_gpu: int, basis: Basis = Basis(), seed: int = 0,
                       replica_rule: str = DEFAULT_REPLICA_RULE) -> list[tuple[Placement, PlacementMetrics, LayerTime]]:
    """Run each algorithm on the same statistics and measure it (``wideep place`` and ``--compare``): its
    metrics and its predicted layer time under ``basis`` (:func:`wideep.placement.objective.layer_time`),
    from one run of the traffic model each."""
    if tokens_per_gpu <= 0:
        raise InputError(f"must be > 0, got {tokens_per_gpu}", "--tokens")
    check_replica_rule(replica_rule)
    out = []
    for name in algorithms:
        opts = ({"tokens_per_gpu": tokens_per_gpu, "seed": seed, "replica_rule": replica_rule} | basis.options()
                if name in SEARCHING else {})
        p = place(name, stats, model, cluster, ep_size, redundant, **opts)
        t = predict(p, stats, model, cluster, tokens_per_gpu, basis, seed, replica_rule)
        out.append((p, evaluate(p, stats, model, cluster, tokens_per_gpu, basis.transport, basis.dispatch_dtype,
                                basis.combine_dtype, seed, replica_rule, t.comm), t))
    return out


def predict(p: Placement, stats, model: Model, cluster: Cluster, tokens_per_gpu: int, basis: Basis, seed: int,
            replica_rule: str) -> LayerTime:
    """The objective of ``p`` on ``stats`` under ``basis``: predicted MoE layer time on the busiest GPU."""
    return basis_time(p.phy2log, stats, model, cluster, p.ep_size, tokens_per_gpu, basis, seed, replica_rule)


#: The placement every other one is judged against in ``wideep place --compare`` (DeepSeek's EPLB).
REFERENCE = "balanced"
#: Relative changes smaller than this count as no change in the verdicts.
SAME = 5e-4


@dataclass(frozen=True)
class PlaceStudy:
    """What ``wideep place`` found: per algorithm the placement, its metrics in sample and, when the
    statistics could be split, its scores held out (:mod:`wideep.routing.split`).

    ``written`` is the placement (and its metrics) for ``--out``: with a held-out split, the chosen
    algorithm placed again on all the statistics. ``whole``: the statistics the runs were placed and
    measured on when those are all of them (nothing held out), else None; ``basis`` and ``seed``: what the
    runs' traffic was counted under (:meth:`counted_traffic`).
    """

    runs: list[tuple[Placement, PlacementMetrics, LayerTime]]
    held_out: list[tuple[Scores, LayerTime] | None]
    split: str | None
    replica_rule: str
    header: dict = field(default_factory=dict)
    written: tuple[Placement, PlacementMetrics, LayerTime] | None = None
    whole: RoutingStats | None = None
    basis: Basis = Basis()
    seed: int = 0

    def counted_traffic(self, algorithm: str, stats: RoutingStats, transport: str, dispatch_dtype: str,
                        combine_dtype: str, seed: int) -> A2AResult | None:
        """The traffic model's result of ``algorithm``'s run, when the study counted it on ``stats`` (these very
        statistics) under these settings; else None (the caller counts it)."""
        run = next((r for r in self.runs if r[0].algorithm == algorithm), None)
        b = self.basis
        same = (stats is self.whole and (transport, dispatch_dtype, combine_dtype, seed)
                == (b.transport, b.dispatch_dtype, b.combine_dtype, self.seed))
        return run[2].comm if same and run is not None else None

    def figures(self, i: int, held: bool) -> dict | None:
        """Scores and objective of run ``i``, in sample or held out (None when not held out)."""
        if held:
            h = self.held_out[i]
            return None if h is None else h[0].summary() | objective_keys(h[1])
        return self.runs[i][1].summary() | objective_keys(self.runs[i][2])

    def best(self) -> int:
        """Index of the run of least predicted layer time in sample (the earlier one on a tie)."""
        return min(range(len(self.runs)), key=lambda i: self.runs[i][2].total_s.mean())

    def rows(self) -> list[dict]:
        """One dict per algorithm: the in-sample metrics and objective, ``held_out`` figures, the split,
        ``vs_balanced``, and ``best`` (least predicted layer time in sample)."""
        rows = []
        ref = next((i for i, run in enumerate(self.runs) if run[0].algorithm == REFERENCE), None)
        best = self.best()
        for i, (p, m, t) in enumerate(self.runs):
            row = self.figures(i, False) | {"best": i == best}
            if self.split is not None:
                row["held_out"] = self.figures(i, True)
                row["split"] = self.split
                row["vs_balanced"] = None if ref is None or i == ref else self.versus(i, ref)
            rows.append(row)
        return rows

    def versus(self, i: int, ref: int) -> dict:
        """Relative change of run ``i`` against run ``ref`` in sample and held out, with a verdict per measure.

        A gain is a gain only when it holds both in sample and held out.
        """
        out = {}
        for key, better in (("layer_ms", -1), ("cross_domain_copies_per_token", -1), ("balancedness_mean", 1),
                            ("balancedness_min", 1)):
            pairs = [(self.figures(i, False)[key], self.figures(ref, False)[key])]
            if self.held_out[i] is not None and self.held_out[ref] is not None:
                pairs.append((self.figures(i, True)[key], self.figures(ref, True)[key]))
            if any(a is None or b is None for a, b in pairs):
                continue
            change = [a / b - 1.0 if b else 0.0 for a, b in pairs]
            out[key] = {"in_sample": change[0], "held_out": change[1] if len(change) > 1 else None,
                        "verdict": verdict([better * c for c in change])}
        return out


def objective_keys(t: LayerTime) -> dict:
    """The objective's figures a row shows: mean predicted layer time and its routed-expert part, ms."""
    s = t.summary()
    return {"layer_ms": s["layer_ms"], "experts_ms": s["experts_ms"]}


def verdict(gains: list[float]) -> str:
    """``gain`` only when better in sample and held out; ``in sample only``, ``held out only``, ``loss``, ``same``.

    >>> verdict([0.1, 0.05]), verdict([0.1, -0.01]), verdict([0.0, 0.0]), verdict([0.1])
    ('gain', 'in sample only', 'same', 'no held-out check')
    """
    if len(gains) < 2:
        return "no held-out check"
    up = [g > SAME for g in gains]
    down = [g < -SAME for g in gains]
    if all(up):
        return "gain"
    if not any(up) and not any(down):
        return "same"
    if up[0] and not up[1]:
        return "in sample only"
    if up[1] and not up[0]:
        return "held out only"
    return "loss"


def plan_placement(model: Model, cluster: Cluster, ep_size: int, redundant: int, tokens_per_gpu: int,
                   algorithms: list[str], stats_paths: list[str] | str | None = None, routing: str | None = None,
                   transport: str = "deepep-normal", dispatch_dtype: str = "fp8", combine_dtype: str = "bf16",
                   seed: int = 0, replica_rule: str = DEFAULT_REPLICA_RULE, held_out: bool = False,
                   write: str | None = None, weights_dtype: str = "fp8", calibration: str | None = None) -> PlaceStudy:
    """``wideep place``: statistics from files (``stats_paths``, merged) or a synthetic spec, then
    :func:`place_and_evaluate`. Synthetic specs sample ``ep_size x tokens_per_gpu`` tokens.

    With ``held_out`` (``--compare``), the statistics are split (:func:`wideep.routing.split.held_out_split`):
    every algorithm places from the first part and is measured on it (in sample) and scored on the second
    (held out). ``write`` names the algorithm whose placement goes to ``--out``; with a split it is placed
    again on all the statistics. The objective is predicted under ``transport``, the payload dtypes, the
    routed-expert ``weights_dtype`` and the ``calibration`` file (laid over the GPU's).
    """
    paths = [stats_paths] if isinstance(stats_paths, str) else list(stats_paths or [])
    check_place_inputs(model, cluster, ep_size, tokens_per_gpu, algorithms, paths, routing, seed, replica_rule,
                       write, (dispatch_dtype, combine_dtype, weights_dtype), calibration)
    tokens = ep_size * tokens_per_gpu
    header = {"model": model.id, "cluster": cluster.name, "ep_size": ep_size, "slots": model.n_experts + redundant,
              "redundant": redundant, "tokens_per_gpu": tokens_per_gpu, "replica_rule": replica_rule}
    basis = Basis(transport, dispatch_dtype, combine_dtype, weights_dtype, calibration)
    args = (model, cluster, ep_size, redundant, tokens_per_gpu, basis, seed, replica_rule)
    if not held_out:
        stats = routing_from_spec(routing, model, tokens, seed) if routing is not None else load_all(paths, model)
        runs = place_and_evaluate(algorithms, stats, *args)
        chosen = next((r for r in runs if r[0].algorithm == write), runs[-1]) if write else None
        return PlaceStudy(runs, [None] * len(runs), None, replica_rule, header, chosen, stats, basis, seed)
    split = held_out_split(paths or None, routing, model, tokens, seed)
    runs = place_and_evaluate(algorithms, split.place, *args)
    judged = [None if split.judge is None else
              (score(p, split.judge, model, tokens_per_gpu, replica_rule, seed),
               predict(p, split.judge, model, cluster, tokens_per_gpu, basis, seed, replica_rule))
              for p, _, _ in runs]
    written = None
    if write is not None:
        same = split.all is split.place
        written = (next((r for r in runs if r[0].algorithm == write), None) if same
                   else place_and_evaluate([write], split.all, *args)[0])
    return PlaceStudy(runs, judged, split.how, replica_rule, header, written,
                      split.place if split.judge is None else None, basis, seed)


def check_place_inputs(model: Model, cluster: Cluster, ep_size: int, tokens_per_gpu: int, algorithms: list[str],
                       paths: list[str], routing: str | None, seed: int, replica_rule: str, write: str | None,
                       dtypes: tuple[str, str, str], calibration: str | None) -> None:
    """Every option of ``wideep place`` checked before any placement runs (one-line errors naming the option);
    ``dtypes``: dispatch, combine and routed-expert weights."""
    if bool(paths) == (routing is not None):
        raise InputError("give exactly one of --stats FILE (repeatable) or --routing SPEC", "--stats")
    if tokens_per_gpu <= 0:
        raise InputError(f"must be > 0, got {tokens_per_gpu}", "--tokens")
    if not 0 < ep_size <= cluster.n_gpus:
        raise InputError(f"must be between 1 and the {cluster.n_gpus} GPUs of the cluster, got {ep_size}", "--ep")
    tokens = ep_size * tokens_per_gpu
    if tokens > MAX_PLACE_TOKENS:
        raise InputError(f"EP x --tokens is at most {MAX_PLACE_TOKENS:,} tokens per layer for placement "
                         f"(the statistics of a step, not a prefill chunk), got {tokens:,}", "--tokens")
    check_seed(seed)
    check_replica_rule(replica_rule)
    if write is not None and write not in ALGORITHMS:
        raise InputError(f"unknown algorithm {write!r} (choose from {', '.join(ALGORITHMS)})", "--algorithm")
    check_payload_dtypes(cluster, {"--dtype": dtypes[0], "--combine-dtype": dtypes[1]})
    check_weights_dtype(cluster, dtypes[2])
    load_calibration(cluster.gpu.id, calibration)  # a bad file raises before any placement runs
    kind = "file" if paths or routing is None else parse_spec(resolve_auto(routing, model))[0]
    check_place_budget(PlaceSize(model.moe_layers, tokens, model.top_k, model.n_experts, ep_size,
                                 len(set(cluster.domain_of[:ep_size].tolist())), kind, tuple(algorithms)))


def check_weights_dtype(cluster: Cluster, name: str) -> None:
    """Routed-expert weights dtype known and runnable on the cluster's GPU (InputError on --weights-dtype)."""
    units.dtype(name, "--weights-dtype", weights=True)
    if not cluster.gpu.compute_dtype(name):
        raise InputError(f"{cluster.gpu.name} ({cluster.gpu.arch}) has no {name} tensor cores; choose "
                         f"{' or '.join(cluster.gpu.flops_per_s)}", "--weights-dtype")
