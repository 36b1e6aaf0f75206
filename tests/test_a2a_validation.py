"""All-to-all times against measurements (benchmarks/a2a_validation.py, benchmarks/deepep_table.py).

Each transport's constants were fitted on the rows marked ``fit`` (per GPU and tier, series of one kernel
build); every held-out row must land within 30% of its measurement and each source's held-out rows within
15% on average. The series the model misses are listed in KNOWN_MISSES with how many rows miss and why
(strict: a series whose count of misses changes turns red until the list is updated).
"""

from __future__ import annotations

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
KNOWN_MISSES = {
    ("AIC GB200 DeepEP LL (sglang 0.5.12)", 8, 6144, 2, 8): (1, "combine at 512 tokens -31%: 8 blocks send slower than the rate fitted at 4096 hidden"),
    ("AIC H100 DeepEP LL (sglang 0.5.12)", 8, 5120, 1, 16): (1, "combine at 1,024 tokens -31% (H200 constants): 16 blocks of top-1 send slower than 8 blocks of top-2"),
    ("AIC H200 DeepEP LL (sglang 0.5.12)", 8, 5120, 1, 16): (1, "combine at 1,024 tokens -32%: 16 blocks of top-1 send slower than 8 blocks of top-2"),
    ("TensorRT-LLM blog 18 (GB200)", 64, 7168, 8, 256): (1, "dispatch at 1 token -32%: the fixed cost grows past EP32 (fitted at EP8)"),
}


def errors(case) -> tuple[float, float]:
    d, c, *_ = val.predict(case)
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


@pytest.mark.parametrize("source", sorted({c.source for c in HELD_OUT}))
def test_held_out_mean_error(source):
    """Each source's held-out rows (both phases) within 15% on average."""
    errs = [abs(e) for c in HELD_OUT if c.source == source for e in errors(c)]
    assert statistics.mean(errs) <= MEAN_TOLERANCE, f"{source}: mean held-out error {100 * statistics.mean(errs):.1f}%"


def test_fitted_rows_are_reproduced():
    """The fit itself: its own rows within 25% (the fixed cost is read off the smallest case)."""
    for case in (c for c in CASES if c.role == "fit"):
        assert max(abs(e) for e in errors(case)) <= 0.25, series_key(case) + (case.tokens,)


@pytest.mark.parametrize("ep", sorted(deepep.NORMAL_GBPS))
def test_deepep_normal_bandwidth(ep):
    """Normal kernels, bandwidth as DeepEP's tests define it; the EP8 row calibrates the NVLink tier."""
    for phase, pub, pred in zip(("dispatch", "combine"), deepep.NORMAL_GBPS[ep], deepep.predict(ep, layers=1)):
        assert pred == pytest.approx(pub, rel=0.25), f"normal EP{ep} {phase}: {pred:.1f} GB/s vs {pub}"
