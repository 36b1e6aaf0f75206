"""Grouped-query decode attention (``[attention_gqa]``) against TensorRT-LLM's measured kernel
(benchmarks/attention_validation.py): fitted on one shape per GPU, every other catalog model's shape held out."""

from __future__ import annotations

import csv
import importlib.util
import sys
from dataclasses import astuple, replace
from pathlib import Path

import pytest

from wideep.calibrate.aic import attention_from_gqa
from wideep.perf.roofline import GqaAttention, Term, load_calibration
from wideep.perf.step import gqa_core
from wideep.plan import PlanSpec, plan
from wideep.specs.hardware import load_gpu
from wideep.specs.model import load_model

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
spec = importlib.util.spec_from_file_location("attention_validation", BENCH / "attention_validation.py")
val = importlib.util.module_from_spec(spec)
sys.modules["attention_validation"] = val
spec.loader.exec_module(val)
GPUS = ("h100-sxm", "h200-sxm", "b200", "b300", "gb200", "gb300")
MEAN_TOLERANCE = 0.30  # held-out mean abs error per GPU and KV dtype


@pytest.mark.parametrize("gpu", GPUS)
def test_shipped_constants_refit_from_the_rows(gpu):
    """Each file's [attention_gqa] is attention_from_gqa on its GPU's rows (the CSV holds every fitted row, its
    latencies to 5 digits)."""
    rows = [r for r in val.rows() if r["gpu"] == gpu]
    fitted = GqaAttention.of(attention_from_gqa(rows, load_gpu(gpu)))
    assert flat(load_calibration(gpu).attention_gqa) == pytest.approx(flat(fitted), rel=2e-3)


def flat(gqa: GqaAttention) -> list[float]:
    """Every number of ``gqa``, its ramps' points included, in order."""
    out = []
    for value in astuple(gqa):
        out += flat_numbers(value)
    return out


def flat_numbers(value) -> list[float]:
    return [x for v in value for x in flat_numbers(v)] if isinstance(value, tuple) else [value]


@pytest.mark.parametrize("gpu", GPUS)
def test_held_out_shapes(gpu):
    """Held out (other heads, head dims, windows, both KV dtypes): mean abs error within 30% per dtype, and
    below the MLA kernel's fit that every model's attention read before."""
    rows = [r for r in val.summary() if r[0] == gpu and r[2] == "held-out"]
    assert sorted(r[1] for r in rows) == ["bfloat16", "fp8"]
    for row in rows:
        _, kv, _, n, mean, _, _, before, _ = row
        assert n > 100 and mean <= 100 * MEAN_TOLERANCE, row
        assert mean < before, row


def test_gqa_core_by_hand():
    """The longer of the KV stream (at the GQA kernel's HBM efficiency, a linear-attention state at the
    [attention] one) and the work units (sequences x KV heads per rank x the unit's time): Qwen3's 4 KV heads
    over TP2 leave 2 per rank, over TP8 1."""
    gqa = GqaAttention(0.5, 1e-8, 5e-6, 0.25, 2e-9, 3e-6)
    core = Term("attn_core", 0.0, 0.0, "hbm", flops=0.0, hbm_bytes=1e9)
    model = load_model("qwen3-235b-a22b")
    t, floor = gqa_core(model, gqa, core, 0.0, 1e15, (0.5, 0.8), 4e12, False, 100.0, 2)
    assert t.time_s == pytest.approx(1e9 / (4e12 * 0.5)) and t.binding == "hbm" and floor == 5e-6
    t8, floor8 = gqa_core(model, gqa, core, 4e8, 1e15, (0.5, 0.8), 4e12, True, 100.0, 8)
    assert t8.time_s == pytest.approx(6e8 / (4e12 * 0.25) + 4e8 / (4e12 * 0.8)) and floor8 == 3e-6
    units, _ = gqa_core(model, gqa, core, 0.0, 1e15, (0.5, 0.8), 4e12, False, 1e6, 2)
    assert units.time_s == pytest.approx(1e6 * 2 * 1e-8) and units.binding == "latency"  # 20 ms of units > 0.5 ms


def test_gqa_ramp_is_read_at_one_softmax_layers_bytes():
    """With a ramp the KV streams at the efficiency of one softmax layer's bytes: a mean layer of 1 GB where a
    quarter of the layers are softmax ones reads the ramp at 4 GB (0.8 there, 0.4 at 1 GB)."""
    gqa = GqaAttention(0.8, 0.0, 0.0, 0.8, 0.0, 0.0, ((1e9, 4e9), (0.4, 0.8)))
    core = Term("attn_core", 0.0, 0.0, "hbm", flops=0.0, hbm_bytes=1e9)
    model = load_model("qwen3-235b-a22b")
    whole, _ = gqa_core(model, gqa, core, 0.0, 1e15, (0.5, 0.8), 4e12, False, 0.0, 1)
    quarter, _ = gqa_core(model, gqa, core, 0.0, 1e15, (0.5, 0.8), 4e12, False, 0.0, 1, softmax_share=0.25)
    assert whole.time_s == pytest.approx(1e9 / (4e12 * 0.4)) and quarter.time_s == pytest.approx(1e9 / (4e12 * 0.8))
    assert gqa.efficiency(2e9, fp8_cache=False) == pytest.approx(0.6)  # halfway in log(bytes)
    assert gqa.efficiency(2e9, fp8_cache=True) == 0.8  # no fp8 ramp: its constant


def test_gqa_table_ramps_and_constants():
    """A file's ramp holds below its largest size, its hbm_efficiency beyond; an fp8 cache without a ramp of
    its own reads the bf16 ramp unless the file gives it an efficiency."""
    table = {"hbm_efficiency": 0.9, "kv_head_us": 0.01, "ramp_bytes": [1e6, 1e8], "ramp_efficiency": [0.2, 0.6]}
    gqa = GqaAttention.of(table)
    assert gqa.efficiency(1e7, False) == pytest.approx(0.4) and gqa.efficiency(1e9, False) == 0.9
    assert gqa.efficiency(1e7, True) == pytest.approx(0.4)
    assert GqaAttention.of(table | {"hbm_efficiency_fp8": 0.5}).efficiency(1e7, True) == 0.5


def test_mtp_layers_pay_the_kernel_too():
    """Three MTP layers of MiniMax-M2 (62 layers) read their KV and pay the time per sequence and KV head as the
    others do: the step's attention grows by 65/62."""
    base = PlanSpec(model="minimax-m2", topology="hgx-h200", ep=8, batch=64)
    t0 = plan(base).decode.breakdown_ms["attn_core"]
    t3 = plan(replace(base, mtp=3)).decode.breakdown_ms["attn_core"]
    assert t3 == pytest.approx(t0 * 65 / 62, rel=0.01)


def test_plans_name_the_attention_table():
    """A grouped-query model's decode attention reads [attention_gqa], an MLA model's [attention]."""
    base = PlanSpec(model="qwen3-235b-a22b", topology="hgx-h200", ep=8, batch=64)
    gqa = plan(base).to_dict()["calibration"]["attn_core"]
    mla = plan(replace(base, model="deepseek-v3")).to_dict()["calibration"]["attn_core"]
    assert gqa.endswith("[attention_gqa]") and mla.endswith("[attention]")
