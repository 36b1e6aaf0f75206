"""MLA decode attention (``[attention]``) against TensorRT-LLM's measured kernel (benchmarks/mla_validation.py):
fitted on 128 and 16 heads a rank, the other head counts held out."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from wideep.calibrate.aic import attention_from_mla
from wideep.specs.hardware import load_gpu
from wideep.specs.model import load_model

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("mla_validation", ROOT / "benchmarks" / "mla_validation.py")
val = importlib.util.module_from_spec(spec)
sys.modules["mla_validation"] = val
spec.loader.exec_module(val)
MEAN_TOLERANCE = 15.0  # held-out mean abs error per GPU and KV dtype, %
FILES = {"b200": "b200.toml", "b300": "b300.toml", "gb200": "gb200.toml", "gb300": "gb300.toml",
         "h200-sxm": "h200-sxm.toml", "h100-sxm": "trtllm/h100-sxm.toml"}


@pytest.mark.parametrize("gpu", sorted(FILES))
def test_shipped_attention_is_the_fit_of_the_rows(gpu):
    """Each file's [attention] is attention_from_mla on its GPU's rows (the CSV holds every fitted row)."""
    shipped = tomllib.loads((ROOT / "topologies" / "calibration" / FILES[gpu]).read_text())["attention"]
    assert shipped == pytest.approx(attention_from_mla(val.rows(gpu), load_gpu(gpu), load_model(val.MODEL)))


def test_held_out_head_counts():
    """64, 32, 8, 4, 2 and 1 heads a rank, both KV dtypes, every GPU: mean abs error within 15%."""
    held = [r for r in val.summary() if r[2] == "held-out"]
    assert len(held) == 2 * len(val.GPUS)
    for gpu, kv, _, n, mean, *_ in held:
        assert n > 150 and mean <= MEAN_TOLERANCE, (gpu, kv, mean)


def test_the_kv_side_is_the_memory_bound_rows():
    """On H200 the 128-head rows alone put the KV side at 0.54 of HBM (the kernel is near the ridge there and its
    bytes cannot be told from its FLOPs); 16 heads a rank stream at 0.87, and 64 heads a rank read within 10%
    on it where the 128-head fit read them about 60% slow."""
    h200 = [r for r in val.summary() if r[0] == "h200-sxm" and r[1] == "bfloat16" and r[2] == "held-out"][0]
    assert h200[4] < 10.0 and h200[6] > 50.0


def test_plans_read_the_kv_side_of_their_cache():
    """A decode plan's MLA core streams a bf16 cache at hbm_efficiency and an fp8 one at hbm_efficiency_fp8 (H200:
    0.87 and 0.55); a file without the fp8 one reads the bf16 one for both."""
    from wideep.perf.roofline import load_calibration
    from wideep.perf.step import core_rate

    gpu, cal = load_gpu("h200-sxm"), load_calibration("h200-sxm")
    assert core_rate(gpu, cal, "decode")[1][1] == cal.attention_hbm_efficiency == pytest.approx(0.87)
    assert core_rate(gpu, cal, "decode", fp8_cache=True)[1][1] == pytest.approx(0.55)
    plain = load_calibration("h100-sxm")  # FlashMLA's published figures, one KV side
    assert core_rate(load_gpu("h100-sxm"), plain, "decode", fp8_cache=True)[1][1] == plain.attention_hbm_efficiency
