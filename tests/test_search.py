"""``wideep search``: targets, modes, Pareto front, fleet-level cost (small searches: one EP size)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from conftest import run_cli
from wideep.core.errors import InputError
from wideep.plan import PlanSpec
from wideep.plan.search import ALLGATHER, POINT_KEYS, Targets, candidates, pareto, search

SPEC = PlanSpec(isl=1024, osl=1024)


@pytest.fixture(scope="module")
def h200():
    return search(SPEC, ["hgx-h200"], Targets(tpot_ms=50.0), max_gpus=8)["hgx-h200"]


def test_every_point_has_the_documented_keys(h200):
    assert h200["best"] is not None and set(POINT_KEYS) <= set(h200["best"])
    assert all(set(POINT_KEYS) <= set(q) for q in h200["pareto"])


def test_best_meets_the_target_and_is_the_cheapest_that_does(h200):
    assert h200["best"]["tpot_ms"] <= 50.0
    cheapest = h200["best"]["usd_per_mtok"] * (1 - 1e-9)  # ties (to 9 digits) go to the faster point
    assert all(q["usd_per_mtok"] >= cheapest for q in h200["pareto"] if q["tpot_ms"] <= 50.0)


def test_front_trades_throughput_for_interactivity(h200):
    front = h200["pareto"]
    users = [q["tokens_per_s_per_user"] for q in front]
    per_gpu = [q["tokens_per_s_per_gpu"] for q in front]
    assert users == sorted(users) and per_gpu == sorted(per_gpu, reverse=True)


def test_disaggregated_pools_are_whole_instances_whose_rates_match():
    """Both pools are whole instances that hold the model (8 H200s for DeepSeek-V3 here, never 1-4 GPUs of
    prefill); the fleet's output is the smaller of what the decode instances give and what the prefill
    instances feed; cost counts both pools."""
    r = search(SPEC, ["hgx-h200"], Targets(), mode="disagg", max_gpus=8)["hgx-h200"]
    assert all(q["mode"] == "disagg" and q["prefill_instances"] >= 1 for q in r["pareto"])
    for q in r["pareto"]:
        assert q["prefill_gpus"] == 8 * q["prefill_instances"] and q["decode_gpus"] == 8 * q["decode_instances"]
        decode_output_per_s = q["decode_instances"] * q["batch"] * q["dp"] * q["tokens_per_s_per_user"]
        fleet_output_per_s = q["tokens_per_s_per_gpu"] * (q["prefill_gpus"] + q["decode_gpus"])
        assert fleet_output_per_s <= decode_output_per_s * (1 + 1e-9)
    usd_per_gpu_s = {round(q["usd_per_mtok"] * q["tokens_per_s_per_gpu"], 9) for q in r["pareto"]}
    assert len(usd_per_gpu_s) == 1  # one GPU price: cost follows the throughput of the same fleet


def test_pareto_by_hand():
    pts = [{"tokens_per_s_per_gpu": g, "tokens_per_s_per_user": u} for g, u in ((10, 1), (5, 2), (4, 1.5), (1, 3))]
    assert [(q["tokens_per_s_per_gpu"], q["tokens_per_s_per_user"]) for q in pareto(pts)] == [(10, 1), (5, 2), (1, 3)]


def test_unreachable_target_says_so():
    r = search(SPEC, ["hgx-h200"], Targets(tpot_ms=0.01), max_gpus=8)["hgx-h200"]
    assert r["best"] is None and r["pareto"]


@pytest.mark.parametrize("args,option", [
    (["--tpot-ms", "-1"], "--tpot-ms"), (["--mode", "mixed"], "--mode"), (["--dtype", "gb200=fp8"], "--dtype"),
    (["--tpot-ms", "20", "--interactivity", "50"], "--interactivity"), (["--gpus", "0"], "--gpus"),
    (["--dtype", "foo"], "--dtype: unknown dtype 'foo'"), (["--dtype", "hgx-h200="], "--dtype: unknown dtype ''"),
    (["--dtype", "nvfp4"], "--dtype: NVIDIA H200 SXM 141GB (hopper) has no nvfp4 tensor cores"),
])
def test_bad_search_options(args, option):
    r = run_cli("search", "--topology", "hgx-h200", *args)
    assert r.returncode == 2 and option in r.stderr and r.stderr.count("\n") == 1


def test_cli_json_per_system(tmp_path):
    r = run_cli("search", "--topology", "hgx-h200", "--gpus", "8", "--interactivity", "20", "--json",
                "--csv", str(tmp_path / "s.csv"))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {"hgx-h200"} and {"best", "pareto"} <= set(data["hgx-h200"])
    deploy = data["hgx-h200"]["deploy"]
    assert "--enable-dp-attention" in deploy["sglang"] and "--enable-expert-parallel" in deploy["vllm"]
    assert "enable_attention_dp: true" in deploy["trtllm"]
    header = (tmp_path / "s.csv").read_text().splitlines()[0]
    assert header.startswith("system,mode,tp,ep,dp,") and "TPOT [ms]" in header


def test_targets_are_checked():
    with pytest.raises(InputError):
        Targets(ttft_ms=float("nan"))


def test_cost_ratio_by_hand():
    from wideep.plan.search import cost_ratio

    a = {"pareto": [{"tokens_per_s_per_user": 10, "usd_per_mtok": 1.0, "binding": "hbm"},
                    {"tokens_per_s_per_user": 20, "usd_per_mtok": 4.0, "binding": "nic"}]}
    b = {"pareto": [{"tokens_per_s_per_user": 30, "usd_per_mtok": 0.5, "binding": "hbm"}]}
    rows = cost_ratio({"a": a, "b": b})
    assert [r["tokens_per_s_per_user"] for r in rows] == [10, 20, 30]
    assert rows[0]["ratio"]["b"] == 0.5 and rows[1]["ratio"]["b"] == 0.125 and rows[2]["ratio"]["b"] is None


def test_disaggregated_ttft_pays_the_prompt_kv_transfer():
    """DeepSeek-V3's 128K-token prompt: 9.21 GB of BF16 KV over one 400G NIC at nccl's 0.97 -> ~0.19 s."""
    from wideep.plan import PlanSpec, plan

    p = plan(PlanSpec(topology="hgx-h100", ep=8, batch=1, isl=131072, context=131072))
    assert p.kv_transfer_s == pytest.approx(9.21e9 / (50e9 * 0.97), rel=0.01)
    short = plan(PlanSpec(topology="hgx-h100", ep=8, batch=1, isl=1024))
    assert short.kv_transfer_s < p.kv_transfer_s / 50


def test_worker_processes_give_the_same_points_in_the_same_order():
    systems = ["hgx-h200", "gb200-nvl72"]
    one = search(SPEC, systems, Targets(tpot_ms=50.0), max_gpus=8, workers=1)
    two = search(SPEC, systems, Targets(tpot_ms=50.0), max_gpus=8, workers=2)
    assert list(two) == systems and two == one


def test_a_worker_process_raises_what_one_process_raises():
    errors = []
    for workers in (1, 2):
        with pytest.raises(InputError) as exc:
            search(SPEC, ["hgx-h200", "gb200-nvl72"], Targets(), max_gpus=1, workers=workers)
        errors.append((type(exc.value), str(exc.value), exc.value.field, exc.value.source))
    assert errors[0] == errors[1] and errors[0][3] == "--gpus" and "hgx-h200" in errors[0][1]


def test_search_reaches_past_ep8_interactivity_with_moe_tensor_parallelism():
    """Past what TP8 x EP8 serves, the answer splits every expert over the node (the engines' latency layout),
    names it, and launches it that way."""
    r = run_cli("search", "--model", "deepseek-r1", "--topology", "hgx-h200", "--gpus", "8", "--interactivity",
                "170", "--json")
    assert r.returncode == 0, r.stderr
    best = json.loads(r.stdout)["hgx-h200"]["best"]
    assert best["tp"] == 8 and best["ep"] < 8 and best["moe_tp"] == 8 // best["ep"]
    assert best["tokens_per_s_per_user"] >= 170
    trtllm = json.loads(r.stdout)["hgx-h200"]["deploy"]["trtllm"]
    assert f"moe_tensor_parallel_size: {best['moe_tp']}" in trtllm and "enable_attention_dp: false" in trtllm


def test_a_failing_search_writes_none_of_its_files(tmp_path):
    """DeepSeek-V3 fits no 8-GPU H100 layout: the picture fails, and the CSV is not left behind either."""
    r = run_cli("search", "--topology", "hgx-h100", "--gpus", "8", "--csv", str(tmp_path / "s.csv"),
                "--svg", str(tmp_path / "s.svg"))
    assert r.returncode == 2 and "--svg: nothing to draw: no candidate fits in HBM" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("topology", ["hgx-b200", "gb200-nvl72"])
def test_the_all_gather_layout_is_tried_where_it_sends_no_more_copies_than_the_top_k(topology):
    """On one NVLink domain, EP <= top_k + 1 and data-parallel attention: each such layout is also planned on the
    all-gather, experts in order without copies; nowhere else (DeepSeek top-8: EP2-8, though NVL72's domain
    holds EP16-72; not attention TP spanning the EP group)."""
    specs = candidates(SPEC, topology, None)
    gathered = [s for s in specs if s.transport == ALLGATHER]
    assert {s.ep for s in gathered} == {2, 4, 8} and all(s.tp < s.ep for s in gathered)
    assert all(s.placement == "contiguous" and s.redundant == 0 for s in gathered)
    assert {(s.ep, s.tp, s.mtp, s.batch) for s in gathered} == {(s.ep, s.tp, s.mtp, s.batch) for s in specs
                                                                 if s.transport is None and s.tp < s.ep <= 8}
    assert max(s.ep for s in specs) > 8


def test_a_transport_the_caller_chose_stands():
    assert {s.transport for s in candidates(replace(SPEC, transport="deepep-ll"), "hgx-b200", None)} == {"deepep-ll"}


def test_points_name_their_transports():
    """Every point names the transport of its decode group and of its prefill (empty where nothing is sent); an
    aggregated point's two are of one kind."""
    points = search(replace(SPEC, model="deepseek-r1", dtype="nvfp4"), ["hgx-b200"], Targets(), max_gpus=8,
                    mode="agg")["hgx-b200"]["pareto"]
    assert {q["transport"] for q in points} <= {"", "deepep-ll", ALLGATHER}
    assert all(q["transport"] == "" for q in points if q["tp"] >= q["ep"])
    assert any(q["transport"] == ALLGATHER for q in points)  # on B200 it reaches the aggregated front
    for q in points:
        assert (q["transport"] == ALLGATHER) == (q["prefill_transport"] == ALLGATHER)


def test_balanced_prompts_only_where_the_engines_balance_them():
    """``--balanced-prompts`` reaches aggregated points of one-GPU attention groups that dispatch (TensorRT-LLM's
    attention DP), no others; the JSON and the launch YAML say so."""
    r = run_cli("search", "--model", "deepseek-r1", "--topology", "hgx-b200", "--dtype", "nvfp4", "--gpus", "8",
                "--mode", "both", "--balanced-prompts", "--json")
    assert r.returncode == 0, r.stderr
    points = json.loads(r.stdout)["hgx-b200"]["pareto"]
    assert any(q["balanced_prompts"] for q in points)
    for q in points:
        assert q["balanced_prompts"] == (q["mode"] == "agg" and q["tp"] == 1 < q["ep"])
    spec = replace(SPEC, model="deepseek-r1", dtype="nvfp4", topology="hgx-b200", balanced_prompts=True)
    assert [replace(spec, tp=t, ep=8).balances_prompts for t in (1, 2, 8)] == [True, False, False]


def test_the_html_best_plan_is_the_point_as_searched():
    """The report re-plans a search point with its own transport and placement (all-gather: in order, no copies)."""
    from wideep.report.pages import best_plan

    point = {"ep": 8, "tp": 1, "mtp": 0, "batch": 64, "dtype": "fp8", "transport": ALLGATHER}
    p = best_plan(replace(SPEC, model="deepseek-r1"), "hgx-h200", point)
    assert p.ep.transport == ALLGATHER and p.spec.placement == "contiguous" and p.spec.redundant == 0
