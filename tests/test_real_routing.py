"""Placement on SGLang's published DeepSeek-V3 expert counts (benchmarks/real_routing.py), when present.

The 12 JSON files (``{"logical_count": [61][256]}``, SGLang issue #6017 attachment; docs/sources.md
section 4) carry no license and are not in this repository: the tests look in ``$WIDEEP_SGLANG_STATS``
(default /tmp/research/routing/sglang_ep_statistics) and skip when the folder is absent. The figures
checked are the ones docs/place.md reports (tolerance 0.002 on balancedness).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from conftest import run_cli

FOLDER = Path(os.environ.get("WIDEEP_SGLANG_STATS", "/tmp/research/routing/sglang_ep_statistics"))
FILES = sorted(FOLDER.glob("*.json")) if FOLDER.is_dir() else []
pytestmark = pytest.mark.skipif(len(FILES) != 12, reason=f"SGLang's 12 statistics files are not in {FOLDER}")
TOL = 0.002


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "real_routing.py"
    spec = importlib.util.spec_from_file_location("real_routing", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_routing"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stats(bench):
    return bench.load_folder(FOLDER)


def test_sglang_logical_count_files_read_as_58_moe_layers(stats):
    assert len(stats) == 12
    for s in stats.values():
        assert s.topk_ids is None and s.load.shape == (58, 256)  # 61 rows, the 3 dense ones dropped
        assert (s.load.sum(axis=1) > 0).all()


def summary(stats, bench, protocol, algorithm, ep, redundant, rule="sglang"):
    bal = [b for train, test in bench.protocols(list(stats))[protocol]
           for b in bench.judge(stats, train, test, algorithm, ep, redundant, rule)]
    return sum(b.mean() for b in bal) / len(bal), min(b.min() for b in bal)


@pytest.mark.parametrize("protocol, algorithm, ep, redundant, mean, worst", [
    ("in sample", "balanced", 32, 32, 0.833, 0.436),
    ("in sample", "global", 32, 32, 0.937, 0.766),
    ("leave one out", "balanced", 32, 32, 0.753, 0.358),
    ("leave one out", "global", 32, 32, 0.846, 0.433),
    ("in sample", "balanced", 8, 32, 0.984, 0.935),
    ("leave one out", "balanced", 8, 32, 0.945, 0.769),
    ("prefill -> decode", "global", 8, 32, 0.911, 0.683),
])
def test_documented_balancedness(stats, bench, protocol, algorithm, ep, redundant, mean, worst):
    got = summary(stats, bench, protocol, algorithm, ep, redundant)
    assert got == pytest.approx((mean, worst), abs=TOL)


def test_one_domain_in_sample_target_and_its_held_out_gap(stats, bench):
    """The issue's target, balancedness >= 0.98 on one NVLink domain, holds in sample for every rule; held out
    (leave one out) it does not: the benchmarks' expert popularity differs more than EPLB's slack absorbs."""
    for rule in ("sglang", "vllm", "trtllm", "nearest"):
        assert summary(stats, bench, "in sample", "balanced", 8, 32, rule)[0] >= 0.98
        assert summary(stats, bench, "leave one out", "balanced", 8, 32, rule)[0] < 0.96


def test_place_compare_splits_by_file_and_global_holds_held_out():
    args = ["place", "--model", "deepseek-v3", "--topology", "hgx-h100", "--gpus", "32", "--redundant", "32",
            "--compare", "--json"]
    res = run_cli(*args, *(x for f in FILES for x in ("--stats", str(f))))
    assert res.returncode == 0, res.stderr
    rows = {r["algorithm"]: r for r in json.loads(res.stdout)}
    assert rows["balanced"]["split"].startswith("placed on decode_in1000out1000.json")
    assert rows["global"]["held_out"]["balancedness_mean"] == pytest.approx(0.811, abs=TOL)
    assert rows["balanced"]["held_out"]["balancedness_mean"] == pytest.approx(0.722, abs=TOL)
    assert rows["global"]["vs_balanced"]["balancedness_mean"]["verdict"] == "gain"


def test_objective_on_real_counts_auto_no_slower_and_topology_no_more_copies(stats, bench):
    """EP32 over 4 hgx-h100 nodes, sglang rule, deepep-normal: ``auto``'s predicted layer time is no worse than
    either EPLB policy in sample and held out (figures in README, "Placement on real routing"); ``topology``
    (``balanced`` on loads-only statistics) sends no more held-out cross-node copies than ``balanced``."""
    rows = {r["algorithm"]: r for r in bench.objective_table(stats, "sglang")}
    for proto in ("CLI split", "prefill -> decode", "decode -> prefill"):
        a, b, g, t = (rows[x][proto] for x in ("auto", "balanced", "global", "topology"))
        for i in (1, 3):  # in-sample and held-out layer ms
            assert a[i] <= min(b[i], g[i]) * (1 + 1e-9), (proto, i)
        assert t[2] <= b[2] * (1 + 1e-9)
    assert rows["global"]["CLI split"][3] == pytest.approx(0.6476, abs=5e-4)  # documented held-out ms


NOT_RERUN = ("expected to miss since the case moves tokens by nccl-allgather (+32% and +36% on `auto`); not re-run: "
             "the statistics were not on the machine")


@pytest.mark.parametrize("name", [
    pytest.param("DeepSeek-R1 NVFP4, 8x B200, DEP8, FP8 KV, batch 896", marks=pytest.mark.xfail(reason=NOT_RERUN)),
    "DeepSeek-R1 NVFP4, 8x B200, DEP8, batch 384",
    pytest.param("DeepSeek-R1 FP8, 8x H200, DEP8, batch 128", marks=pytest.mark.xfail(reason=NOT_RERUN))])
def test_max_throughput_cases_on_real_routing(name):
    """TensorRT-LLM's DEP8 maximum-throughput runs (no EPLB) on SGLang's decode statistics (ISL/OSL 1,000/1,000,
    the nearest to their 1K/2K), all 58 layers: +13.7%, +2.7%, +17.8% (on uniform routing +52%, +43%, +36%) when
    DeepEP low-latency stood in for the engine's all-gather (not re-run since: NOT_RERUN)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "e2e_validation.py"
    spec = importlib.util.spec_from_file_location("e2e_validation", path)
    e2e = importlib.util.module_from_spec(spec)
    sys.modules["e2e_validation"] = e2e
    spec.loader.exec_module(e2e)
    case = next(c for c in e2e.THROUGHPUT_CASES if c.name == name)
    real = e2e.per_gpu_aggregated(case, str(FOLDER / "decode_in1000out1000.json"))
    assert real == pytest.approx(case.published_per_node, rel=0.25)
