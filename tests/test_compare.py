"""`wideep plan` and `wideep compare` through the installed command: JSON keys, CSV columns, bad input."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import run_cli
from wideep.plan.sweep import COLUMNS

PLAN_KEYS = {"tokens_per_s_per_gpu", "tokens_per_s_per_user", "step_ms", "usd_per_mtok_output",
             "usd_per_mtok_input", "binding", "sol_ratio", "memory", "breakdown_ms"}


def test_plan_json_keys():
    r = run_cli("plan", "--topology", "hgx-h100", "--gpus", "16", "--ep", "16", "--batch", "32", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert PLAN_KEYS <= set(d)
    assert {"weights_GB", "kv_GB", "workspace_GB", "usable_GB", "fits", "max_batch", "max_context"} <= set(d["memory"])
    assert {"attn_core", "routed_experts", "dispatch", "combine", "lm_head"} <= set(d["breakdown_ms"])
    assert d["gpus"] == 16 and d["ep"] == 16 and d["sol_ratio"] >= 1
    assert sum(d["breakdown_ms"].values()) >= d["step_ms"] * (1 - 1e-9)  # overlap can only hide time


def test_plan_without_options_compares_hopper_and_blackwell():
    r = run_cli("plan")
    assert r.returncode == 0, r.stderr
    assert "hgx-h100 x32" in r.stdout and "gb200-nvl72 x32" in r.stdout
    assert "tokens/s per GPU of hgx-h100" in r.stdout and "bound by" in r.stdout
    d = json.loads(run_cli("plan", "--json").stdout)
    assert [p["system"] for p in d["plans"]] == ["hgx-h100", "gb200-nvl72"]
    assert all(p["model"] == "deepseek-v3" and p["ep"] == 32 for p in d["plans"])
    assert d["plans"][1]["tokens_per_s_per_gpu"] > d["plans"][0]["tokens_per_s_per_gpu"] and d["why"]


def test_compare_csv_columns_are_stable(tmp_path):
    path = tmp_path / "report.csv"
    r = run_cli("compare", "--topology", "hgx-h200", "--topology", "gb200-nvl72", "--batch", "16",
                "--batch", "64", "--csv", str(path))
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(path.open()))
    assert rows[0] == [h for _, h in COLUMNS]
    assert [h for _, h in COLUMNS][:8] == ["system", "gpu", "gpus", "ep", "batch [sequences/GPU]",
                                           "context [tokens]", "dtype", "tokens/s/GPU"]
    assert len(rows) == 5 and {r[0] for r in rows[1:]} == {"hgx-h200", "gb200-nvl72"}
    assert float(rows[1][7]) > 0 and rows[1][14] in ("hbm", "flops", "nvlink", "nic", "latency")


def test_compare_interactivity_picks_a_batch_per_system():
    r = run_cli("compare", "--topology", "hgx-h100", "--topology", "gb200-nvl72", "--interactivity", "20", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert all(row["tokens_per_s_per_user"] >= 20 for row in rows)
    assert rows[1]["batch"] > rows[0]["batch"]


def test_compare_sweep_names_the_leader():
    r = run_cli("compare", "--topology", "hgx-h100", "--topology", "gb200-nvl72", "--sweep")
    assert r.returncode == 0, r.stderr
    assert "gb200-nvl72 leads at every interactivity covered" in r.stdout


def test_xlsx_needs_openpyxl_or_writes(tmp_path):
    path = tmp_path / "r.xlsx"
    r = run_cli("compare", "--topology", "gb200-nvl72", "--xlsx", str(path))
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        assert r.returncode == 2 and "openpyxl" in r.stderr and r.stderr.count("\n") == 1
    else:
        assert r.returncode == 0 and path.stat().st_size > 0


@pytest.mark.parametrize("args,source", [
    (["plan", "--topology", "hgx-h100", "--dtype", "nvfp4"], "--dtype"),
    (["plan", "--topology", "hgx-h100", "--batch", "0"], "--batch"),
    (["plan", "--topology", "hgx-h100", "--ep", "32", "--gpus", "24"], "--gpus"),
    (["plan", "--topology", "hgx-h100", "--ep", "32", "--redundant", "5"], "--redundant"),
    (["plan", "--topology", "hgx-h100", "--overlap", "sometimes"], "--overlap"),
    (["plan", "--topology", "hgx-h100", "--cache-hit", "1.2"], "--cache-hit"),
    (["plan", "--topology", "hgx-h100", "--placement", "random"], "--placement"),
    (["plan", "--topology", "nope"], "--topology"),
    (["plan", "--model", "nope"], "--model"),
    (["compare", "--topology", "hgx-h100", "--csv", "/nonexistent/dir/x.csv"], "/nonexistent/dir/x.csv"),
    (["compare", "--topology", "hgx-h100", "--interactivity", "10000"], "--interactivity"),
])
def test_bad_input_one_line_exit_2(args, source):
    r = run_cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("wideep: error:") and source in r.stderr


def test_systems_on_differently_made_calibrations_are_flagged():
    """H100 runs on published H800 kernel figures, H200 on its own PyTorch measurements: a comparison says so;
    B200 and GB200 both run on AIConfigurator's tables: nothing to say."""
    from wideep.plan import PlanSpec, compare_topologies
    from wideep.plan.comparison import calibration_note

    both = compare_topologies(PlanSpec(batch=32), ("hgx-h100", "hgx-h200"))
    note = both.to_dict()["note"]
    assert "hgx-h100: published kernel benchmarks" in note and "hgx-h200: kernels measured by wideep calibrate" in note
    assert calibration_note({p.system: p.calibration for p in both.plans[:1]}) == ""
    assert compare_topologies(PlanSpec(batch=32), ("hgx-b200", "gb200-nvl72")).to_dict()["note"] == ""
