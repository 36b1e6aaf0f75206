"""Use cases: one plan (:mod:`wideep.plan.deployment`), the same plan on several systems
(:mod:`wideep.plan.comparison`), sweeps and fronts, search, the a2a and place studies.

``wideep.plan.PlanSpec`` loads at once (the command line shows its defaults); the names of
:mod:`wideep.plan.deployment` (``Plan``, ``plan``, ``expert_parallel``, ...) and of
:mod:`wideep.plan.comparison` (``Comparison``, ``compare_topologies``) are reached through this package too,
but load, with numpy and the models behind them, on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from wideep.plan.spec import DEFAULT_EP, PlanSpec

__all__ = ["DEFAULT_EP", "PlanSpec", "Plan", "Comparison", "plan", "compare_topologies", "expert_parallel"]


COMPARISON_NAMES = ("Comparison", "compare_topologies", "DEFAULT_COMPARISON")


def __getattr__(name: str) -> Any:
    """Names of :mod:`wideep.plan.deployment` and :mod:`wideep.plan.comparison`, imported on first use (PEP 562)."""
    if name.startswith("__"):
        raise AttributeError(name)
    module = "wideep.plan.comparison" if name in COMPARISON_NAMES else "wideep.plan.deployment"
    return getattr(import_module(module), name)
