"""Held-out single-node serving points of SemiAnalysis InferenceX (benchmarks/inferencex_validation.py): each
point's tokens/s per user (1000 / mean TPOT) within 25%, except the listed misses, counted per group (strict: a
group whose count of misses changes turns red until the list is updated). Output tokens/s per GPU is printed by
the script, not tested: InferenceX averages it over the whole run, ramp and drain included."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "inferencex_validation", Path(__file__).resolve().parents[1] / "benchmarks" / "inferencex_validation.py")
ix = importlib.util.module_from_spec(_spec)
sys.modules["inferencex_validation"] = ix
_spec.loader.exec_module(ix)

TOLERANCE = 0.25
POINTS = ix.points()
GROUPS = list(dict.fromkeys(p.group for p in POINTS))
# Groups with points over 25%: group -> (points over at the last run, why).
KNOWN_MISSES = {
    "deepseek-r1 B200 sglang v0.5.6 fp8": (4, "+28..+43% at 16-64 sequences: SGLang 0.5.6 (December 2025), launched "
                                              "as 0.5.12 is (flashinfer_trtllm MoE, trtllm_mla), which reads 7.9% on "
                                              "the same GPU five months later; which of its kernels was slower is not "
                                              "known"),
    "gpt-oss-120b B200 trtllm 1.2.0rc2 mxfp4": (1, "-28% at 64 sequences, attention DP2 x EP2, 1K/1K: the launch "
                                                   "forces TensorRT-LLM's one-sided MNNVL all-to-all, whose fixed "
                                                   "cost on a B200 pair is not measured (GB200's EP2 rows: 13 + 16 us "
                                                   "a layer, 0.9 ms of a 5.5 ms step). All 7 attention-DP points "
                                                   "read slow or near (-28..+4%): a bias, not 1 outlier"),
    "gpt-oss-120b B200 vllm v0.13.0 mxfp4": (2, "+29..+30% at TP8 with 8 sequences: vLLM takes about 0.6 ms more "
                                                "per step than TensorRT-LLM on the same GPU (2.89 against 2.19 ms at 4 "
                                                "sequences), whose kernels the plan reads"),
}


@functools.lru_cache(maxsize=None)
def error(p) -> float:
    per_user, _ = ix.predicted(p)
    return per_user / p.tokens_per_s_per_user - 1


def test_every_listed_miss_is_a_group():
    assert set(KNOWN_MISSES) <= set(GROUPS)


@pytest.mark.parametrize("group", GROUPS)
def test_inferencex_group(group):
    over = [f"{p.point} {100 * error(p):+.0f}%" for p in POINTS if p.group == group and abs(error(p)) > TOLERANCE]
    allowed, why = KNOWN_MISSES.get(group, (0, ""))
    assert len(over) <= allowed, f"{group}: {len(over)} points over {TOLERANCE:.0%} (listed {allowed}): {over} {why}"
    assert len(over) == allowed, f"{group}: {len(over)} points miss, {allowed} listed: update KNOWN_MISSES"
