"""Use cases: one plan (:mod:`wideep.plan.deployment`), sweeps and fronts, the a2a and place studies.

``wideep.plan.PlanSpec`` loads at once (the command line shows its defaults); the rest of
:mod:`wideep.plan.deployment` (``Plan``, ``plan``, ``compare_topologies``, ``expert_parallel``, ...) is
reached through this package too, but loads, with numpy and the models behind it, on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from wideep.plan.spec import DEFAULT_EP, PlanSpec

__all__ = ["DEFAULT_EP", "PlanSpec", "Plan", "Comparison", "plan", "compare_topologies", "expert_parallel"]


def __getattr__(name: str) -> Any:
    """Names of :mod:`wideep.plan.deployment`, imported on first use (PEP 562)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(import_module("wideep.plan.deployment"), name)
