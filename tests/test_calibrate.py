"""``wideep calibrate``: the CPU half (fitting a raw record, loading the result) against the shipped files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from wideep.calibrate.fit import fit, read_record
from wideep.core.errors import CatalogError
from wideep.perf.roofline import load_calibration
from wideep.specs.hardware import load_gpu

CALIBRATION = Path(__file__).resolve().parent.parent / "topologies" / "calibration"
RAW = CALIBRATION / "raw" / "h200-sxm-2026-12-02.json"


def test_shipped_h200_file_is_the_fit_of_the_shipped_record():
    shipped = tomllib.loads((CALIBRATION / "h200-sxm.toml").read_text())
    tables = fit(read_record(RAW), load_gpu("h200-sxm"))
    assert shipped["hbm"]["efficiency"] == pytest.approx(tables["hbm"]["efficiency"], rel=1e-3)
    assert shipped["memory_kernel"]["efficiency"] == pytest.approx(tables["memory_kernel"]["efficiency"], rel=1e-3)
    # DeepSeek-V3's 41 shapes (whole and TP 2, 4, 8 slices) x 2 dtypes, then every other catalog model's
    assert len(shipped["gemm_shape"]) == len(tables["gemm_shape"]) == 556
    assert sum(c["k"] == 7168 and c["n"] == 2112 for c in tables["gemm_shape"]) == 2  # DeepSeek's q_a/kv_a, both dtypes
    # the fused MoE kernel's rows: DeepSeek-V3's two expert shapes whole at 2, 4, 8, 16 and 32 local experts, one
    # rank's slices under MoE TP 2, 4, 8 at 32, 64, 128 and 256, 2 dtypes; none of PyTorch's grouped curves left
    # beside them; then the 11 other catalog expert shapes' (two GEMMs each) whole at 2, 8 and 32 (at most their
    # experts: DBRX and Mixtral 2 and 8), 2 dtypes
    measured = [c for c in shipped["grouped_gemm"] if c["dtype"] != "mxfp4"]  # mxfp4: AIConfigurator's, below
    assert len(measured) == len(tables["grouped_gemm"]) == (2 * 5 + 6 * 4) * 2 + 2 * (8 * 3 + 3 * 2) * 2
    for a, b in zip(measured, tables["grouped_gemm"]):
        assert (a["shape"], a["n"], a["k"], a["experts"], a["dtype"]) == (
            b["shape"], b["n"], b["k"], b["experts"], b["dtype"])
        assert a["m"] == pytest.approx(b["m"], rel=1e-3) and a["efficiency"] == pytest.approx(b["efficiency"], rel=1e-3)
    for a, b in zip(shipped["gemm_shape"], tables["gemm_shape"]):
        assert (a["n"], a["k"], a["dtype"]) == (b["n"], b["k"], b["dtype"])
        assert a["efficiency"] == pytest.approx(b["efficiency"], rel=1e-3)


@pytest.mark.parametrize("gpu", ["h200-sxm", "h100-sxm"])
def test_shipped_hopper_mxfp4_experts_are_the_aic_vllm_rows(gpu):
    """The Hopper files' mxfp4 routed experts are grouped_from_moe on AIConfigurator's vLLM 0.24.0 rows of the
    weight-only MXFP4 MoE layer (benchmarks/data/aic_<gpu>_moe_vllm_mxfp4.csv), gpt-oss-120b's and -20b's."""
    from wideep.calibrate.aic import distinct, grouped_from_moe, read_rows
    from wideep.specs.model import load_model

    shipped = [c for c in tomllib.loads((CALIBRATION / f"{gpu}.toml").read_text())["grouped_gemm"]
               if c["dtype"] == "mxfp4"]
    rows = read_rows(DATA / f"aic_{gpu.removesuffix('-sxm')}_moe_vllm_mxfp4.csv")
    expected = distinct(grouped_from_moe(rows, load_gpu(gpu), load_model(m))
                        for m in ("gpt-oss-120b", "gpt-oss-20b"))
    assert len(shipped) == len(expected) > 0
    for a, b in zip(shipped, expected):
        assert ((a["n"], a["k"], a["experts"], a["covers"], a.get("moe_tp", 1))
                == (b["n"], b["k"], b["experts"], b["covers"], b.get("moe_tp", 1)))
        assert a["fixed_us"] == pytest.approx(b["fixed_us"], abs=0.01)
        assert a["efficiency"] == pytest.approx(b["efficiency"], rel=1e-3)


def test_a_moe_tp2_plan_reads_its_own_slices_curve():
    """gpt-oss's TP2 gate+up slice (2,880 x 2,880) has the TP1 down's shape; a TP2 plan reads the curve timed at
    MoE TP2 (H200: 41.88 us fixed per layer at 128 local experts), a TP1 plan the TP1 one."""
    cal = load_calibration("h200-sxm")
    rows = [c for c in tomllib.loads((CALIBRATION / "h200-sxm.toml").read_text())["grouped_gemm"]
            if c["dtype"] == "mxfp4" and (c["n"], c["k"], c["experts"]) == (2880, 2880, 128)]
    fixed_us = {c.get("moe_tp", 1): c["fixed_us"] for c in rows}
    assert set(fixed_us) == {1, 2} and fixed_us[1] != fixed_us[2]
    for moe_tp in (1, 2):
        assert cal.layer_fixed_s("mxfp4", 2880, 2880, 128, moe_tp) * 1e6 == pytest.approx(fixed_us[moe_tp])
        assert cal.shape_curve("mxfp4", 2880, 2880, 128, moe_tp).moe_tp == moe_tp


def test_plan_names_the_routed_experts_source_by_dtype():
    """An mxfp4 plan on H200 or H100 reads AIConfigurator's vLLM rows (named as such); an fp8 plan on H200 the
    measured fused kernel, on H100 (no grouped curves in fp8) the [gemm] curve, and says so."""
    from wideep.perf.roofline import kernel_origin
    from wideep.plan import PlanSpec, plan

    def routed(topology: str, dtype: str, model: str) -> str:
        spec = PlanSpec(model=model, topology=topology, tp=8, ep=1, batch=4, dtype=dtype)
        return plan(spec).calibration["routed_experts"]

    mxfp4 = routed("hgx-h200", "mxfp4", "gpt-oss-120b")
    assert mxfp4 == "h200-sxm.toml [grouped_gemm_mxfp4]" and kernel_origin(mxfp4) == "aic"
    assert routed("hgx-h200", "fp8", "deepseek-v3") == "h200-sxm.toml [grouped_gemm]"
    assert routed("hgx-h100", "mxfp4", "gpt-oss-120b") == "h100-sxm.toml [grouped_gemm_mxfp4]"
    assert routed("hgx-h100", "fp8", "deepseek-v3") == "default.toml [gemm]"


def test_efficiencies_are_physical():
    """Measured time can never beat the datasheet roofline: every efficiency in (0, 1]."""
    tables = fit(read_record(RAW), load_gpu("h200-sxm"))
    for curve in tables["gemm_shape"] + tables["grouped_gemm"] + [tables["memory_kernel"]]:
        assert all(0 < e <= 1 for e in curve["efficiency"])
    # a large bf16 GEMM reaches 60-85% of 989 TFLOP/s, HBM 80-95% of 4.8 TB/s (the H200 measured here)
    assert 0.6 < tables["flops"]["efficiency"] < 0.85 and 0.8 < tables["hbm"]["efficiency"] < 0.95


def test_plan_on_h200_uses_the_measured_file():
    cal = load_calibration("h200-sxm")
    assert cal.source_of("gemm_shape") == "h200-sxm.toml" and cal.source_of("attention") == "h200-sxm.toml"
    assert cal.shape_efficiency(64, "bf16", 4096, 7168) is not None


def test_shipped_h200_attention_is_the_fit_of_the_aic_mla_rows():
    """The H200 file's [attention] is attention_from_mla on AIConfigurator's H200 MLA decode rows (128 heads on
    one rank and 16, both KV dtypes; benchmarks/data/aic_mla_generation.csv), reproducible without the package."""
    import csv

    from wideep.calibrate.aic import attention_from_mla
    from wideep.specs.model import load_model

    data = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "aic_mla_generation.csv"
    with open(data) as fh:
        rows = [r for r in csv.DictReader(fh) if r["gpu"] == "h200-sxm"]
    fitted = attention_from_mla(rows, load_gpu("h200-sxm"), load_model("deepseek-v3"))
    shipped = tomllib.loads((CALIBRATION / "h200-sxm.toml").read_text())["attention"]
    assert shipped == pytest.approx(fitted)
    # the kernel reaches about half of H200's bf16 peak at 128 sequences of 2,048 tokens, not FlashMLA's
    # H800 figure in default.toml (0.67)
    assert shipped["flops_efficiency"] < tomllib.loads((CALIBRATION / "default.toml").read_text())["attention"][
        "flops_efficiency"]


def test_calibrate_help_needs_no_gpu():
    result = run_cli("calibrate", "--help")
    assert result.returncode == 0 and "--from-raw" in result.stdout


def test_calibrate_without_torch_or_gpu_is_one_line(tmp_path):
    result = run_cli("calibrate", "--out", str(tmp_path / "x.toml"), cwd=tmp_path)
    try:
        import torch  # noqa: F401
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is here: calibrate would measure")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.toml").exists()


def test_from_raw_writes_a_loadable_file(tmp_path):
    out = tmp_path / "h200.toml"
    result = run_cli("calibrate", "--from-raw", str(RAW), "--out", str(out))
    assert result.returncode == 0, result.stderr
    cal = load_calibration("h200-sxm", str(out))
    assert cal.source_of("grouped_gemm") == str(out)  # a user's file is named by its path


@pytest.mark.parametrize("text,problem", [
    ("{", "expected"),
    ('{"stamp": {}, "memory": [], "gemm": 3, "grouped": []}', "gemm"),
    ('{"stamp": {}, "memory": [{"bytes": 8, "s": 1e-6}], "gemm": [], "grouped": [], "fused": 3}', "fused"),
    ('{"stamp": {}, "memory": [{"bytes": 8, "s": 1e-6}], "gemm": [], "grouped": [], "fused": [{"shape": "x", '
     '"n": 8, "k": 8, "experts": 2, "dtype": "fp8", "copies": 1.0, "touched": 0, "s": 1e-6}]}', "touched"),
])
def test_malformed_raw_record(tmp_path, text, problem):
    raw = tmp_path / "raw.json"
    raw.write_text(text)
    with pytest.raises(CatalogError):
        read_record(raw)
    result = run_cli("calibrate", "--from-raw", str(raw))
    assert result.returncode == 2 and "raw.json" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def edited_record(tmp_path: Path, device: str | None = None, time_scale: float = 1.0) -> Path:
    """The shipped record with another device name and its times scaled."""
    record = json.loads(RAW.read_text())
    if device is not None:
        record["stamp"]["device"] = device
    for section in ("memory", "gemm", "grouped", "fused"):
        for row in record[section]:
            if "s" in row:
                row["s"] *= time_scale
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("device, gpu, message", [
    ("NVIDIA B200", "h200-sxm", "raw.json: stamp.device: measured on 'NVIDIA B200', not on NVIDIA H200 SXM 141GB"),
    (None, "b200", "raw.json: stamp.device: measured on 'NVIDIA H200', not on NVIDIA B200"),
])
def test_a_record_of_another_gpu_is_refused(tmp_path, device, gpu, message):
    result = run_cli("calibrate", "--from-raw", str(edited_record(tmp_path, device)), "--gpu", gpu,
                     "--out", str(tmp_path / "cal.toml"))
    assert result.returncode == 2 and message in result.stderr and not (tmp_path / "cal.toml").exists()


def test_a_row_faster_than_the_peak_is_refused_not_clamped(tmp_path):
    with pytest.raises(CatalogError, match=r"memory\[\d+\]: 1.\d\dx the h200-sxm datasheet peak"):
        fit(read_record(edited_record(tmp_path, time_scale=1 / 2.5)), load_gpu("h200-sxm"), "raw.json")


@pytest.mark.parametrize("text", ["gpu = 3", "[gemm_shape]\nn = 1", "[[gemm_shape]]\nshape='x'\nn=1\nk=1\ndtype='fp8'\nm=[1,2]\nefficiency=[0.5, 2]",
                                  "[memory_kernel]\nbytes=[2,1]\nefficiency=[0.1,0.2]", "[memory]\nworkspace_fraction = 1.0",
                                  "[[allreduce]]\ngpus=8\nbytes=[256, 512]\nus=[5.0, -1.0]",
                                  "[[allreduce]]\ngpus=8\nbytes=[256]\nus=[5.0]\n[[allreduce]]\ngpus=8\nbytes=[256]\nus=[5.0]",
                                  "[[allreduce]]\ngpus=8\nbytes=[256]",
                                  "[[grouped_gemm]]\nshape='x'\nn=1\nk=1\ndtype='fp8'\nm=[1]\nefficiency=[0.5]\nexperts=2\nfixed_us=-3.0",
                                  "[[grouped_gemm]]\nshape='x'\nn=1\nk=1\ndtype='fp8'\nm=[1]\nefficiency=[0.5]\nexperts=2\nfloor_us='x'"])
def test_malformed_calibration_is_one_line(tmp_path, text):
    path = tmp_path / "cal.toml"
    path.write_text(text)
    result = run_cli("plan", "--topology", "hgx-h200", "--ep", "8", "--calibration", str(path))
    assert result.returncode == 2 and "cal.toml" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_calibration_is_one_line(tmp_path):
    result = run_cli("plan", "--topology", "hgx-h200", "--ep", "8", "--calibration", str(tmp_path / "none.toml"))
    assert result.returncode == 2 and "none.toml" in result.stderr


def test_raw_record_is_json():
    data = json.loads(RAW.read_text())
    assert data["stamp"]["device"].startswith("NVIDIA H200") and data["stamp"]["driver"]


DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data"


def test_aic_moe_rows_become_moe_layer_curves():
    """AIConfigurator's MoE-layer rows (CSV copy) -> one curve per EP size, efficiencies in (0, 1]."""
    from wideep.calibrate.aic import grouped_from_moe, read_rows
    from wideep.specs.model import load_model

    curves = grouped_from_moe(read_rows(DATA / "aic_h200_moe_trtllm.csv"), load_gpu("h200-sxm"),
                              load_model("deepseek-v3"))
    assert {c["experts"] for c in curves} >= {8, 32} and all(c["covers"] == "moe_layer" for c in curves)
    assert all(0 < e <= 1 for c in curves for e in c["efficiency"])


def test_aic_moe_reader_keeps_the_fastest_backend_and_slices_moe_tp():
    """Two backends timed at one size: the faster stands; a moe_tp_size 4 row is the rank's quarter of each expert."""
    from wideep.calibrate.aic import grouped_from_moe
    from wideep.specs.model import load_model

    base = {"moe_dtype": "nvfp4", "hidden_size": 7168, "inter_size": 2048, "topk": 8, "num_experts": 256,
            "distribution": "balanced", "moe_ep_size": 2, "num_tokens": 64}
    rows = [base | {"moe_tp_size": 4, "kernel_source": "min_latency", "latency": 0.9},
            base | {"moe_tp_size": 4, "kernel_source": "cutlass", "latency": 0.3},
            base | {"moe_tp_size": 1, "kernel_source": "cutlass", "latency": 0.5}]
    curves = grouped_from_moe(rows, load_gpu("b200"), load_model("deepseek-v3"))
    by_name = {c["shape"]: c for c in curves}
    whole, sliced = by_name["routed_experts.gate_up.moe_layer"], by_name["routed_experts.gate_up/tp4.moe_layer"]
    assert (sliced["n"], sliced["k"]) == (whole["n"] // 4, whole["k"]) and sliced["experts"] == 128
    assert by_name["routed_experts.down/tp4.moe_layer"]["k"] == 2048 // 4
    # the curves give back the faster backend's 0.3 ms (sliced) and the 0.5 ms whole: fixed + experts' roofline / efficiency
    assert moe_layer_us(by_name, "/tp4", 64, 2) == pytest.approx(300, rel=1e-3)
    assert moe_layer_us(by_name, "", 64, 2) == pytest.approx(500, rel=1e-3)


def moe_layer_us(curves: dict, tp_suffix: str, tokens: int, ep: int, gpu: str = "b200", point: int = 0,
                 dtype: str = "nvfp4", model: str = "deepseek-v3") -> float:
    """One MoE layer's time, us, at a point of a reader's curves for AIC's row of ``tokens`` at ``ep``: fixed +
    both GEMMs' roofline over the experts AIC's balanced routing read / efficiency."""
    from wideep.calibrate.aic import balanced_active
    from wideep.calibrate.fit import gemm_roofline_s
    from wideep.specs.model import load_model

    moe = load_model(model)
    copies, read = tokens * moe.top_k / ep, balanced_active(tokens, ep, moe)
    gate_up, down = (curves[f"routed_experts.{g}{tp_suffix}.moe_layer"] for g in ("gate_up", "down"))
    roof_s = sum(gemm_roofline_s(load_gpu(gpu), dtype, copies / read, c["n"], c["k"], read) for c in (gate_up, down))
    return gate_up["fixed_us"] + roof_s / gate_up["efficiency"][point] * 1e6


def test_aic_moe_rows_count_the_experts_their_routing_read():
    """AIConfigurator's balanced routing reads every expert once the copies are as many (gpt-oss, 128 experts: 32
    tokens read all 128, where random routing reads 81): rows whose time follows the experts read give one
    efficiency, with no dip at 32 tokens."""
    from wideep.calibrate.aic import balanced_active, grouped_from_moe
    from wideep.specs.model import load_model

    model = load_model("gpt-oss-120b")
    base = {"moe_dtype": "w4a8_mxfp4_mxfp8", "hidden_size": 2880, "inter_size": 2880, "topk": 4, "num_experts": 128,
            "distribution": "balanced", "moe_ep_size": 1, "moe_tp_size": 1, "kernel_source": "trtllm"}
    tokens = (1, 16, 32, 48, 64)
    rows = [base | {"num_tokens": n, "latency": (10.0 + 3.0 * balanced_active(n, 1, model)) * 1e-3} for n in tokens]
    curve = {c["shape"]: c for c in grouped_from_moe(rows, load_gpu("b200"), model)}["routed_experts.gate_up.moe_layer"]
    assert balanced_active(32, 1, model) == 128
    assert max(curve["efficiency"][1:]) == pytest.approx(min(curve["efficiency"][1:]), rel=0.02)


def test_aic_reader_picks_the_faster_kernel_caps_borrowed_rows_and_keeps_time_rising():
    """B200 FP8, EP8 (32 local experts): TensorRT-LLM's own kernel (105, 180, 420 us at 1, 8, 64 tokens) beside
    a borrowed one (36, 1, 300 us): the borrowed wins where faster, its 1 us row (below its experts' bytes at
    the HBM peak) counts no faster than the one-token row, and 64 tokens keep their 300 us."""
    from wideep.calibrate.aic import grouped_from_moe
    from wideep.specs.model import load_model

    base = {"moe_dtype": "fp8_block", "hidden_size": 7168, "inter_size": 2048, "topk": 8, "num_experts": 256,
            "distribution": "balanced", "moe_ep_size": 8, "moe_tp_size": 1}
    own = [base | {"kernel_source": "deepgemm", "num_tokens": n, "latency": ms} for n, ms in ((1, 0.105), (8, 0.18), (64, 0.42))]
    borrowed = [base | {"kernel_source": "trtllm-gen", "num_tokens": n, "latency": ms, "borrowed": True}
                for n, ms in ((1, 0.036), (8, 0.001), (64, 0.30))]
    curves = {c["shape"]: c for c in grouped_from_moe(own + borrowed, load_gpu("b200"), load_model("deepseek-v3"))}
    times = [moe_layer_us(curves, "", n, 8, point=i, dtype="fp8") for i, n in enumerate((1, 8, 64))]
    assert times[0] == pytest.approx(36.0, rel=1e-3) and times[2] == pytest.approx(300.0, rel=1e-3)
    assert times[0] <= times[1] < 180.0


def test_aic_moe_reader_keeps_a_layers_fixed_time_once():
    """Rows where about one and four experts per rank are touched: the time their bytes do not explain is the
    layer's fixed time, the efficiency the marginal one, so more experts do not pay the fixed time again."""
    from wideep.calibrate.aic import grouped_from_moe
    from wideep.specs.model import load_model

    base = {"moe_dtype": "nvfp4", "hidden_size": 7168, "inter_size": 2048, "topk": 8, "num_experts": 256,
            "distribution": "balanced", "moe_ep_size": 8, "moe_tp_size": 1, "kernel_source": "trtllm"}
    # AIConfigurator's B300 rows of SGLang's TensorRT-LLM MoE, EP8: 36 us at one token, 46 us at four
    rows = [base | {"num_tokens": 1, "latency": 0.0360}, base | {"num_tokens": 4, "latency": 0.0463}]
    curves = {c["shape"]: c for c in grouped_from_moe(rows, load_gpu("b300"), load_model("deepseek-v3"))}
    assert 25 < curves["routed_experts.gate_up.moe_layer"]["fixed_us"] < 36
    assert moe_layer_us(curves, "", 1, 8, "b300", 0) == pytest.approx(36.0, rel=1e-3)
    assert moe_layer_us(curves, "", 4, 8, "b300", 1) == pytest.approx(46.3, rel=1e-3)


def test_aic_calibration_reproduces_its_own_rows(tmp_path):
    """Planned with the AIC-derived file, the routed-expert layer matches the rows it came from (a fit), less the
    per-token work AIC's op does on all the EP group's tokens."""
    import importlib.util
    import sys

    from wideep.calibrate.aic import grouped_from_moe, read_rows, shapes_from_gemm, token_work
    from wideep.calibrate.fit import to_toml
    from wideep.specs.model import load_model

    gpu, model = load_gpu("h200-sxm"), load_model("deepseek-v3")
    tables = {"grouped_gemm": grouped_from_moe(read_rows(DATA / "aic_h200_moe_trtllm.csv"), gpu, model),
              "gemm_shape": shapes_from_gemm(read_rows(DATA / "aic_h200_gemm_trtllm.csv"), gpu, model)}
    path = tmp_path / "aic.toml"
    path.write_text(to_toml(tables, {"source": "test"}, gpu, ["test"]))
    spec = importlib.util.spec_from_file_location("moe_validation", DATA.parent / "moe_validation.py")
    mv = importlib.util.module_from_spec(spec)
    sys.modules["moe_validation"] = mv
    spec.loader.exec_module(mv)
    measured = mv.measured()
    shape = (model.hidden, model.expert_ffn, model.top_k, model.n_experts)
    deepseek_rows = [r for r in read_rows(DATA / "aic_h200_moe_trtllm.csv")
                     if tuple(int(r[k]) for k in ("hidden_size", "inter_size", "topk", "num_experts")) == shape]
    _, per_token_s = token_work(deepseek_rows)  # one kernel
    for ep, tokens in ((8, 1024), (32, 4096), (64, 16384)):  # less the work on the EP group's every token
        expected_us = measured[ep, tokens] - per_token_s * tokens * 1e6
        assert mv.predict_us(ep, tokens, str(path)) == pytest.approx(expected_us, rel=0.15)


def test_aic_moe_rows_split_per_token_from_per_row_work():
    """latency = fixed + per_token x N + rows / ep: the split recovers constants the rows were built from."""
    from wideep.calibrate.aic import token_work

    rows = [{"moe_ep_size": ep, "num_tokens": n, "latency": (30e-6 + 6e-9 * n + 2e-7 * n / ep) * 1e3}
            for ep in (1, 8, 16, 32, 64) for n in (16, 256, 4096)]
    assert token_work(rows) == pytest.approx((30e-6, 6e-9), rel=1e-6)
    assert token_work([r for r in rows if r["moe_ep_size"] in (8, 16)]) == (0.0, 0.0)  # two EP sizes: no split


def test_from_aic_without_the_package_is_one_line():
    try:
        import aiconfigurator_core  # noqa: F401
        pytest.skip("aiconfigurator-core is installed")
    except ImportError:
        pass
    result = run_cli("calibrate", "--from-aic", "auto")
    assert result.returncode == 2 and "aiconfigurator-core" in result.stderr


def test_aic_curves_of_several_models_are_kept_once():
    """`--model all` reads every model's shapes: a curve two models share (same n, k, local experts, dtype) once."""
    from wideep.calibrate import aic_models
    from wideep.calibrate.aic import distinct, grouped_from_moe, read_rows

    rows = read_rows(DATA / "aic_h200_moe_trtllm.csv")
    gpu = load_gpu("h200-sxm")
    v3, r1 = (grouped_from_moe(rows, gpu, m) for m in aic_models("deepseek-v3") + aic_models("deepseek-r1"))
    assert v3 and distinct([v3, r1]) == v3  # R1 has V3's shapes: nothing added
    assert len(aic_models("all")) >= 20


def test_aic_allreduce_rows_become_measured_series():
    """AIConfigurator's bf16 all-reduce rows (elements, ms) -> [[allreduce]] (bytes, us) per GPU count."""
    from wideep.calibrate.aic import allreduce_series

    rows = [{"allreduce_dtype": dt, "num_gpus": n, "message_size": size, "latency": ms}
            for dt, n, size, ms in (("bfloat16", 8, 256, 0.006), ("bfloat16", 8, 128, 0.005),
                                    ("float16", 8, 128, 0.001), ("bfloat16", 2, 128, 0.004))]
    assert allreduce_series(rows, None, None) == [{"gpus": 2, "bytes": [256], "us": [4.0]},
                                                  {"gpus": 8, "bytes": [256, 512], "us": [5.0, 6.0]}]


def test_plan_takes_the_measured_allreduce_where_the_calibration_has_it():
    """B200's file holds TensorRT-LLM's measured all-reduce: the plan's term follows it and says so; a group
    size it lacks falls back to the collective model."""
    from wideep.plan import PlanSpec, plan

    p = plan(PlanSpec(model="deepseek-r1", topology="hgx-b200", ep=8, tp=8, batch=1, dtype="nvfp4"))
    cal = load_calibration("b200")
    one_token = 7168 * 2  # bf16 hidden state of the group's one token
    per_step_ms = 2 * 1e3 * cal.allreduce_s(8, one_token) * p.model.layers
    assert p.decode.breakdown_ms["tp_allreduce"] == pytest.approx(per_step_ms, rel=0.01)
    assert p.calibration["tp_allreduce"] == "b200.toml [allreduce]"
    assert cal.allreduce_s(3, one_token) is None
    h200 = plan(PlanSpec(topology="hgx-h200", ep=8, tp=8, batch=1))
    assert h200.calibration["tp_allreduce"] == "collectives/allreduce.toml"


def test_aic_mla_rows_give_attention_efficiencies():
    """Rows built from known efficiencies (KV-bound, far above the floor) give them back; the short-context and
    launch-bound rows are left out; fp8-KV rows give the fp8 efficiency against the fp8 peak."""
    from wideep.calibrate.aic import attention_from_mla
    from wideep.perf.memory import Precision, kv_read_bytes_per_sequence
    from wideep.specs.model import load_model

    gpu, model = load_gpu("gb200"), load_model("deepseek-v3")
    e_h, e_f8 = 0.6, 0.45

    def row(batch, step, kv, seconds=None):
        context = 1 + step
        nbytes = batch * kv_read_bytes_per_sequence(model, context, Precision(kv=kv)) / model.layers
        flops = batch * model.score_flops_per_token(context) / model.layers
        t = seconds or max(nbytes / (gpu.hbm_Bps * e_h), flops / (gpu.flops(kv) * (e_f8 if kv == "fp8" else 1)))
        return {"num_heads": 128, "tp_size": 1, "batch_size": batch, "isl": 1, "step": step, "latency": t * 1e3,
                "kv_cache_dtype": "bfloat16" if kv == "bf16" else "fp8"}

    rows = [row(b, s, kv) for b in (64, 256, 1024) for s in (2047, 8191) for kv in ("bf16", "fp8")]
    rows += [row(1, 63, "bf16", 10e-6), row(1024, 127, "bf16", 1e-3)]  # the floor; a query-bound row
    got = attention_from_mla(rows, gpu, model)
    assert got["hbm_efficiency"] == pytest.approx(e_h, abs=0.011)
    one = rows[0]  # bf16, KV-bound: FLOPs alone at the fitted efficiency explain it as well (MLA's fixed ratio)
    flops = one["batch_size"] * model.score_flops_per_token(1 + one["step"]) / model.layers
    assert flops / (gpu.flops("bf16") * got["flops_efficiency"]) == pytest.approx(one["latency"] * 1e-3, rel=0.03)
    assert got["flops_efficiency_fp8"] == pytest.approx(e_f8, abs=0.011)
    assert attention_from_mla([r for r in rows if r["step"] < 2047], gpu, model) == {}


def test_grouped_curve_past_its_table_follows_the_dense_shape():
    """Beyond the grouped curve's last m the efficiency grows as the dense curve of the shape does (ratio kept)."""
    from dataclasses import replace

    from wideep.perf.roofline import ShapeCurve

    base = load_calibration("h200-sxm")
    grouped = ShapeCurve(4096, 7168, "fp8", (1.0, 512.0), (0.05, 0.2), experts=8)
    dense = ShapeCurve(4096, 7168, "fp8", (1.0, 512.0, 8192.0), (0.1, 0.4, 0.8))
    cal = replace(base, shapes=(dense,), grouped=(grouped,), source="test")
    assert cal.shape_efficiency(256, "fp8", 4096, 7168, 8) == pytest.approx(grouped.efficiency_at(256))
    assert cal.shape_efficiency(8192, "fp8", 4096, 7168, 8) == pytest.approx(0.2 * 0.8 / 0.4)
    assert cal.shape_efficiency(8192, "bf16", 4096, 7168, 8) is None


def test_aic_w4a8_mxfp4_rows_become_mxfp4_curves():
    """gpt-oss's W4A8 MXFP4 rows are read as wideep's mxfp4 (its roofline at the FP4 tensor cores' peak)."""
    from wideep.calibrate.aic import grouped_from_moe
    from wideep.specs.model import load_model

    model = load_model("gpt-oss-120b")
    base = {"hidden_size": model.hidden, "inter_size": model.expert_ffn, "topk": model.top_k,
            "num_experts": model.n_experts, "distribution": "balanced", "moe_tp_size": 1, "kernel_source": "x"}
    rows = [base | {"moe_dtype": "w4a8_mxfp4_mxfp8", "moe_ep_size": 8, "num_tokens": t, "latency": 0.05}
            for t in (64, 1024)]
    curves = grouped_from_moe(rows, load_gpu("b200"), model)
    assert {c["dtype"] for c in curves} == {"mxfp4"} and all(0 < e <= 1 for c in curves for e in c["efficiency"])


def test_aic_mla_rows_with_a_fixed_cost_per_sequence_give_it_back():
    """Rows whose time is the roofline plus a fixed work per sequence (the score FLOPs of N more cached tokens at
    the peak: the query and output each sequence loads and writes) give back N and the FLOP efficiency, for
    each KV dtype, also well above the HBM balance point; at 2,048 cached tokens that work is a large share of
    the row, at 16,384 a small one, which tells the two apart."""
    from wideep.calibrate.aic import attention_from_mla
    from wideep.perf.memory import Precision, kv_read_bytes_per_sequence
    from wideep.specs.model import load_model

    gpu, model = load_gpu("b200"), load_model("deepseek-v3")
    e_h, e_f, n_seq = 0.95, {"bf16": 0.62, "fp8": 0.8}, {"bf16": 448.0, "fp8": 1856.0}
    per_token = model.score_flops_per_token(1.0) / model.layers

    def row(batch, step, kv):
        context = 1 + step
        nbytes = batch * kv_read_bytes_per_sequence(model, context, Precision(kv=kv)) / model.layers
        flops = batch * model.score_flops_per_token(context) / model.layers
        peak = gpu.flops(kv)
        t = max(nbytes / (gpu.hbm_Bps * e_h), flops / (peak * e_f[kv])) + batch * n_seq[kv] * per_token / peak
        return {"num_heads": 128, "tp_size": 1, "batch_size": batch, "isl": 1, "step": step, "latency": t * 1e3,
                "kv_cache_dtype": "bfloat16" if kv == "bf16" else "fp8"}

    rows = [row(b, s, kv) for b in (64, 256, 1024) for s in (2047, 4095, 16383) for kv in ("bf16", "fp8")]
    got = attention_from_mla(rows, gpu, model)
    assert got["flops_efficiency"] == pytest.approx(e_f["bf16"], abs=0.011)
    assert got["sequence_tokens"] == pytest.approx(n_seq["bf16"], rel=0.05)
    assert got["flops_efficiency_fp8"] == pytest.approx(e_f["fp8"], abs=0.011)
    assert got["sequence_tokens_fp8"] == pytest.approx(n_seq["fp8"], rel=0.05)


def test_aic_engines_are_named_in_the_error():
    """--aic-engine reads TensorRT-LLM's, SGLang's or vLLM's tables; another engine is a one-line error naming them."""
    from wideep.calibrate.aic import ENGINE_VERSIONS, aic_tables
    from wideep.core.errors import InputError
    from wideep.specs.model import load_model

    assert set(ENGINE_VERSIONS) == {"trtllm", "sglang", "vllm"}
    with pytest.raises(InputError, match="unknown engine 'tgi' \\(choose trtllm, sglang, vllm\\)"):
        aic_tables(Path("/nonexistent"), load_gpu("gb200"), [load_model("deepseek-v3")], "tgi")


def test_two_sources_at_once_is_one_line():
    result = run_cli("calibrate", "--from-raw", str(RAW), "--from-aic", "auto")
    assert result.returncode == 2 and "--from-aic: give --from-raw or --from-aic, not both" in result.stderr


def test_fewer_local_experts_never_take_longer_between_measured_counts():
    """The H200 file measures 2, 8 and 32 local experts: EP72 (4 slots) reads fewer bytes than EP64 (5) and
    must not take longer; 4 experts sit between the 2- and 8-expert curves."""
    from wideep.plan import PlanSpec, plan

    routed = [plan(PlanSpec(topology="hgx-h200", batch=1, ep=ep)).decode.breakdown_ms["routed_experts"]
              for ep in (32, 64, 72, 128)]
    assert routed == sorted(routed, reverse=True)
    cal = load_calibration("h200-sxm")
    two, four, eight = (cal.shape_efficiency(16, "fp8", 4096, 7168, e) for e in (2, 4, 8))
    assert min(two, eight) <= four <= max(two, eight)


def test_a_users_file_named_like_a_catalog_file_is_still_the_users(tmp_path, monkeypatch):
    """A stamp-less copy of gb200.toml given by a relative path is 'given', not the catalog's AIConfigurator file."""
    from wideep.perf.roofline import kernel_origin
    from wideep.plan import PlanSpec, plan

    text = (CALIBRATION / "gb200.toml").read_text()
    (tmp_path / "gb200.toml").write_text(text[:text.index("[stamp]")] + text[text.index("[attention]"):])
    monkeypatch.chdir(tmp_path)
    source = plan(PlanSpec(topology="gb200-nvl72", calibration="gb200.toml")).calibration["routed_experts"]
    assert source == f"{tmp_path / 'gb200.toml'} [grouped_gemm]" and kernel_origin(source) == "given"


def test_a_gpus_own_floors_override_the_defaults_key_by_key():
    """The AIConfigurator files carry their tables' fastest GEMM and MLA rows as floors; the memory floor (no
    AIConfigurator table) stays default.toml's, and the term that reads it names default.toml."""
    from wideep.perf.step import calibration_sources

    b200, h200 = load_calibration("b200"), load_calibration("h200-sxm")
    assert b200.gemm_floor_s == pytest.approx(1.71e-6, rel=0.01)
    assert b200.attention_floor_s == pytest.approx(10.32e-6, rel=0.01)
    assert h200.gemm_floor_s == pytest.approx(7.33e-6) and b200.memory_floor_s == h200.memory_floor_s
    assert calibration_sources(b200, attention="mla")["layer_kernels"] == "default.toml [kernel]"


def test_aic_reader_writes_the_fastest_rows_as_floors():
    from wideep.calibrate.aic import fastest_us

    assert fastest_us([{"latency": 0.0043}, {"latency": 0.00171}, {"latency": 0.02}]) == pytest.approx(1.71)
    assert fastest_us([]) == 0.0


def test_a_measured_moe_layer_pays_its_fixed_time_once():
    """B300 NVFP4, EP8 (32 local experts): one expert at one copy costs about AIConfigurator's one-token row of
    TensorRT-LLM's trtllm-gen kernel (SGLang's table: 35.8 us), four experts its four-token row (46.3 us), not
    four times the first."""
    from wideep.perf.step import expert_terms
    from wideep.specs.model import load_model

    model, gpu, cal = load_model("deepseek-v3"), load_gpu("b300"), load_calibration("b300")
    one = expert_terms(model, gpu, cal, "nvfp4", 1.0, 1.0, 32)
    four = expert_terms(model, gpu, cal, "nvfp4", 4.0, 4.0, 32)
    assert [t.name for t in one].count("moe_layer_fixed") == 1
    one_us, four_us = (sum(t.time_s for t in terms) * 1e6 for terms in (one, four))
    assert one_us == pytest.approx(35.8, rel=0.03) and four_us == pytest.approx(46.3, rel=0.03)


def test_fused_rows_give_curves_with_their_floor():
    """The fused kernel's rows: the least time is the curve's floor; a row within 1.5x of it only bounds the
    efficiency from below (the curve of the rows above the bound there, if higher); the rest give roofline of
    the experts touched / time at m = copies / touched."""
    from wideep.calibrate.fit import FLOOR_BOUND, fused_curves, gemm_roofline_s

    gpu = load_gpu("h200-sxm")
    row = {"shape": "e", "n": 512, "k": 7168, "experts": 32, "dtype": "fp8"}
    rows = [row | {"copies": 1.0, "touched": 1.0, "s": 20e-6}, row | {"copies": 2.0, "touched": 2.0, "s": 25e-6},
            row | {"copies": 64.0, "touched": 27.0, "s": 40e-6}, row | {"error": "out of memory"}]
    (curve,) = fused_curves(rows, gpu, "raw.json")
    assert curve["floor_us"] == 20.0 and 25e-6 < FLOOR_BOUND * 20e-6
    m = round(64 / 27, 4)
    free = gemm_roofline_s(gpu, "fp8", m, 512, 7168, 27) / 40e-6
    assert curve["m"] == [1.0, m] and curve["efficiency"] == [pytest.approx(free), pytest.approx(free)]
    rows[2]["s"] = 400e-6  # past the floor the kernel is slow: the two experts' own ratio bounds m = 1 instead
    (curve,) = fused_curves(rows, gpu, "raw.json")
    assert curve["efficiency"][0] == pytest.approx(gemm_roofline_s(gpu, "fp8", 1.0, 512, 7168, 2) / 25e-6)


def test_a_plans_routed_experts_wait_no_less_than_the_fused_kernels_floor():
    """On the shipped H200 file one token's experts (EP8, whole experts) take the fused kernel's measured floors
    of the two grouped GEMMs, 21.6 and 9.2 us, not the GEMM floor (7.3 us) nor their bytes at an efficiency."""
    from wideep.perf.step import expert_terms
    from wideep.specs.model import load_model

    cal, gpu, model = load_calibration("h200-sxm"), load_gpu("h200-sxm"), load_model("deepseek-v3")
    gate_up, down = expert_terms(model, gpu, cal, "fp8", 1.0, 1.0, 32)[:2]
    assert gate_up.time_s == pytest.approx(21.55e-6) and down.time_s == pytest.approx(9.16e-6)
    assert gate_up.binding == down.binding == "latency"
    many = expert_terms(model, gpu, cal, "fp8", 16.0, 16.0, 32)[0]  # 16 experts at one copy: their bytes bind
    assert many.binding == "hbm" and many.time_s > 4 * gate_up.time_s


def test_fused_curves_between_measured_expert_counts_predict_the_counts_left_out(tmp_path):
    """Held out: fitted on the fused rows at 2, 8, 32 (whole) and 32, 256 (MoE TP slices) local experts only,
    a plan's grouped GEMM time (efficiency interpolated in log(experts), the shape's floor) predicts the rows
    measured at 4 and 16 (whole) and 64 and 128 (slices): 464 rows, mean abs error 4.7%, 7 over 25% (worst
    -32%: one to four experts' few microseconds, between the floor and their bytes)."""
    from wideep.calibrate.fit import to_toml
    from wideep.perf.kernels import GemmShape
    from wideep.perf.step import gemm_kernel

    gpu, record = load_gpu("h200-sxm"), read_record(RAW)
    held = {4, 16, 64, 128}
    kept = record | {"fused": [r for r in record["fused"] if r["experts"] not in held]}
    path = tmp_path / "cal.toml"
    path.write_text(to_toml(fit(kept, gpu), record["stamp"], gpu, ["held-out check"]))
    cal = load_calibration("h200-sxm", str(path))
    errors = []
    for r in (r for r in record["fused"] if r["experts"] in held and "s" in r):
        g = GemmShape(r["shape"], r["n"], r["k"], "routed_experts", True)
        floor_s = cal.grouped_floor_s(r["dtype"], g.n, g.k, r["experts"])
        predicted = gemm_kernel(g, r["copies"] / r["touched"], r["dtype"], gpu, cal, r["touched"], r["experts"], floor_s)
        errors.append(predicted.time_s / r["s"] - 1)
    errors = np.abs(errors)
    assert len(errors) == 464 and errors.mean() < 0.10 and (errors > 0.25).sum() <= 12 and errors.max() < 0.40
