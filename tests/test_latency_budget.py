"""TensorRT-LLM's measured kernels of a minimum-latency DeepSeek-R1 step (benchmarks/latency_budget.py)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "latency_budget.py"
spec = importlib.util.spec_from_file_location("latency_budget", BENCH)
lb = importlib.util.module_from_spec(spec)
sys.modules["latency_budget"] = lb
spec.loader.exec_module(lb)
ROWS = lb.load_rows()


def test_gemm_on_the_grid_is_the_row_and_between_rows_lies_between():
    at = lambda n, k: lb.gemm_us(ROWS, "h200_sxm", "fp8_block", 4, n, k)
    assert at(2048, 7168) == ROWS[("h200_sxm", "gemm", "fp8_block", "", 4, 2048, 7168)]
    assert min(at(2048, 7168), at(2560, 7168)) <= at(2112, 7168) <= max(at(2048, 7168), at(2560, 7168))


def test_h200_attention_module_row():
    """AIC's whole attention module, 16 heads (one TP8 rank), 4 one-token sequences, 2,048 cached: 58.6 us."""
    assert ROWS[("h200_sxm", "mla_module", "bfloat16", "fp8_block", 4, 16, 2048)] == pytest.approx(58.6, abs=0.1)


@pytest.mark.parametrize("case", lb.CASES, ids=lambda c: c.name)
def test_measured_kernels_leave_a_third_of_the_published_step_unexplained(case):
    """The kernels' sum is 55-65% of each published step (busiest rank read as AIC's balanced one here)."""
    layer = lb.aic_layer_us(ROWS, case, busiest_experts=case.tokens * 8 / case.moe[1])
    published_ms = 1000 * case.accepted / case.published_tok_s_user
    assert 0.5 < lb.aic_step_ms(layer, case, "busiest") / published_ms < 0.7
