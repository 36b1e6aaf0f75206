"""Pytest fixtures for comparing topologies in a user's own test suite.

Enable them in a ``conftest.py``::

    pytest_plugins = ["wideep.testing"]

then, in a test::

    def test_nvl72_beats_hgx(wideep_compare):
        plans = wideep_compare(["hgx-h100", "gb200-nvl72"], model="deepseek-v3", ep=32, batch=64)
        assert plans["gb200-nvl72"].decode.tokens_per_s_per_gpu > plans["hgx-h100"].decode.tokens_per_s_per_gpu

Every keyword is a :class:`wideep.plan.PlanSpec` field (``model``, ``ep``, ``tp``, ``batch``, ``context``,
``dtype``, ...). Plans are cached for the test session, so many tests over the same configurations stay fast.
``wideep_search`` runs ``wideep search`` and returns its JSON form::

    def test_rack_meets_100_tokens_per_user(wideep_search):
        result = wideep_search(["gb200-nvl72"], model="deepseek-r1", tpot_ms=10, gpus=8)
        assert result["gb200-nvl72"]["best"] is not None
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any, Callable, Iterable

import pytest

from wideep.plan import Plan, PlanSpec, plan
from wideep.plan.search import Targets, search


@lru_cache(maxsize=256)
def cached_plan(spec: PlanSpec) -> Plan:
    """One plan per distinct spec for the whole session."""
    return plan(spec)


def plan_for(topology: str, **fields: Any) -> Plan:
    """The plan of ``topology`` with ``fields`` set on the default :class:`PlanSpec`."""
    return cached_plan(replace(PlanSpec(), topology=topology, **fields))


def compare_plans(topologies: Iterable[str], **fields: Any) -> dict[str, Plan]:
    """{topology: plan} for the same configuration on every topology."""
    return {t: plan_for(t, **fields) for t in topologies}


@pytest.fixture
def wideep_plan() -> Callable[..., Plan]:
    """``wideep_plan(topology, **spec_fields) -> Plan`` (cached)."""
    return plan_for


@pytest.fixture
def wideep_compare() -> Callable[..., dict[str, Plan]]:
    """``wideep_compare([topology, ...], **spec_fields) -> {topology: Plan}`` (cached)."""
    return compare_plans


def search_systems(topologies: Iterable[str], tpot_ms: float | None = None, ttft_ms: float | None = None,
                   mode: str = "both", gpus: int | None = None, dtypes: dict[str, str] | None = None,
                   **fields: Any) -> dict:
    """``{system: {"best": point or None, "pareto": [points], "candidates": n}}`` as ``wideep search --json``."""
    return search(replace(PlanSpec(), **fields), list(topologies), Targets(tpot_ms, ttft_ms), mode, gpus, dtypes)


@pytest.fixture
def wideep_search() -> Callable[..., dict]:
    """``wideep_search([topology, ...], tpot_ms=..., ttft_ms=..., mode=..., gpus=..., **spec_fields)``."""
    return search_systems
