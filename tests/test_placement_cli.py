"""``wideep place`` through the installed command."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

BASE = ["place", "--model", "qwen3-30b-a3b", "--topology", "hgx-h100", "--gpus", "16", "--redundant", "16",
        "--tokens", "32"]


def test_compare_json_has_every_algorithm():
    res = run_cli(*BASE, "--routing", "topics:4", "--compare", "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["algorithm"] for r in rows] == ["contiguous", "balanced", "topology"]
    for r in rows:
        assert {"algorithm", "balancedness_mean", "balancedness_min", "cross_domain_copies_per_token",
                "dispatch_us", "combine_us", "runtime_s"} <= set(r)
    by = {r["algorithm"]: r for r in rows}
    assert by["topology"]["cross_domain_copies_per_token"] <= by["balanced"]["cross_domain_copies_per_token"]


@pytest.mark.parametrize("fmt", ["sglang", "trtllm"])
def test_out_file_loads_back(tmp_path, fmt):
    path = tmp_path / ("p.yaml" if fmt == "trtllm" else "p.json")
    res = run_cli(*BASE, "--routing", "uniform", "--algorithm", "balanced", "--out", str(path), "--format", fmt)
    assert res.returncode == 0, res.stderr
    assert "balanced" in res.stdout and f"wrote {path}" in res.stdout
    from wideep.model import load_model
    from wideep.placement_io import load_placement
    from wideep.topology import load_cluster

    p = load_placement(path, load_model("qwen3-30b-a3b"), load_cluster("hgx-h100", 16), 16)
    assert p.phy2log.shape == (48, 144)


@pytest.mark.parametrize("extra, needle", [
    (["--routing", "uniform", "--redundant", "5"], "--redundant"),
    (["--routing", "uniform", "--algorithm", "magic"], "--algorithm"),
    (["--routing", "uniform", "--format", "onnx", "--out", "x"], "--format"),
    ([], "--stats"),
    (["--routing", "uniform", "--stats", "s.npz"], "--stats"),
    (["--routing", "uniform", "--ep", "64"], "--ep"),
])
def test_bad_input_one_line_exit_2(extra, needle):
    res = run_cli(*BASE, *extra)
    assert res.returncode == 2
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
