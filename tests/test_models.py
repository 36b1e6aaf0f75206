"""Issue 11 item 1: the architectures deployed today, their attention costs, weight formats and KV layouts,
and the consistency checks on model files (docs/sources.md section 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from test_bad_input import assert_one_line_error
from wideep.core import catalog, units
from wideep.perf.memory import Precision, expert_weight_bytes
from wideep.plan.deployment import plan
from wideep.plan.spec import PlanSpec
from wideep.specs.model import load_model

NEW = ["deepseek-v2", "deepseek-v2-lite", "deepseek-v3.2-exp", "glm-4.5", "glm-4.5-air", "qwen3-next-80b-a3b",
       "minimax-m2", "kimi-k2-thinking", "llama-4-scout", "gpt-oss-20b"]


def config_file(tmp_path, model_id: str, **edits) -> str:
    """The ``[config]`` table of a catalog model written as a Hugging Face config.json, with ``edits``."""
    cfg = catalog.read_file(catalog.resolve("models", model_id))["config"]
    cfg.update(edits)
    path = tmp_path / model_id / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.mark.parametrize("model_id", NEW)
def test_config_json_reads_like_the_catalog(tmp_path, model_id):
    m, ref = load_model(config_file(tmp_path, model_id)), load_model(model_id)
    assert (m.architecture, m.total_params, m.active_params) == (ref.architecture, ref.total_params, ref.active_params)
    assert m.kv_bytes(4096, "bf16") == ref.kv_bytes(4096, "bf16")


def test_shapes_of_the_new_families():
    v2l, glm, nxt, mm = (load_model(i) for i in ("deepseek-v2-lite", "glm-4.5", "qwen3-next-80b-a3b", "minimax-m2"))
    assert (v2l.attention.q_lora_rank, v2l.moe_layers, v2l.shared_ffn) == (0, 26, 2 * 1408)  # q_lora_rank null
    assert (glm.dense_layers, glm.moe_layers, glm.mtp_layers, glm.attention.head_dim) == (3, 89, 1, 128)
    assert (nxt.linear_layers, nxt.softmax_layers, nxt.n_experts, nxt.top_k) == (36, 12, 512, 10)
    assert (mm.layers, mm.n_experts, mm.top_k, mm.mtp_layers, mm.attention.kv_heads) == (62, 256, 8, 3, 8)


# --- KV layouts -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kv,per_layer", [
    ("bf16", 1152),  # (512 + 64) x 2 B: the ISCA'25 paper's 70,272 B over 61 layers
    ("fp8", 576),  # engines' fp8 for dense MLA: one scale per tensor (fp8_e4m3)
    ("fp8_e4m3", 576),
    ("fp8_ds_mla", 656),  # FlashMLA: 512 fp8 + 4 x fp32 scales + 64 bf16 RoPE (FlashMLA README)
])
def test_deepseek_v3_kv_layouts(kv, per_layer):
    assert load_model("deepseek-v3").kv_bytes_per_token(131072, kv) == 61 * per_layer


def test_deepseek_v32_caches_fp8_ds_mla_and_indexer_keys():
    """V3.2: ``fp8`` is FlashMLA's 656 B layout (vLLM aliases it), plus 128 fp8 + 4 B scale of indexer key."""
    m = load_model("deepseek-v3.2-exp")
    assert m.kv_format("fp8").name == "fp8_ds_mla"
    assert m.kv_bytes_per_token(65536, "fp8") == 61 * (656 + 132)
    assert m.kv_bytes_per_token(65536, "bf16") == 61 * (1152 + 132)


def test_mla_layout_on_gqa_is_an_error():
    with pytest.raises(Exception, match="fp8_ds_mla is a layout of MLA"):
        load_model("llama-3.1-70b").kv_bytes(1024, "fp8_ds_mla")


# --- attention cost per family -----------------------------------------------------------------------------

def test_dsa_core_attends_top_k_tokens_and_the_indexer_every_token():
    m = load_model("deepseek-v3.2-exp")
    a = m.attention
    assert m.score_flops_per_token(100_000) == m.score_flops_per_token(2048)
    assert m.score_flops_per_token(1000) < m.score_flops_per_token(2048)
    # indexer: 64 heads x (128 + 1) x 2 FLOPs per cached token per layer, linear in context
    assert m.indexer_flops_per_token(100_000) == pytest.approx(61 * 2 * 64 * 129 * 100_000)
    # a decode token reads 2,048 selected latents (656 B) and every token's indexer key (132 B) per layer
    assert m.kv_read_bytes(100_000, "fp8") == pytest.approx(61 * (2048 * 656 + 100_000 * 132))
    assert m.kv_read_bytes(100_000, "fp8") < 0.2 * m.kv_bytes(100_000, "fp8")
    assert a.selected(100) == 100
    dense = load_model("deepseek-v3")
    assert dense.kv_read_bytes(100_000, "bf16") == dense.kv_bytes(100_000, "bf16")


def test_linear_attention_holds_a_fixed_state():
    """Qwen3-Next: 12 gated-attention layers cache K and V (2 kv heads x 256 x 2 B x K,V); the 36 Gated
    DeltaNet layers hold 32 x 128 x 128 fp32 + 3 x 8,192 bf16 conv inputs each, whatever the context."""
    m = load_model("qwen3-next-80b-a3b")
    state = 32 * 128 * 128 * 4 + 3 * 8192 * 2
    assert m.linear.state_bytes() == state
    assert m.kv_bytes(1000, "bf16") == 12 * 2 * 256 * 2 * 2 * 1000 + 36 * state
    assert m.kv_bytes(2000, "bf16") - m.kv_bytes(1000, "bf16") == 12 * 2 * 256 * 2 * 2 * 1000
    assert m.kv_read_bytes(1000, "bf16") == 12 * 2 * 256 * 2 * 2 * 1000 + 2 * 36 * state  # read and write
    growth = m.score_flops_per_token(2000) - m.score_flops_per_token(1000)
    assert growth == 12 * 2 * 16 * (256 + 256) * 1000  # only the full layers grow with context


def test_sliding_window_caps_half_of_gpt_oss_20b():
    m, per = load_model("gpt-oss-20b"), 8 * (64 + 64) * 2
    assert m.kv_bytes(131072, "bf16") == per * (12 * 131072 + 12 * 128)


def test_attention_params_count_each_family():
    nxt = load_model("qwen3-next-80b-a3b")
    gated = 2048 * 256 * 16 * 2 + 2 * 2048 * 256 * 2 + 16 * 256 * 2048  # q with its gate, k, v, o
    delta = 2048 * (2 * 2048 + 2 * 4096) + 2048 * 64 + 8192 * 4 + 4096 * 2048  # qkvz, ba, conv, out
    assert nxt.attention_params() == 12 * gated + 36 * delta
    v32, v3 = load_model("deepseek-v3.2-exp"), load_model("deepseek-v3")
    indexer = 1536 * 64 * 128 + 7168 * (128 + 64)  # wq_b, wk, weights_proj (DeepSeek-V3.2-Exp model.py)
    assert v32.attention_params() - v3.attention_params() == 61 * indexer


# --- weight formats ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,bits", [("mxfp4", 4.25), ("int4", 4.5), ("nvfp4", 4.5), ("bf16", 16)])
def test_weight_bits_include_their_scales(name, bits):
    m = load_model("gpt-oss-20b")
    assert m.expert_bytes(units.DTYPES[name]) == pytest.approx(m.expert_params * bits / 8)


def test_mxfp4_on_hopper_is_weight_only_bf16_and_native_on_blackwell():
    from wideep.specs.hardware import load_gpu

    h200, b200 = load_gpu("h200-sxm"), load_gpu("b200")
    assert (h200.compute_dtype("mxfp4"), b200.compute_dtype("mxfp4")) == ("bf16", "nvfp4")
    assert (h200.compute_dtype("int4"), b200.compute_dtype("int4")) == ("bf16", "bf16")
    assert h200.compute_dtype("nvfp4") == ""


def test_plan_with_mxfp4_and_int4_experts():
    """Expert memory at 4.25 / 4.5 bits; gpt-oss attention and K2-Thinking's non-expert GEMMs stay bf16."""
    mx = plan(PlanSpec(model="gpt-oss-120b", topology="hgx-h200", ep=8, dtype="mxfp4"))
    fp8 = plan(PlanSpec(model="gpt-oss-120b", topology="hgx-h200", ep=8, dtype="fp8"))
    ratio = mx.memory.expert_weights_bytes / fp8.memory.expert_weights_bytes
    assert ratio == pytest.approx(4.25 / (8 * (1 + 4 / 16384)))
    assert mx.spec.precision.attention == "bf16"
    k2 = load_model("kimi-k2-thinking")
    prec = Precision("int4")
    assert (prec.attention, prec.dense) == ("bf16", "bf16")
    assert expert_weight_bytes(k2, 13, prec) == pytest.approx(13 * 60 * k2.expert_params * 4.5 / 8)


# --- bad model files and options: one line, exit 2 ---------------------------------------------------------

@pytest.mark.parametrize("model_id,edits,field,problem", [
    ("glm-4.5", {"num_key_value_heads": 7}, "num_key_value_heads", "must divide num_attention_heads"),
    ("glm-4.5", {"first_k_dense_replace": 93}, "first_k_dense_replace", "more dense layers"),
    ("deepseek-v2", {"first_k_dense_replace": 61}, "first_k_dense_replace", "more dense layers"),
    ("minimax-m2", {"num_experts_per_tok": 257}, "num_experts_per_tok", "between 1 and the number of experts"),
    ("minimax-m2", {"num_local_experts": 10**9}, "num_local_experts", "must be <= 65,536"),
    ("deepseek-v3.2-exp", {"num_hidden_layers": 100_000}, "num_hidden_layers", "must be <= 4,096"),
    ("deepseek-v3.2-exp", {"index_topk": 0}, "index_topk", "must be > 0"),
    ("deepseek-v3.2-exp", {"index_n_heads": None}, "index_n_heads", "missing required field"),
    ("qwen3-next-80b-a3b", {"linear_num_key_heads": 12}, "linear_num_key_heads", "must divide"),
    ("qwen3-next-80b-a3b", {"layer_types": ["full_attention"]}, "layer_types", "must list 48 entries"),
    ("qwen3-next-80b-a3b", {"mlp_only_layers": [48]}, "mlp_only_layers", "layer indices"),
    ("qwen3-next-80b-a3b", {"hidden_size": -2048}, "hidden_size", "must be > 0"),
    ("glm-4.5-air", {"partial_rotary_factor": 1.5}, "partial_rotary_factor", "(0, 1]"),
    ("gpt-oss-20b", {"layer_types": ["sliding_attention"] * 3}, "layer_types", "one entry per layer"),
])
def test_inconsistent_config_json(tmp_path, model_id, edits, field, problem):
    path = config_file(tmp_path, model_id, **edits)
    assert_one_line_error(run_cli("models", "show", path), path, field, problem)


@pytest.mark.parametrize("args,needles", [
    (["plan", "--model", "gpt-oss-120b", "--topology", "hgx-h200", "--dispatch-dtype", "mxfp4"],
     ["--dispatch-dtype", "weight-only"]),
    (["plan", "--model", "gpt-oss-120b", "--topology", "hgx-h200", "--attn-dtype", "int4"],
     ["--attn-dtype", "weight-only"]),
    (["plan", "--model", "glm-4.5", "--topology", "hgx-h200", "--kv-dtype", "fp8_ds_mla"],
     ["--kv-dtype", "MLA"]),
    (["kv", "--model", "deepseek-v3", "--kv-dtype", "fp6"], ["--kv-dtype", "unknown KV cache format"]),
])
def test_bad_format_options(args, needles):
    assert_one_line_error(run_cli(*args), *needles)


def test_kv_command_shows_the_engine_layout():
    r = run_cli("kv", "--model", "deepseek-v3", "--model", "deepseek-v3.2-exp", "--kv-dtype", "fp8",
                "--context", "65536", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["kv_dtype"], x["kv_bytes_per_token"]) for x in rows] == [("fp8_e4m3", 61 * 576),
                                                                          ("fp8_ds_mla", 61 * 788)]
    assert rows[1]["attention"] == "mla+dsa"


def test_projection_gemms_cover_both_layer_kinds():
    """Qwen3-Next's mean layer's projection GEMMs hold its attention weights (the convolution's 32K taps aside)."""
    from wideep.perf.kernels import attention_gemms, linear_attention_gemms

    m = load_model("qwen3-next-80b-a3b")
    gemm = (12 * sum(g.params for g in attention_gemms(m)) + 36 * sum(g.params for g in linear_attention_gemms(m)))
    assert gemm == pytest.approx(m.attention_params(), rel=1e-3)


@pytest.mark.parametrize("model_id", ["llama-4-scout", "llama-4-maverick"])
def test_llama4_chunked_layers_cap_their_cache(model_id):
    """36 of 48 layers attend within 8,192-token chunks (every 4th layer is NoPE and global); 8 kv heads."""
    m, per = load_model(model_id), 8 * 128 * 2 * 2
    assert (m.attention.sliding_layers, m.attention.sliding_window) == (36, 8192)
    assert m.kv_bytes(131072, "bf16") == per * (12 * 131072 + 36 * 8192)
    assert m.kv_bytes(4096, "bf16") == per * 48 * 4096


def test_routing_groups_must_hold_top_k_experts():
    """topk_group groups of n_experts / n_group experts each must hold top-k distinct experts, else no token
    could be routed (and a draw would never finish)."""
    import tomllib

    from wideep.core.errors import CatalogError
    from wideep.specs.model import model_from_config

    cfg = tomllib.loads((Path(__file__).resolve().parents[1] / "models" / "deepseek-v3.toml").read_text())["config"]
    with pytest.raises(CatalogError, match=r"config\.topk_group: topk_group \(1\) groups hold fewer experts"):
        model_from_config(dict(cfg, n_group=64, topk_group=1), "x", "x.toml")


def test_context_longer_than_the_model_encodes_is_an_error():
    from wideep.core.errors import InputError
    from wideep.specs.model import kv_usage

    mixtral = load_model("mixtral-8x7b")
    assert mixtral.max_context == 32768 and load_model("llama-4-scout").max_context == 10_485_760  # text_config's
    assert load_model("dbrx").max_context is None  # its config names none: no limit
    with pytest.raises(InputError, match="--context: mixtral-8x7b encodes at most 32,768 tokens"):
        kv_usage(mixtral, 40_000, "bf16")
    with pytest.raises(InputError, match="--osl: .* got ISL \\+ OSL = 34,000"):
        plan(PlanSpec(model="mixtral-8x7b", topology="hgx-h200", ep=8, isl=30_000, osl=4_000))
    # and a plan never offers a longer context than the model encodes, however much HBM is free
    assert plan(PlanSpec(topology="hgx-h200", ep=8, tp=8, batch=1)).to_dict()["memory"]["max_context"] == 163_840
