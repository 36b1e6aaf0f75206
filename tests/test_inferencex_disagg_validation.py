"""Held-out wide-EP decode on GB200 NVL72 (benchmarks/inferencex_disagg_validation.py): InferenceX's disaggregated
Dynamo + TensorRT-LLM runs of DeepSeek-R1 NVFP4, each point's tokens/s per user (1000 / mean TPOT) within 25% and
each layout's mean absolute error under 15%. Nothing was fitted to these rows."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling inferencex_validation
_spec = importlib.util.spec_from_file_location("inferencex_disagg_validation",
                                               BENCHMARKS / "inferencex_disagg_validation.py")
dv = importlib.util.module_from_spec(_spec)
sys.modules["inferencex_disagg_validation"] = dv
_spec.loader.exec_module(dv)

POINT_TOLERANCE, MEAN_TOLERANCE = 0.25, 0.15
POINTS = dv.points()


@functools.lru_cache(maxsize=None)
def error(p) -> float:
    return dv.predicted(p) / p.tokens_per_s_per_user - 1


def test_the_file_holds_every_layout():
    assert {p.layout for p in POINTS} == {"TEP8", "DEP8", "DEP16", "DEP32"} and len(POINTS) == 24


@pytest.mark.parametrize("p", POINTS, ids=lambda p: p.name)
def test_decode_point(p):
    assert abs(error(p)) < POINT_TOLERANCE, (p.name, f"{error(p):+.1%}")


@pytest.mark.parametrize("layout", ["TEP8", "DEP8", "DEP16", "DEP32"])
def test_layout_mean(layout):
    errors = [abs(error(p)) for p in POINTS if p.layout == layout]
    assert sum(errors) / len(errors) < MEAN_TOLERANCE, (layout, errors)


def test_the_cap_binds_where_the_sweep_oversubscribes():
    """The sweeps set the concurrency above DECODE_MAX_BATCH_SIZE: a rank then runs the cap, not the quotient."""
    capped = [p for p in POINTS if p.concurrency / p.groups > p.max_batch]
    assert capped and all(p.batch == p.max_batch for p in capped)
