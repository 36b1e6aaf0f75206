"""Step-time model, calibration and memory fit: tiny hand-checkable cases first, then catalog models."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from wideep.core.errors import CatalogError, InputError
from wideep.specs.hardware import GPU, load_gpu
from wideep.perf.memory import Precision, kv_bytes_per_sequence, memory_fit, replicated_weight_bytes
from wideep.specs.model import Attention, Model, load_model
from wideep.perf.step import step_time
from wideep.perf.workload import CommCurve, ExpertParallel, Workload, single_gpu
from wideep.perf.roofline import RESOURCES, Calibration, load_calibration, roofline

ZERO = CommCurve.constant(0.0)

CALIBRATION = Path(__file__).resolve().parent.parent / "topologies" / "calibration"


def tiny_model(**kw) -> Model:
    """1 MoE layer, hidden 1000, 4 experts of FFN 100, top-2, one GQA head of dim 10, vocab 10."""
    fields = dict(id="tiny", name="tiny", architecture="test", hidden=1000, layers=1, moe_layers=1, dense_layers=0,
                  dense_ffn=0, n_experts=4, top_k=2, expert_ffn=100, shared_ffn=0, n_group=1, topk_group=1,
                  vocab=10, tie_embeddings=False, attention=Attention("gqa", 1, 1, 10, 10))
    return Model(**(fields | kw))


def round_gpu(**kw) -> GPU:
    """1 TFLOP/s in every dtype, 1 TB/s HBM, 10 GB usable."""
    fields = dict(id="round", name="Round GPU", arch="blackwell",
                  flops_per_s={"bf16": 1e12, "fp8": 1e12, "nvfp4": 1e12}, hbm_bytes=10e9, hbm_usable_bytes=10e9,
                  hbm_Bps=1e12, nvlink_Bps=1e11, nic="x", nic_Bps=1e10, tdp_W=1000.0, all_in_W=2000.0,
                  price_usd_per_gpu_hour={"flat": 2.0})
    return GPU(**(fields | kw))


PERFECT = Calibration("test", (1.0, 1e4), {"*": (1.0, 1.0)}, 1.0, 1.0, 1.0, {"*": 1.0}, 0.0)
BF16 = Precision("bf16", "bf16", "bf16")


def ep2(share: float = 0.5, dispatch: CommCurve = ZERO, combine: CommCurve = ZERO) -> ExpertParallel:
    return ExpertParallel(2, 2, share, dispatch, combine, "scale_out")


def decode(batch: int = 4, **kw) -> Workload:
    return Workload("decode", batch, 100, precision=BF16, overlap=kw.pop("overlap", "none"), **kw)


def term(result, name):
    return next(t for t in result.terms if t.name == name)


def test_roofline_picks_the_slower_side():
    t = roofline("x", flops=1e12, hbm_bytes=4e12, peak_flops=1e12, peak_Bps=1e12, efficiency=(0.5, 0.8))
    assert t.binding == "hbm" and t.sol_s == pytest.approx(4.0) and t.time_s == pytest.approx(5.0)


def test_routed_experts_by_hand():
    # busiest GPU: 4 tokens x top-2 x 2 GPUs x share 0.5 = 8 selections; FLOPs 2 x 8 x 3e5 = 4.8e6,
    # bytes 2 slots x 3e5 x 2 B + 8 x (2000 + 2000) activation bytes = 1.232e6 -> FLOP-bound, 4.8 us.
    r = step_time(tiny_model(), round_gpu(), PERFECT, decode(4), ep2())
    t = term(r, "routed_experts")
    assert t.flops == pytest.approx(4.8e6)
    # weights of the experts touched: 2 slots x (1 - e^-4) (8 copies spread over 2 slots) x 3e5 x 2 B;
    # GEMM activations: gate_up 8 x (1000 + 200) x 2 B, down 8 x (100 + 1000) x 2 B; around the GEMMs:
    # permute 8 x 2 x 1000 x 2 B, SiLU-mul 8 x (2 x 200 + 100 x 2) B, unpermute 8 x 1000 x 2 B
    touched = 2 * -math.expm1(-4.0)
    expected = touched * 3e5 * 2 + 8 * 1200 * 2 + 8 * 1100 * 2 + 8 * 4000 + 8 * 600 + 8 * 2000
    assert t.hbm_bytes == pytest.approx(expected)
    assert t.time_s == pytest.approx(t.sol_s) and t.time_s >= 4.8e-6  # perfect calibration: time is the roofline


def test_an_all_gather_writes_a_row_for_every_token_of_the_group():
    """Under an all-gather (ep.gathers) each GPU's MoE layer writes an output row for the other GPU's 4 tokens:
    4 x 1000 x 2 B = 8 kB at 1 TB/s; without one there is no such term."""
    gathered = step_time(tiny_model(), round_gpu(), PERFECT, decode(4), replace(ep2(), gathers=True))
    assert term(gathered, "gathered_outputs").hbm_bytes == pytest.approx(4 * 1000 * 2)
    assert term(gathered, "gathered_outputs").time_s == pytest.approx(8e-9)
    assert not any(t.name == "gathered_outputs" for t in step_time(tiny_model(), round_gpu(), PERFECT, decode(4),
                                                                      ep2()).terms)


def test_busiest_share_scales_routed_time():
    a = term(step_time(tiny_model(), round_gpu(), PERFECT, decode(4), ep2(0.5)), "routed_experts")
    b = term(step_time(tiny_model(), round_gpu(), PERFECT, decode(4), ep2(0.75)), "routed_experts")
    assert b.time_s / a.time_s == pytest.approx(1.5)


def test_attention_and_lm_head_by_hand():
    r = step_time(tiny_model(), round_gpu(), PERFECT, decode(4), ep2())
    core = term(r, "attn_core")
    # KV: 4 sequences x 100 tokens x (K + V: 20 values x 2 B); scores: 4 tokens x 2 x 1 head x 20 x 100
    assert core.hbm_bytes == pytest.approx(4 * 100 * 40)
    assert core.flops == pytest.approx(4 * 2 * 20 * 100)
    head = term(r, "lm_head")
    # weights 10 x 1000 x 2 B, then 4 tokens in (1000 x 2 B) and 4 logits out (10 x 2 B)
    assert head.flops == pytest.approx(2 * 4 * 10 * 1000) and head.hbm_bytes == pytest.approx(20000 + 4 * 2020)


def test_overlap_modes():
    comm = CommCurve.constant(1e-3)  # 1 ms per phase per MoE layer, whatever the tokens
    none = step_time(tiny_model(), round_gpu(), PERFECT, decode(4, overlap="none"), ep2(0.5, comm, comm))
    tbo = step_time(tiny_model(), round_gpu(), PERFECT, decode(4, overlap="tbo"), ep2(0.5, comm, comm))
    auto = step_time(tiny_model(), round_gpu(), PERFECT, decode(4, overlap="auto"), ep2(0.5, comm, comm))
    assert none.comm_s == pytest.approx(2e-3) and none.step_s == pytest.approx(none.compute_s + 2e-3)
    # two halves: each MoE layer takes max(both halves' compute, both halves' 2 ms); the first half's
    # compute is not hidden (pipeline fill), nor is the LM head
    assert tbo.comm_s == pytest.approx(4e-3) and 4e-3 < tbo.step_s < 4e-3 + tbo.compute_s
    assert tbo.micro_batches == 2 and tbo.binding == "nic"
    assert auto.step_s == min(none.step_s, tbo.step_s)
    single = step_time(tiny_model(), round_gpu(), PERFECT, decode(1, overlap="tbo"), ep2(0.5, comm, comm))
    assert single.micro_batches == 1  # one sequence cannot be split


def test_auto_overlap_does_not_split_a_batch_behind_an_all_gather():
    """Where two micro-batches pay (communication in proportion to the tokens), ``auto`` splits the batch,
    except behind an all-gather, which no engine splits; ``tbo`` still does as told."""
    tokens = tuple(float(2 ** i) for i in range(12))
    comm = CommCurve(tokens, tuple(1e-7 * t for t in tokens), (0.0,) * 12, (0.0,) * 12)
    deepep, gathered = ep2(0.5, comm, comm), replace(ep2(0.5, comm, comm), gathers=True)
    plan = {(o, ep.gathers): step_time(tiny_model(), round_gpu(), PERFECT, decode(64, overlap=o), ep).micro_batches
            for o in ("auto", "tbo") for ep in (deepep, gathered)}
    assert plan == {("auto", False): 2, ("auto", True): 1, ("tbo", False): 2, ("tbo", True): 2}
    prefill = Workload("prefill", 1, 100, 64, precision=BF16, overlap="auto")
    assert [step_time(tiny_model(), round_gpu(), PERFECT, prefill, ep).micro_batches for ep in (deepep, gathered)] \
        == [2, 1]


def test_mtp_throughput():
    wl = decode(4, mtp=1, acceptance=0.8)
    r = step_time(tiny_model(), round_gpu(), PERFECT, wl, ep2())
    assert wl.output_per_sequence == pytest.approx(1.8)
    assert r.tokens_per_s_per_user == pytest.approx(1.8 / r.step_s)
    assert r.tokens_per_s_per_gpu == pytest.approx(4 * 1.8 / r.step_s)
    assert term(r, "routed_experts").flops == pytest.approx(2 * 2 * 4.8e6)  # 2 tokens/seq, 2 MoE layers


def test_sol_ratio_at_least_one():
    cal = load_calibration()
    for mode in ("none", "tbo", "auto"):
        r = step_time(load_model("deepseek-v3"), load_gpu("h100-sxm"), cal,
                      Workload("decode", 32, 4096, overlap=mode), ep2(1 / 2))
        assert r.sol_ratio >= 1 and r.binding in RESOURCES
        assert all(t.binding in RESOURCES and t.time_s >= t.sol_s for t in r.terms)


def test_prefill_counts_cache_hits_as_served_not_computed():
    m, gpu, cal = load_model("deepseek-v3"), load_gpu("h800-sxm"), load_calibration()
    cold = step_time(m, gpu, cal, Workload("prefill", 1, 4000, 8000, cache_hit=0.0), single_gpu(m))
    warm = step_time(m, gpu, cal, Workload("prefill", 1, 4000, 8000, cache_hit=0.5), single_gpu(m))
    # same computed tokens per step; half the prompt comes from the cache so twice the prompts are served,
    # but each computed token attends to a longer prefix (more attention work per step)
    assert term(warm, "attn_proj").flops == pytest.approx(term(cold, "attn_proj").flops)
    assert term(warm, "attn_core").flops > term(cold, "attn_core").flops
    assert warm.tokens_per_s_per_gpu / cold.tokens_per_s_per_gpu == pytest.approx(2 * cold.step_s / warm.step_s)


def test_nvfp4_on_hopper_is_a_clear_error():
    wl = Workload("decode", 8, 1024, precision=Precision("nvfp4"))
    with pytest.raises(InputError, match="no nvfp4 tensor cores") as e:
        step_time(load_model("deepseek-v3"), load_gpu("h100-sxm"), load_calibration(), wl, ep2())
    assert e.value.source == "--dtype"
    r = step_time(load_model("deepseek-v3"), load_gpu("gb200"), load_calibration(), wl, ep2())
    assert r.step_s > 0


@pytest.mark.parametrize("field,value", [("phase", "train"), ("overlap", "three"), ("batch", 0), ("context", 0),
                                         ("cache_hit", 1.0), ("mtp", -1), ("acceptance", 1.5)])
def test_bad_workload(field, value):
    with pytest.raises(InputError):
        Workload(**{field: value})


# --- calibration ---------------------------------------------------------------------------------------

def test_default_calibration_is_sane():
    cal = load_calibration()
    assert all(0 < y <= 1 for ys in cal.gemm_efficiency.values() for y in ys)
    assert cal.gemm(64) == pytest.approx(0.71) and cal.gemm(1e6) == cal.gemm(8192)
    assert 0 < cal.hbm_efficiency <= 1 and 0 < cal.flops() <= 1 and 0 <= cal.workspace_fraction < 1


def test_gpu_specific_calibration_wins(tmp_path, monkeypatch):
    """A file named after a GPU id replaces the default tables it defines, for that GPU only."""
    from wideep.perf import roofline

    (tmp_path / "default.toml").write_text((roofline.calibration_dir() / "default.toml").read_text())
    (tmp_path / "h200-sxm.toml").write_text('gpu = "h200-sxm"\n[hbm]\nefficiency = 0.5\n')
    monkeypatch.setattr(roofline, "calibration_dir", lambda: tmp_path)
    assert load_calibration("h200-sxm").hbm_efficiency == 0.5
    assert load_calibration("h100-sxm").hbm_efficiency == load_calibration().hbm_efficiency


def test_default_hbm_efficiency_matches_the_measured_h200():
    """default.toml's HBM efficiency against the copy bandwidth measured on a real H200 (docs/calibration.md)."""
    measured = load_calibration("h200-sxm")  # topologies/calibration/h200-sxm.toml, wideep calibrate 2026-12-02
    assert load_calibration().hbm_efficiency == pytest.approx(measured.hbm_efficiency, abs=0.02)


def write(tmp_path, text):
    p = tmp_path / "cal.toml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("text,field", [
    ("[gemm]\ntokens_per_expert = [1, 8]\nefficiency = [0.5]\n", "gemm.efficiency"),
    ("[gemm]\ntokens_per_expert = [8, 1]\nefficiency = [0.5, 0.5]\n", "gemm.tokens_per_expert"),
    ("[gemm]\ntokens_per_expert = [1, 8]\nefficiency = [0.5, 1.5]\n", "gemm.efficiency"),
    ("[hbm]\nefficiency = -0.1\n", "hbm.efficiency"),
    ("[hbm]\nefficency = 0.9\n", "hbm.efficency"),
    ('gpu = "b200"\n', "gpu"),
    ("[attention]\nhbm_efficiency = 0.8\nflops_efficiency = 0.6\nhbm_efficiency_fp8 = 1.5\n",
     "attention.hbm_efficiency_fp8"),
    ("[attention_gqa]\nhbm_efficiency = 1.5\nkv_head_us = 0.01\n", "attention_gqa.hbm_efficiency"),
    ("[attention_gqa]\nhbm_efficiency = 0.8\n", "attention_gqa.kv_head_us"),
    ("[attention_gqa]\nhbm_efficiency = 0.8\nkv_head_us = -1.0\n", "attention_gqa.kv_head_us"),
    ("[attention_gqa]\nhbm_efficiency = 0.8\nkv_head_us = 0.01\nramp_bytes = [2, 1]\nramp_efficiency = [0.5, 0.6]\n",
     "attention_gqa.ramp_bytes"),
    ("[attention_gqa]\nhbm_efficiency = 0.8\nkv_head_us = 0.01\nramp_bytes = [1, 2]\nramp_efficiency = [0.5, 1.6]\n",
     "attention_gqa.ramp_bytes"),
    ("[attention_gqa]\nhbm_efficiency = 0.8\nkv_head_us = 0.01\nramp_bytes_fp8 = [1, 2]\n",
     "attention_gqa.ramp_efficiency_fp8"),
])
def test_bad_calibration_file(tmp_path, text, field):
    with pytest.raises(CatalogError) as e:
        load_calibration("h100-sxm", write(tmp_path, text))
    assert e.value.field == field


def test_user_calibration_overlays(tmp_path):
    cal = load_calibration("h100-sxm", write(tmp_path, "[hbm]\nefficiency = 0.5\n"))
    assert cal.hbm_efficiency == 0.5 and cal.gemm(64) == load_calibration().gemm(64)


# --- memory --------------------------------------------------------------------------------------------

def test_memory_by_hand():
    m, gpu = tiny_model(), round_gpu()
    # replicated: attention 1000 x 10 x 3 + 10 x 1000 = 40,000; router 4,000; embedding + head 20,000 (bf16)
    assert replicated_weight_bytes(m, BF16) == pytest.approx(2 * (40_000 + 4_000 + 20_000))
    fit = memory_fit(m, gpu, slots_per_gpu=2, sequences=3, context=100, prec=BF16, workspace_fraction=0.1)
    per_seq = 100 * 40  # K + V, 20 values x 2 B per token, one layer
    assert fit.expert_weights_bytes == pytest.approx(2 * 3e5 * 2)
    assert fit.kv_bytes == pytest.approx(3 * per_seq) and fit.workspace_bytes == pytest.approx(1e9)
    free = 10e9 - fit.weights_bytes - 1e9
    assert fit.fits and fit.max_batch == int(free // per_seq)
    assert fit.max_context == int(free // (3 * 40))


def test_memory_deepseek_kv_matches_published():
    # DeepSeek-V3 MLA, BF16: 70,272 B per token over 61 layers (docs/sources.md section 2)
    assert kv_bytes_per_sequence(load_model("deepseek-v3"), 1000, Precision()) == pytest.approx(70_272 * 1000)


def test_memory_does_not_fit_is_reported():
    m, gpu = load_model("deepseek-v3"), load_gpu("h100-sxm")
    fit = memory_fit(m, gpu, 9, 4096, 131072, Precision(), 0.1)
    assert not fit.fits and fit.max_batch < 4096 and fit.max_context < 131072
    big = memory_fit(m, gpu, 257, 1, 1024, Precision("bf16"), 0.1)  # all experts in bf16 on one H100
    assert not big.fits and big.max_batch == 0 and big.max_context == 0


def test_nvfp4_weights_are_smaller():
    m = load_model("deepseek-v3")
    f8 = memory_fit(m, load_gpu("gb200"), 9, 1, 1024, Precision("fp8"), 0.1)
    f4 = memory_fit(m, load_gpu("gb200"), 9, 1, 1024, Precision("nvfp4"), 0.1)
    assert f4.expert_weights_bytes < 0.6 * f8.expert_weights_bytes
    assert Precision("fp8").attention == "fp8" and Precision("fp8", "bf16").attention == "bf16"


def test_mtp_draft_steps_reuse_the_one_mtp_module():
    """DeepSeek-V3 ships one MTP module that every draft step reuses: three draft tokens hold the weights and KV
    of that one module (over MTP 0: one more MoE layer of experts), while each step runs it once more."""
    from dataclasses import replace

    from wideep.plan import PlanSpec, plan

    base = PlanSpec(model="deepseek-r1", topology="hgx-h200", ep=8, tp=8, batch=1)
    none, one, three = (plan(replace(base, mtp=m)) for m in (0, 1, 3))
    assert three.memory.weights_bytes == one.memory.weights_bytes > none.memory.weights_bytes
    assert three.memory.kv_bytes == one.memory.kv_bytes
    assert three.decode.step_s > one.decode.step_s  # the module runs once per draft step


def test_router_topk_is_not_charged_twice_where_the_moe_layer_was_measured():
    """A routed-expert curve that timed the whole MoE layer (``covers = "moe_layer"``, the Blackwell files)
    holds the router top-k: the layer's own kernels leave it out, and only then."""
    from dataclasses import replace

    from wideep.perf.kernels import moe_kernels
    from wideep.perf.step import activation_dtype, memory_kernels, routed_shapes

    model, gpu, cal = load_model("deepseek-v3"), load_gpu("gb200"), load_calibration("gb200")
    as_gemms = replace(cal, grouped=tuple(replace(c, covers="gemm") for c in cal.grouped))
    topk = [k for k in moe_kernels(model, activation_dtype(gpu, "nvfp4")) if k.name == "router_topk"]
    # EP8 (32 local experts, MoE TP1) and TP8 (EP1: 256 local experts, each expert's 1/8): both measured; a
    # step's layer_kernels hold the top-k of every MoE layer, at the GPU's 64 / tp tokens
    for ep, tp in ((8, 1), (1, 8)):
        topk_s = memory_kernels(topk, 64 / tp, 0, gpu, cal)[0].time_s
        assert topk_s > 0
        wl = Workload("decode", 64, 2000, tp=tp, precision=Precision("nvfp4"), moe_tp=tp)
        group = ExpertParallel(ep, 256 // ep, 1 / ep, ZERO, ZERO)
        gate_up = routed_shapes(model, tp)[0]
        assert cal.routes_in_moe_layer("nvfp4", gate_up.n, gate_up.k, 256 // ep, tp)
        with_moe_layer, with_gemms = (term(step_time(model, gpu, c, wl, group), "layer_kernels").time_s
                                      for c in (cal, as_gemms))
        assert with_gemms - with_moe_layer == pytest.approx(model.moe_layers * topk_s, rel=1e-6), (ep, tp)
