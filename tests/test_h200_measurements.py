"""Our own H200 measurements (benchmarks/data/h200_*.json, docs/calibration.md): the claims drawn from them, checked
on the saved data, and the scripts' tables printed without a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> dict:
    return json.loads((BENCH / "data" / f"h200_{name}.json").read_text())


@pytest.mark.parametrize("script,data", [("sm_carveout", "sm_carveout"), ("fp8_block_scaling", "fp8_block_scaling")])
def test_reports_print_without_a_gpu(script, data):
    r = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--report", str(BENCH / "data" / f"h200_{data}.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "NVIDIA H200" in r.stdout and r.stdout.count("\n|") > 10, r.stderr


def test_the_sm_ratio_bounds_the_measured_slowdown_of_fp8_prefill_gemms():
    """20 SMs held: plans charge 132 / 112 = 1.18x; the fp8 GEMMs take 1.09x weighted by time (docs/calibration.md)."""
    rows = [{int(c): t for c, t in r["us"].items()} for r in load("sm_carveout")["rows"] if r["dtype"] == "fp8"]
    weighted = sum(r[20] for r in rows) / sum(r[0] for r in rows)
    assert weighted == pytest.approx(1.09, abs=0.01) and weighted < 132 / 112


def test_row_wise_fp8_is_slow_at_decode_sizes_and_block_scaling_costs_little_at_prefill():
    rows = load("fp8_block_scaling")["rows"]
    decode = [r["us"]["row_wise"] / r["us"]["per_tensor"] for r in rows if r["m"] <= 64]
    prefill = [r["us"]["block"] / r["us"]["row_wise"] for r in rows if r["m"] >= 2048]
    assert min(decode) > 1.3 and sum(prefill) / len(prefill) == pytest.approx(1.08, abs=0.01)


def test_pytorch_grouped_fp8_at_256_experts_is_slow_on_the_narrow_down_slices():
    """256 local experts, m 1-4: gate+up at 0.55-0.60 of the HBM peak, the fp8 down slice of K 256 (TP8) at 0.17
    (docs/calibration.md, "Every expert on the rank")."""
    data = load("grouped_256")
    assert data["stamp"]["device"] == "NVIDIA H200"
    hbm_Bps = 4.8e12
    eff = {(r["shape"], r["dtype"], r["m"]): r["experts"] * r["n"] * r["k"] * (2 if r["dtype"] == "bf16" else 1)
           / hbm_Bps / r["s"] for r in data["grouped"] if "s" in r}
    for m in (1, 2, 4):
        assert 0.55 <= eff["routed_experts.gate_up/tp8", "fp8", m] <= 0.60
        assert eff["routed_experts.down/tp8", "fp8", m] == pytest.approx(0.17, abs=0.01)
