"""The placement objective is predicted under the plan's own transport, dtypes and calibration, and the
plan's placement cache keys on them (:class:`wideep.placement.objective.Basis`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from wideep.core.errors import InputError
from wideep.perf.roofline import load_calibration
from wideep.placement import objective
from wideep.placement.objective import Basis, basis_time, layer_time
from wideep.placement.placers import place
from wideep.plan import ep_group
from wideep.plan.deployment import objective_basis, placed, plan
from wideep.plan.spec import PlanSpec
from wideep.routing.stats import synthetic_routing
from wideep.specs.model import load_model
from wideep.specs.topology import load_cluster

SLOW_GEMMS = "[gemm]\ntokens_per_expert = [1, 8192]\nefficiency = [0.1, 0.1]\n"  # a tenth of the roofline


@pytest.fixture
def slow_cal(tmp_path):
    path = tmp_path / "slow.toml"
    path.write_text(SLOW_GEMMS)
    return str(path)


@pytest.fixture(scope="module")
def case():
    """Qwen3-30B-A3B (128 experts) on two HGX H100 nodes, EP16, 16 redundant slots, a topics:4 sample."""
    model, cluster = load_model("qwen3-30b-a3b"), load_cluster("hgx-h100", 16)
    return model, cluster, synthetic_routing(model, "topics:4", 16 * 64, seed=0, layers=2)


def test_objective_value_follows_each_field_of_the_basis(case, slow_cal):
    model, cluster, stats = case
    p = place("balanced", stats, model, cluster, 16, 16).phy2log
    t = {name: basis_time(p, stats, model, cluster, 16, 64, b) for name, b in {
        "base": Basis(), "bf16": Basis(weights_dtype="bf16"), "ll": Basis(transport="deepep-ll"),
        "bf16 dispatch": Basis(dispatch_dtype="bf16"), "slow": Basis(calibration=slow_cal)}.items()}
    base = t["base"]
    # bf16 weights: twice the bytes of fp8 in the weight-bound expert GEMMs; traffic unchanged
    assert t["bf16"].experts_s.mean() > 1.3 * base.experts_s.mean()
    assert np.array_equal(t["bf16"].dispatch_s, base.dispatch_s)
    # a tenth of the roofline instead of 0.6-0.7: the expert GEMMs take several times longer
    assert t["slow"].experts_s.mean() > 3 * base.experts_s.mean()
    assert np.array_equal(t["slow"].combine_s, base.combine_s)
    # bf16 dispatch payload: twice fp8's hidden bytes per copy; the low-latency transport: its own costs
    assert t["bf16 dispatch"].dispatch_s.mean() > base.dispatch_s.mean()
    assert t["ll"].transport == "deepep-ll" and not np.array_equal(t["ll"].dispatch_s, base.dispatch_s)
    # the basis is what layer_time takes one by one
    same = layer_time(p, stats, model, cluster, 16, 64, "deepep-normal", "fp8", "bf16", 0, weights_dtype="fp8",
                      cal=load_calibration(cluster.gpu.id, slow_cal))
    assert np.array_equal(same.total_s, t["slow"].total_s)


def spy(monkeypatch, module, name):
    """Record the keyword arguments of every call of ``module.name`` (then call it)."""
    calls, real = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.mark.parametrize("algorithm", ["topology", "auto"])
def test_search_times_its_candidates_under_the_given_basis(case, slow_cal, monkeypatch, algorithm):
    model, cluster, stats = case
    experts = spy(monkeypatch, objective, "busiest_experts_s")
    comm = spy(monkeypatch, objective, "a2a")
    place(algorithm, stats, model, cluster, 16, 16, tokens_per_gpu=32, transport="deepep-ll",
          dispatch_dtype="bf16", combine_dtype="fp8", weights_dtype="bf16", calibration=slow_cal)
    assert len(experts) >= 3 and len(comm) == len(experts)  # balanced and the searched candidates
    slow = load_calibration(cluster.gpu.id, slow_cal)
    for args, _ in experts:
        assert args[5] == "bf16" and args[6] is slow  # weights dtype, calibration
    for args, _ in comm:
        assert args[6:9] == ("deepep-ll", "bf16", "fp8")  # transport, dispatch and combine dtypes


def test_placed_keys_on_every_input_of_the_objective(monkeypatch, slow_cal):
    model = load_model("qwen3-30b-a3b")
    ep_group.clear_caches()
    calls = spy(monkeypatch, ep_group, "place")
    key = (model, "hgx-h100", 16, 16, "topics:4", "topology", 0, "sglang")
    bases = [Basis("deepep-ll"), Basis("deepep-normal"), Basis("deepep-ll", weights_dtype="bf16"),
             Basis("deepep-ll", dispatch_dtype="bf16"), Basis("deepep-ll", combine_dtype="fp8"),
             Basis("deepep-ll", calibration=slow_cal)]
    for b in bases + bases:  # the second round comes from the cache
        placed(*key, b)
    assert len(calls) == len(bases)
    for (_, kwargs), b in zip(calls, bases):
        assert {k: kwargs[k] for k in b.options()} == b.options()
    # the other algorithms depend on none of it: one placement for every basis
    for b in bases:
        placed(model, "hgx-h100", 16, 16, "topics:4", "balanced", 0, "sglang", objective_basis(
            PlanSpec(placement="balanced", transport=b.transport, dtype=b.weights_dtype), "decode"))
    assert len(calls) == len(bases) + 1
    ep_group.clear_caches()


def test_objective_basis_is_the_phase_and_the_plan():
    spec = PlanSpec(placement="auto", dtype="nvfp4", dispatch_dtype="nvfp4", combine_dtype="fp8",
                    calibration="my.toml")
    assert objective_basis(spec, "decode") == Basis("deepep-ll", "nvfp4", "fp8", "nvfp4", "my.toml")
    assert objective_basis(spec, "prefill") == Basis("deepep-normal", "nvfp4", "fp8", "nvfp4", "my.toml")
    given = PlanSpec(placement="topology", transport="nccl")
    assert objective_basis(given, "decode") == objective_basis(given, "prefill") == Basis("nccl")
    assert objective_basis(PlanSpec(placement="global"), "decode") is None


def test_plan_places_each_phase_for_its_transport_and_the_plans_dtypes(monkeypatch, slow_cal):
    ep_group.clear_caches()
    calls = spy(monkeypatch, ep_group, "place")
    plan(PlanSpec(model="qwen3-30b-a3b", topology="hgx-h100", ep=16, placement="topology", routing="topics:4",
                  dtype="bf16", combine_dtype="fp8", calibration=slow_cal, batch=16))
    seen = sorted((kw["transport"], kw["weights_dtype"], kw["dispatch_dtype"], kw["combine_dtype"], kw["calibration"])
                  for _, kw in calls)
    assert seen == [("deepep-ll", "bf16", "fp8", "fp8", slow_cal), ("deepep-normal", "bf16", "fp8", "fp8", slow_cal)]
    ep_group.clear_caches()


def test_plan_checks_the_weights_dtype_before_a_search_times_it():
    with pytest.raises(InputError) as err:
        plan(PlanSpec(model="qwen3-30b-a3b", topology="hgx-h100", ep=16, placement="auto", dtype="nvfp4"))
    assert err.value.source == "--dtype" and "nvfp4" in str(err.value)


BASE = ["place", "--model", "qwen3-30b-a3b", "--topology", "hgx-h100", "--gpus", "16", "--redundant", "16",
        "--tokens", "32", "--routing", "topics:4", "--algorithm", "topology", "--json"]


def test_place_command_predicts_under_the_weights_dtype_and_calibration(slow_cal):
    runs = {name: run_cli(*BASE, *extra) for name, extra in {
        "fp8": [], "bf16": ["--weights-dtype", "bf16"], "slow": ["--calibration", slow_cal]}.items()}
    for res in runs.values():
        assert res.returncode == 0, res.stderr
    row = {name: json.loads(res.stdout) for name, res in runs.items()}
    assert row["bf16"]["experts_ms"] > 1.3 * row["fp8"]["experts_ms"]
    assert row["slow"]["experts_ms"] > 3 * row["fp8"]["experts_ms"]


@pytest.mark.parametrize("extra, option", [(["--weights-dtype", "nvfp4"], "--weights-dtype"),
                                           (["--weights-dtype", "fp7"], "--weights-dtype"),
                                           (["--calibration", "no-such.toml"], "no-such.toml")])
def test_place_command_rejects_bad_objective_inputs_in_one_line(extra, option):
    res = run_cli(*BASE, *extra)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and option in res.stderr


def test_layout_without_all_to_all_is_placed_on_expert_time_alone(case):
    """MoE tensor parallelism sends no all-to-all: the objective has no dispatch or combine to weigh."""
    model, cluster, stats = case
    p = place("balanced", stats, model, cluster, 16, 16)
    none = layer_time(p.phy2log, stats, model, cluster, 16, 64, transport="")
    some = layer_time(p.phy2log, stats, model, cluster, 16, 64, transport="deepep-ll")
    assert not none.dispatch_s.any() and not none.combine_s.any() and some.dispatch_s.all()
    assert none.experts_s == pytest.approx(some.experts_s)
    assert objective_basis(PlanSpec(topology="hgx-h200", tp=8, ep=2, placement="auto"), "decode").transport == ""
