"""The pytest fixtures users enable with ``pytest_plugins = ["wideep.testing"]``."""

from __future__ import annotations

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["wideep.testing"]\n'
USER_TEST = '''
def test_nvl72_beats_hgx(wideep_compare):
    plans = wideep_compare(["hgx-h100", "gb200-nvl72"], model="deepseek-v3", ep=32, batch=64)
    assert plans["gb200-nvl72"].decode.tokens_per_s_per_gpu > plans["hgx-h100"].decode.tokens_per_s_per_gpu

def test_plan_fixture(wideep_plan):
    p = wideep_plan("hgx-h200", model="mixtral-8x7b", ep=8, batch=16)
    assert p.memory.fits and p.decode.binding in ("hbm", "flops", "nvlink", "nic")

def test_search_fixture(wideep_search):
    result = wideep_search(["hgx-h200"], model="deepseek-v3", tpot_ms=10, gpus=8, mode="disagg")
    best = result["hgx-h200"]["best"]
    assert best is not None and best["tpot_ms"] <= 10 and best["tp"] > 1  # 100 tokens/s/user needs TP here

def test_a_claim_that_is_false(wideep_compare):
    plans = wideep_compare(["hgx-h100", "gb200-nvl72"], ep=32)
    assert plans["hgx-h100"].decode.tokens_per_s_per_gpu > plans["gb200-nvl72"].decode.tokens_per_s_per_gpu
'''


def test_fixtures_in_a_user_suite(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)  # the false claim fails: the fixtures can tell systems apart
