"""Grids of plans: batch sweeps (the interactivity curve), who leads at every interactivity, compare rows.

Interactivity is decode tokens/s per user. Along a batch sweep it falls as throughput per GPU rises; the
frontier of a system at level X is the best tokens/s per GPU among batches that still give >= X to each
user (and fit in HBM). Two systems are compared at every level either of them reaches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from wideep.core.errors import InputError
from wideep.core.limits import MAX_BATCH
from wideep.plan.comparison import plans_note
from wideep.plan.deployment import Plan, PlanSpec, plan

DEFAULT_BATCHES = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)

#: The procurement report: (JSON key, CSV/XLSX header with units). Order and names are stable.
COLUMNS = (
    ("system", "system"), ("gpu", "gpu"), ("gpus", "gpus"), ("ep", "ep"),
    ("batch", "batch [sequences/GPU]"), ("context", "context [tokens]"), ("dtype", "dtype"),
    ("tokens_per_s_per_gpu", "tokens/s/GPU"), ("tokens_per_s_per_user", "tokens/s/user"),
    ("usd_per_gpu_hour", "$/GPU-hour"), ("usd_per_mtok_input", "$/Mtok input"),
    ("usd_per_mtok_output", "$/Mtok output"), ("kW_per_gpu", "kW/GPU (all-in)"),
    ("tokens_per_s_per_MW", "output tokens/s per MW (fleet)"), ("binding", "binding resource"),
    ("sol_ratio", "SOL ratio [step/SOL]"), ("step_ms", "step [ms]"), ("fits", "fits in HBM"),
)


def row(p: Plan) -> dict:
    """One procurement row (keys of :data:`COLUMNS`)."""
    d = p.to_dict()
    d["fits"] = p.memory.fits
    return {key: d[key] for key, _ in COLUMNS}


def curve(spec: PlanSpec, batches: tuple[int, ...] = DEFAULT_BATCHES) -> list[Plan]:
    """Plans at each batch that fits in HBM (at least the smallest batch, flagged if it does not fit)."""
    plans = []
    for b in sorted(set(batches)):
        p = plan(replace(spec, batch=b))
        if p.memory.fits or not plans:
            plans.append(p)
        if not p.memory.fits:
            break
    return plans


def frontier(plans: list[Plan], level: float) -> Plan | None:
    """Highest tokens/s per GPU among fitting plans giving >= ``level`` tokens/s per user."""
    ok = [p for p in plans if p.memory.fits and p.decode.tokens_per_s_per_user >= level * (1 - 1e-9)]
    return max(ok, key=lambda p: p.decode.tokens_per_s_per_gpu, default=None)


@dataclass(frozen=True)
class Lead:
    """Who leads at each interactivity level.

    Attributes
    ----------
    rows : list of dict
        One per level: ``tokens_per_s_per_user`` and, per system, tokens/s per GPU (None when out of
        reach), its batch and binding resource, and ``leader``.
    ahead_everywhere : str or None
        The system that leads at every level, if any.
    """

    systems: tuple[str, ...]
    rows: list[dict]
    ahead_everywhere: str | None


def lead_by_interactivity(curves: dict[str, list[Plan]]) -> Lead:
    """Compare systems' frontiers at every tokens/s/user value any of their curves reaches."""
    levels = sorted({p.decode.tokens_per_s_per_user for ps in curves.values() for p in ps if p.memory.fits})
    rows, leaders = [], set()
    for level in levels:
        r: dict = {"tokens_per_s_per_user": level}
        best, who = -1.0, None
        for name, ps in curves.items():
            f = frontier(ps, level)
            r[name] = None if f is None else {"tokens_per_s_per_gpu": f.decode.tokens_per_s_per_gpu,
                                              "batch": f.spec.batch, "binding": f.decode.binding}
            if f is not None and f.decode.tokens_per_s_per_gpu > best:
                best, who = f.decode.tokens_per_s_per_gpu, name
        r["leader"] = who
        leaders.add(who)
        rows.append(r)
    return Lead(tuple(curves), rows, next(iter(leaders)) if len(leaders) == 1 else None)


def batch_for_interactivity(spec: PlanSpec, tokens_per_s_per_user: float) -> Plan:
    """The largest batch that fits in HBM and still gives >= ``tokens_per_s_per_user`` (bisection).

    When even the largest fitting batch is faster per user than asked, that batch is returned (memory
    binds before interactivity does); when batch 1 is too slow, :class:`InputError`.
    """
    if not tokens_per_s_per_user > 0:
        raise InputError(f"must be > 0, got {tokens_per_s_per_user}", "--interactivity")
    first = plan(replace(spec, batch=1))
    if not first.memory.fits:
        raise InputError(f"{first.system}: even batch 1 does not fit in HBM at context {spec.decode_context:,}",
                         "--interactivity")
    if first.decode.tokens_per_s_per_user < tokens_per_s_per_user:
        raise InputError(f"{first.system} reaches at most {first.decode.tokens_per_s_per_user:.1f} tokens/s per "
                         f"user (batch 1), below {tokens_per_s_per_user}", "--interactivity")
    lo, hi = 1, max(2, min(first.memory.max_batch, MAX_BATCH) + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if plan(replace(spec, batch=mid)).decode.tokens_per_s_per_user >= tokens_per_s_per_user:
            lo = mid
        else:
            hi = mid
    return plan(replace(spec, batch=lo))


def compare(spec: PlanSpec, topologies: list[str], batches: list[int] | None = None,
            interactivity: float | None = None) -> list[Plan]:
    """One plan per (topology, batch); with ``interactivity``, per topology the largest batch giving it."""
    if not topologies:
        raise InputError("give at least one --topology", "--topology")
    if interactivity is not None and batches:
        raise InputError("give --batch or --interactivity, not both", "--interactivity")
    if interactivity is not None:
        return [batch_for_interactivity(replace(spec, topology=t), interactivity) for t in topologies]
    return [plan(replace(spec, topology=t, batch=b)) for t in topologies for b in (batches or [spec.batch])]


def compare_report(spec: PlanSpec, topologies: list[str], batches: list[int] | None = None,
                   interactivity: float | None = None, with_lead: bool = False,
                   plans: list[Plan] | None = None) -> dict:
    """``wideep compare``: {"rows": procurement rows} and, with ``with_lead``, {"lead": ...} from
    :func:`lead_by_interactivity` and {"curves": {system: [[tokens/s/user, tokens/s/GPU], ...]}} over
    :data:`DEFAULT_BATCHES` on every topology. ``plans``: the rows' plans when already made by :func:`compare`."""
    plans = compare(spec, topologies, batches, interactivity) if plans is None else plans
    rep: dict = {"rows": [row(p) for p in plans],
                 "placement": spec.placement, "replica_rule": spec.replica_rule, "note": plans_note(plans)}
    if with_lead:
        curves = {t: curve(replace(spec, topology=t)) for t in topologies}
        lead = lead_by_interactivity(curves)
        rep["lead"] = {"ahead_everywhere": lead.ahead_everywhere, "rows": lead.rows}
        rep["curves"] = {ps[0].system: [[p.decode.tokens_per_s_per_user, p.decode.tokens_per_s_per_gpu]
                                        for p in ps if p.memory.fits] for ps in curves.values()}
    return rep
