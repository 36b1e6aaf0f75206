"""``wideep place``'s study counts each algorithm's traffic once, for its metrics, its objective and the page."""

from __future__ import annotations

import numpy as np
import pytest

from wideep.placement.metrics import evaluate
from wideep.placement.objective import Basis
from wideep.plan.studies import plan_placement
from wideep.routing.files import routing_from_spec
from wideep.specs.model import load_model
from wideep.specs.topology import load_cluster
from wideep.traffic import a2a as traffic

ALGORITHMS = ["contiguous", "balanced", "global"]  # no search: every a2a run below is the study's own


@pytest.fixture(scope="module")
def case():
    return load_model("qwen3-30b-a3b"), load_cluster("hgx-h100", 16)


def counting(monkeypatch) -> list:
    """Count the traffic model's runs wherever the study and the page reach it."""
    calls, real = [], traffic.a2a

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(traffic, "a2a", counted)
    for module in ("wideep.placement.metrics", "wideep.placement.objective"):
        monkeypatch.setattr(f"{module}.a2a", counted)
    return calls


def test_one_traffic_run_per_algorithm_serves_metrics_and_objective(case, monkeypatch):
    model, cluster = case
    calls = counting(monkeypatch)
    study = plan_placement(model, cluster, 16, 16, 32, ALGORITHMS, routing="topics:4", transport="deepep-ll")
    assert len(calls) == len(ALGORITHMS)
    stats = routing_from_spec("topics:4", model, 16 * 32, 0)
    for p, metrics, t in study.runs:  # the same figures as a metrics run counting its own traffic
        alone = evaluate(p, stats, model, cluster, 32, "deepep-ll")
        assert alone.summary() == metrics.summary()
        assert t.comm.dispatch_s == metrics.dispatch_s and np.array_equal(t.comm.dispatch_layer_s, t.dispatch_s)


def test_the_study_hands_its_counts_only_for_the_statistics_and_settings_they_were_counted_on(case):
    model, cluster = case
    study = plan_placement(model, cluster, 16, 16, 32, ALGORITHMS, routing="topics:4")
    assert study.basis == Basis() and study.whole is not None
    args = ("deepep-normal", "fp8", "bf16", 0)
    assert study.counted_traffic("balanced", study.whole, *args) is study.runs[1][2].comm
    again = routing_from_spec("topics:4", model, 16 * 32, 0)  # equal, but not the statistics counted on
    assert study.counted_traffic("balanced", again, *args) is None
    for other in (("deepep-ll", "fp8", "bf16", 0), ("deepep-normal", "bf16", "bf16", 0),
                  ("deepep-normal", "fp8", "fp8", 0), ("deepep-normal", "fp8", "bf16", 1)):
        assert study.counted_traffic("balanced", study.whole, *other) is None
    assert study.counted_traffic("topology", study.whole, *args) is None  # not run
    held = plan_placement(model, cluster, 16, 16, 32, ALGORITHMS, routing="topics:4", held_out=True)
    assert held.whole is None  # placed on part of the statistics: the page counts all of them itself


def test_page_reuses_the_chosen_runs_traffic(case, monkeypatch):
    pytest.importorskip("matplotlib")
    from wideep.report.cluster_pages import place_report

    model, cluster = case
    study = plan_placement(model, cluster, 16, 16, 32, ALGORITHMS, routing="topics:4")
    held = plan_placement(model, cluster, 16, 16, 32, ALGORITHMS, routing="topics:4", held_out=True)
    settings = {"transport": "deepep-normal", "dtype": "fp8", "combine_dtype": "bf16", "seed": 0}
    calls = counting(monkeypatch)
    page = place_report(study, "global", model, cluster, None, "topics:4", settings)
    assert calls == [] and "under the global placement" in page
    place_report(held, "global", model, cluster, None, "topics:4", settings)
    assert len(calls) == 1  # placed on half the tokens: the page counts the whole sample itself
