"""All-to-all times against measurements (benchmarks/a2a_validation.py, benchmarks/deepep_table.py).

Each transport's constants were fitted on the rows marked ``fit`` (per GPU and tier, series of one kernel
build); every held-out row must land within 30% of its measurement and each source's held-out rows within
15% on average. The series the model misses are listed in KNOWN_MISSES with how many rows miss and why
(strict: a series whose count of misses changes turns red until the list is updated).
"""

from __future__ import annotations

import functools
import importlib.util
import statistics
import sys
from pathlib import Path

import pytest

ROW_TOLERANCE, MEAN_TOLERANCE = 0.30, 0.15
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


val, deepep = load("a2a_validation"), load("deepep_table")
CASES = val.cases()
HELD_OUT = [c for c in CASES if c.role == "held-out"]


def series_key(case) -> tuple:
    """(source, EP, hidden, top-k, experts): one measured series."""
    return (case.source, case.ep, *case.shape)


SERIES: dict[tuple, list] = {}
for _case in HELD_OUT:
    SERIES.setdefault(series_key(_case), []).append(_case)
# Series the model misses: key -> (rows over 30% at the last run, why). Strict: a series that no longer misses
# fails until it leaves the list, and one that misses more rows than listed fails too.
TOP1 = "16 blocks of top-1 send slower than 8 blocks of top-2"
LL, NORMAL = "DeepEP LL (sglang 0.5.12)", "DeepEP normal (sglang 0.5.12)"
AG_STEP = ("reduce-scatter at 256-512 tokens (0.5-1 MB per rank) -33..-34%: 2 GPUs reduce slower there than the "
           "8-GPU ramp gives at the same buffer (H200's fitted 2-GPU series alike, -31..-33%)")
KNOWN_MISSES = {
    (f"AIC GB200 {LL}", 8, 6144, 2, 8): (1, "combine at 512 tokens -33%: 8 blocks send slower than fitted at 4096"),
    (f"AIC H100 {LL}", 8, 5120, 1, 16): (1, "combine at 1,024 tokens -31% (H200 constants): " + TOP1),
    (f"AIC H200 {LL}", 8, 5120, 1, 16): (1, "combine at 1,024 tokens -32%: " + TOP1),
    (f"AIC GB300 {NORMAL}", 8, 6144, 2, 8): (9, "dispatch fixed cost ~53 us measured against ~34 for every other "
                                               "GB300 shape (an outlier of this series)"),
    ("AIC H200 DeepEP normal on 4 SMs (sglang 0.5.6.post2)", 64, 7168, 8, 256): (1, "dispatch at 128 tokens -31% "
                                                                                   "(the 20-SM series' network "
                                                                                   "bound, below, shows from 96)"),
    ("AIC B300 nccl-tests alltoall (NCCL 2.29.2)", 2, 7168, 8, 256): (2, "16-32 tokens (32-64 KB per pair) -31..-32%: "
                                                                         "one pair's small messages are slower than "
                                                                         "the ramp of 8 GPUs gives (B200's alike)"),
    ("AIC H100 nccl-tests alltoall (NCCL 2.29.2)", 8, 7168, 8, 256): (3, "1-4 tokens -48..+38%: H100's small-message "
                                                                         "times jump where H200's do not"),
    ("AIC H200 DeepEP normal (sglang 0.5.6.post2)", 64, 7168, 8, 256): (9, "-32..-53% from 128 tokens: eight nodes "
                                                                          "take about twice EP32's time per remote "
                                                                          "copy, at 20 SMs as at 4 (24.4 against "
                                                                          "24.6 ms at 16,384 tokens): the measured "
                                                                          "cluster's network, not the kernels"),
    ("AIC H100 nccl-tests all_gather / reduce_scatter (NCCL 2.29.2)", 2, 7168, 8, 256): (2, AG_STEP),
    ("AIC B200 nccl-tests all_gather / reduce_scatter (NCCL 2.29.2)", 4, 7168, 8, 256): (
        1, "all-gather at 16 tokens -35%: 19.4 us measured between 14.4 and 13.5 at 8 and 32 tokens (one row)"),
}


@functools.lru_cache(maxsize=None)
def predicted() -> dict:
    """Every case's prediction, computed once per test process in routing order (each routing drawn once)."""
    return dict(zip(CASES, val.predict_all(CASES)))


def errors(case) -> tuple[float, float]:
    d, c, *_ = predicted()[case]
    return d / case.dispatch_us - 1, c / case.combine_us - 1


def misses(cases) -> int:
    """Rows of ``cases`` with a phase more than ROW_TOLERANCE off."""
    return sum(max(abs(e) for e in errors(c)) > ROW_TOLERANCE for c in cases)


@pytest.mark.parametrize("key", sorted(SERIES), ids=lambda k: "-".join(str(x) for x in k))
def test_held_out_series(key):
    """Every row of a held-out series within 30%, except the listed misses (no more rows than listed)."""
    bad = misses(SERIES[key])
    allowed, why = KNOWN_MISSES.get(key, (0, ""))
    assert bad <= allowed, f"{key}: {bad} rows over {ROW_TOLERANCE:.0%} (listed: {allowed}) {why}"
    assert bad == allowed, f"{key}: {bad} rows miss, {allowed} listed: update KNOWN_MISSES"


def test_known_misses_are_series():
    assert set(KNOWN_MISSES) <= set(SERIES)


# Sources whose held-out mean misses 15%: source -> why (strict: one that comes within turns red).
KNOWN_MEAN_MISSES = {
    "AIC H200 DeepEP normal (sglang 0.5.6.post2)": "19.4%: its EP64 rows (28% mean) take about twice EP32's time per "
                                                   "remote copy, the same at 4 SMs as at 20 (the cluster's network)",
}


@pytest.mark.parametrize("source", sorted({c.source for c in HELD_OUT}))
def test_held_out_mean_error(source):
    """Each source's held-out rows (both phases) within 15% on average, except the listed ones."""
    errs = [abs(e) for c in HELD_OUT if c.source == source for e in errors(c)]
    within = statistics.mean(errs) <= MEAN_TOLERANCE
    assert within != (source in KNOWN_MEAN_MISSES), f"{source}: mean held-out error {100 * statistics.mean(errs):.1f}%"


def test_fitted_rows_are_reproduced():
    """The fit itself: its rows within 30% (a fixed cost is read off a series' smallest case; only the main
    series' ramp follows every case). Series fitted at their ends only are left out: the 4-SM series give the
    send limit (the H200's 2048-hidden series has a 44 us first row beside 25 us), NCCL's 2-GPU series the
    pair's stream (B200's 16-32 tokens are -31..-35%)."""
    for case in (c for c in CASES if c.role == "fit" and not val.ends_only(c)):
        assert max(abs(e) for e in errors(case)) <= ROW_TOLERANCE, series_key(case) + (case.tokens,)


def test_nccl_two_gpu_series_ends_are_reproduced():
    """NCCL's 2-GPU series give the cost per peer (their smallest case) and the pair's stream (their largest):
    both rows within 30% of what they fitted."""
    for case in (c for c in CASES if c.transport in val.NCCL and c.role == "fit" and val.ends_only(c)):
        ends = [c for c in CASES if c.source == case.source and c.ep == case.ep]
        if case.tokens in (min(c.tokens for c in ends), max(c.tokens for c in ends)):
            assert max(abs(e) for e in errors(case)) <= ROW_TOLERANCE, series_key(case) + (case.tokens,)


@pytest.mark.parametrize("ep", sorted(deepep.NORMAL_GBPS))
def test_deepep_normal_bandwidth(ep):
    """Normal kernels, bandwidth as DeepEP's tests define it; held out (the transport is fitted on
    AIConfigurator's tables)."""
    for phase, pub, pred in zip(("dispatch", "combine"), deepep.NORMAL_GBPS[ep], deepep.predict(ep, layers=1)):
        assert pred == pytest.approx(pub, rel=0.25), f"normal EP{ep} {phase}: {pred:.1f} GB/s vs {pub}"


@pytest.mark.parametrize("transport, gpu", [("deepep-ll", ""), ("deepep-ll", "b200"), ("deepep-ll", "gb200"),
                                            ("deepep-normal", ""), ("deepep-normal", "b200"),
                                            ("deepep-normal", "gb200"), ("nccl", ""), ("nccl", "b200"),
                                            ("nccl", "gb200"), ("nccl-allgather", ""), ("nccl-allgather", "b200"),
                                            ("nccl-allgather", "gb200"), ("nvlink-onesided", "")])
def test_transport_files_hold_their_fit(transport, gpu):
    """Every table line ``--fit`` prints stands in the transport file: the file is the fit, nothing edited."""
    text = (BENCH.parent / "topologies" / "transports" / f"{transport}.toml").read_text()
    lines = [ln.split("  #")[0] for ln in val.fit_toml(val.fit(transport, gpu), gpu).splitlines()]
    assert all(ln in text for ln in lines), [ln for ln in lines if ln not in text]


def synthetic_series(copies: float, message: int, us: callable, blocks: int = 4) -> list:
    """A combine series on ``blocks`` blocks at 16 and 4,096 tokens: ``copies`` per token of ``message`` bytes
    plus one reduced output each, timed by ``us(rounds, copied kB per block, reduced kB per block)``."""
    points = []
    for tokens in (16, 4096):
        copied, reduced = tokens * copies * message, tokens * message
        t = us(-(-tokens // blocks), copied / blocks / 1e3, reduced / blocks / 1e3)
        points.append(val.Point(tokens, 0.0, 0.0, t, copied + reduced, blocks, 0.0, reduced))
    return points


def test_reduce_rate_is_fitted_on_a_third_series():
    """Two top-8-like series and a third of 2 copies per token give back the issue time, the copy rate and
    the reduce rate they were built with; dispatch (no reducing phase) reads the first two alone."""
    def us(rounds, copied_kb, reduced_kb):
        return 0.15 * rounds + copied_kb / 35.0 + reduced_kb / 10.0

    senders = [synthetic_series(5.3, 4096, us), synthetic_series(5.3, 14336, us), synthetic_series(2.0, 8192, us)]
    out: dict = {}
    limit = val.send_limit("deepep-normal", "combine", senders, out)
    assert out["issue_us"]["combine"] == pytest.approx(0.15, abs=1e-3)
    assert (out["block_GBps"]["combine"], out["reduce_GBps"]["combine"]) == pytest.approx((35.0, 10.0), rel=1e-3)
    assert limit(senders[2][-1]) == pytest.approx(senders[2][-1].measured_us, rel=1e-6)
    out = {}
    val.send_limit("deepep-normal", "dispatch", senders, out)
    assert "reduce_GBps" not in out


def test_reduce_rate_falls_back_to_the_copy_rate():
    """A third series faster than any reduce cost gives (GB200's): the outputs go at the copy rate of the first
    two series, written out so that the GPU's table does not inherit the top level's reduce rate."""
    def us(rounds, copied_kb, reduced_kb):
        return 0.15 * rounds + (copied_kb + reduced_kb) / 35.0

    def faster(rounds, copied_kb, reduced_kb):
        return 0.15 * rounds + copied_kb / 35.0 - reduced_kb / 100.0

    senders = [synthetic_series(5.3, 4096, us), synthetic_series(5.3, 14336, us), synthetic_series(2.0, 8192, faster)]
    out: dict = {}
    val.send_limit("deepep-normal", "combine", senders, out)
    assert out["reduce_GBps"]["combine"] == out["block_GBps"]["combine"] == pytest.approx(35.0, rel=1e-3)


def test_reduce_rate_needs_a_third_series_of_other_copies():
    def us(rounds, copied_kb, reduced_kb):
        return 0.15 * rounds + (copied_kb + reduced_kb) / 35.0

    senders = [synthetic_series(5.3, 4096, us), synthetic_series(5.3, 14336, us), synthetic_series(5.3, 8192, us)]
    with pytest.raises(ValueError, match="two series of one count of copies per token and a third of another"):
        val.send_limit("deepep-normal", "combine", senders, {})
