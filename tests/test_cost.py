"""Cost and energy: the InferenceX/NVIDIA $/Mtok formula, mixed workloads, power, price options."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from wideep.perf.cost import cost, usd_per_mtok
from wideep.core.errors import InputError
from wideep.specs.hardware import load_gpu


def test_formula_by_hand():
    # $/Mtok = $/GPU-hr x 1e6 / (3600 x tok/s/GPU) (docs/sources.md section 1): $3.6/h at 1000 tok/s -> $1/Mtok
    assert usd_per_mtok(3.6, 1000.0) == pytest.approx(1.0)


def test_deepseek_daily_cost_matches_published():
    # DeepSeek open-infra-index day 6: 226.75 nodes x 8 H800 at $2/GPU-hour = $87,072 per day (docs/sources.md 3).
    # $/Mtok x Mtok per day must give the same dollars at any throughput.
    gpus, tok_s = 226.75 * 8, 1000.0
    mtok_per_day = gpus * tok_s * 86400 / 1e6
    assert usd_per_mtok(2.0, tok_s) * mtok_per_day == pytest.approx(87_072)


def test_mix_energy_and_power():
    gpu = load_gpu("h100-sxm")  # all-in 1.73 kW, first scenario $1.30
    c = cost(gpu, output_tokens_per_s_per_gpu=1000.0, input_tokens_per_s_per_gpu=4000.0, isl=3000, osl=1000)
    assert c.price_scenario == "semianalysis-tco" and c.usd_per_gpu_hour == 1.30
    # GPU-seconds per request: 3000/4000 + 1000/1000 = 1.75 s for 4000 tokens
    assert c.usd_per_mtok_mix == pytest.approx(1.30 / 3600 * 1.75 / 4000 * 1e6)
    assert c.usd_per_mtok_input == pytest.approx(usd_per_mtok(1.30, 4000.0))
    # fleet energy: 1.75 GPU-seconds at 1,730 W per request of 1,000 output tokens (prefill GPUs included)
    assert c.joules_per_output_token == pytest.approx(1730.0 * 1.75 / 1000)
    assert c.output_tokens_per_s_per_MW == pytest.approx(1000 / 1.75 / 1730.0 * 1e6)
    assert c.decode_output_tokens_per_s_per_MW == pytest.approx(1000.0 / 1730.0 * 1e6)  # decode pool alone


def test_user_price_and_scenarios():
    gpu = load_gpu("h800-sxm")
    assert cost(gpu, 1.0, 1.0, usd_per_gpu_hour=3.0).usd_per_gpu_hour == 3.0
    assert cost(gpu, 1.0, 1.0, scenario="deepseek-v3-report").usd_per_gpu_hour == 2.0
    with pytest.raises(InputError) as e:
        cost(gpu, 1.0, 1.0, usd_per_gpu_hour=-1.0)
    assert e.value.source == "--price-per-gpu-hour"
    with pytest.raises(InputError):
        cost(gpu, 1.0, 1.0, scenario="nope")
    with pytest.raises(InputError):
        cost(gpu, 1.0, 1.0, isl=0, osl=0)


def test_cli_price_override_scales_cost():
    args = ["plan", "--topology", "hgx-h100", "--ep", "8", "--batch", "16", "--json"]
    base = json.loads(run_cli(*args).stdout)
    double = json.loads(run_cli(*args, "--price-per-gpu-hour", str(2 * base["usd_per_gpu_hour"])).stdout)
    assert double["usd_per_mtok_output"] == pytest.approx(2 * base["usd_per_mtok_output"])
    assert double["cost"]["price_scenario"] == "user"


@pytest.mark.parametrize("args,source", [
    (["--price-per-gpu-hour", "-2"], "--price-per-gpu-hour"),
    (["--price-scenario", "cheap"], "--price-scenario"),
])
def test_cli_bad_price(args, source):
    r = run_cli("plan", "--topology", "hgx-h100", "--ep", "8", *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and source in r.stderr


def test_cost_inputs_are_consistent():
    """Decode context follows ISL/OSL unless given; NVFP4 is for routed experts only; MTP needs an MTP module."""
    from wideep.plan import PlanSpec, plan
    from wideep.perf.memory import Precision

    assert PlanSpec(isl=8192, osl=1024).decode_context == 8192 + 512
    assert PlanSpec(isl=8192, osl=1024, context=4096).decode_context == 4096
    p = Precision("nvfp4")
    assert (p.weights, p.attention, p.dense) == ("nvfp4", "fp8", "fp8")
    assert Precision("nvfp4", "nvfp4").attention == "nvfp4"
    with pytest.raises(InputError, match="no MTP module"):
        plan(PlanSpec(model="qwen3-235b-a22b", topology="hgx-h200", ep=8, mtp=1))


def test_prefill_chunk_is_checked_against_memory():
    from wideep.plan import PlanSpec, plan

    with pytest.raises(InputError, match="--prefill-tokens.*at most"):
        plan(PlanSpec(topology="hgx-h100", ep=32, prefill_tokens=262144))
