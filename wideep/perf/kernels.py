"""The kernels one transformer layer runs, as an engine launches them: GEMM shapes and memory-bound kernels.

GEMMs are ``y[m, n] = x[m, k] @ W[k, n]`` with ``m`` the tokens (or tokens per expert for routed experts).
The memory-bound kernels are the ones an engine runs between its GEMMs (norms, activation quantisation,
RoPE, the KV-cache write, router top-k, permute / unpermute around the expert GEMMs, SiLU-and-multiply,
residual adds); each is listed with the bytes it reads and writes per token, as fused in SGLang, vLLM and
TensorRT-LLM (norm + quantisation in one kernel; SiLU-mul + quantisation in one kernel). Their time comes
from the measured memory-kernel curve of the calibration (launch and tail included), not from a peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from wideep.core.units import DType
from wideep.specs.model import Model

BF16_BYTES = 2
FP32_BYTES = 4


@dataclass(frozen=True)
class GemmShape:
    """One weight matrix: ``n`` outputs from ``k`` inputs; ``per_expert``: one per routed expert."""

    name: str
    n: int
    k: int
    block: str  # attention, dense_ffn, shared_experts, router, routed_experts, lm_head
    per_expert: bool = False

    @property
    def params(self) -> int:
        return self.n * self.k


def attention_gemms(model: Model) -> list[GemmShape]:
    """Projections of one attention layer (MLA: the absorbed per-head products have the kv_b shape)."""
    h, a = model.hidden, model.attention
    if a.kind == "mla":
        nope = a.head_dim - a.rope_dim
        q = ([GemmShape("q_a_kv_a", a.q_lora_rank + a.kv_lora_rank + a.rope_dim, h, "attention"),
              GemmShape("q_b", a.heads * a.head_dim, a.q_lora_rank, "attention")] if a.q_lora_rank else
             [GemmShape("q", a.heads * a.head_dim, h, "attention"),
              GemmShape("kv_a", a.kv_lora_rank + a.rope_dim, h, "attention")])
        return q + [GemmShape("kv_b", a.heads * (nope + a.v_head_dim), a.kv_lora_rank, "attention"),
                    GemmShape("o_proj", h, a.heads * a.v_head_dim, "attention")]
    q_heads = a.heads * (2 if a.output_gate else 1)  # gated attention: q_proj also emits the gate
    return [GemmShape("qkv", a.head_dim * (q_heads + 2 * a.kv_heads), h, "attention"),
            GemmShape("o_proj", h, a.heads * a.v_head_dim, "attention")]


#: GEMMs every tensor-parallel rank holds whole (MLA's latent down-projections are replicated in SGLang and vLLM).
TP_REPLICATED = ("q_a_kv_a", "kv_a")


def tp_shard(shape: GemmShape, tp: int) -> GemmShape:
    """One tensor-parallel rank's slice of a weight: output projections and FFN down split their inputs
    (row parallel), the rest their outputs (column parallel); MLA's latent down-projections stay whole.

    >>> tp_shard(GemmShape("o_proj", 7168, 16384, "attention"), 8).k
    2048
    """
    if tp <= 1 or shape.name in TP_REPLICATED:
        return shape
    if shape.name == "o_proj" or shape.name.endswith(".down"):
        return GemmShape(shape.name, shape.n, max(1, shape.k // tp), shape.block, shape.per_expert)
    return GemmShape(shape.name, max(1, shape.n // tp), shape.k, shape.block, shape.per_expert)


def linear_attention_gemms(model: Model) -> list[GemmShape]:
    """Projections of one Gated DeltaNet layer (Qwen3-Next): q, k, v and the gate z; beta and alpha; out."""
    h, la = model.hidden, model.linear
    if la is None:
        return []
    value = la.v_heads * la.v_dim
    return [GemmShape("in_proj_qkvz", 2 * la.k_heads * la.k_dim + 2 * value, h, "attention"),
            GemmShape("in_proj_ba", 2 * la.v_heads, h, "attention"),
            GemmShape("out_proj", h, value, "attention")]


def ffn_gemms(ffn: int, hidden: int, block: str, per_expert: bool = False) -> list[GemmShape]:
    """Gate and up fused (n = 2 x ffn), then down."""
    return [GemmShape(f"{block}.gate_up", 2 * ffn, hidden, block, per_expert),
            GemmShape(f"{block}.down", hidden, ffn, block, per_expert)]


#: Tensor-parallel sizes whose weight slices ``wideep calibrate`` measures beside the whole weights.
CALIBRATED_TP = (2, 4, 8)


def gemm_shapes(model: Model, tp_sizes: tuple[int, ...] = ()) -> list[GemmShape]:
    """Every distinct weight shape of the model, once (what ``wideep calibrate`` measures), then the
    distinct tensor-parallel slices of its weights for each of ``tp_sizes`` (routed experts: one rank's slice
    of each expert under MoE tensor parallelism, measured as grouped GEMMs).

    >>> from wideep.specs.model import load_model
    >>> [(g.name, g.n, g.k) for g in gemm_shapes(load_model("deepseek-v3"))][:2]
    [('q_a_kv_a', 2112, 7168), ('q_b', 24576, 1536)]
    >>> len(gemm_shapes(load_model("deepseek-v3"), (8,))) - len(gemm_shapes(load_model("deepseek-v3")))
    9
    """
    whole = whole_shapes(model)
    seen = {(g.n, g.k, g.per_expert) for g in whole}
    sliced = []
    for tp in tp_sizes:
        for g in (g for g in whole if g.block != "router"):
            part = tp_shard(g, tp)
            if (part.n, part.k, g.per_expert) not in seen:
                seen.add((part.n, part.k, g.per_expert))
                sliced.append(GemmShape(f"{g.name}/tp{tp}", part.n, part.k, g.block, g.per_expert))
    return whole + sliced


def whole_shapes(model: Model) -> list[GemmShape]:
    """Every distinct weight shape of the model at its full size."""
    shapes = attention_gemms(model) + linear_attention_gemms(model)
    if model.dense_layers and model.dense_ffn:
        shapes += ffn_gemms(model.dense_ffn, model.hidden, "dense_ffn")
    if model.shared_ffn:
        shapes += ffn_gemms(model.shared_ffn, model.hidden, "shared_experts")
    if model.is_moe:
        shapes += [GemmShape("router", model.n_experts, model.hidden, "router")]
        shapes += ffn_gemms(model.expert_ffn, model.hidden, "routed_experts", per_expert=True)
    return shapes + [GemmShape("lm_head", model.vocab, model.hidden, "lm_head")]


@dataclass(frozen=True)
class MemoryKernel:
    """A memory-bound kernel: bytes per token it reads and writes (``per`` says which tokens count)."""

    name: str
    bytes_per_token: float
    per: str = "token"  # token: tokens of the GPU; received: token copies its experts receive


def attention_kernels(model: Model, act: DType, kv: DType) -> list[MemoryKernel]:
    """Memory kernels of one attention block: input norm + quant, latent norms, RoPE, KV-cache write."""
    h, a = model.hidden, model.attention
    kernels = [MemoryKernel("attn_norm", h * BF16_BYTES + act.activation_bytes(h))]
    if a.kind == "mla":
        latent = a.q_lora_rank + a.kv_lora_rank
        kernels.append(MemoryKernel("latent_norms", 2 * latent * BF16_BYTES))
        rope = (a.heads + 1) * a.rope_dim
    else:
        rope = (a.heads + a.kv_heads) * a.head_dim
    kernels += [MemoryKernel("rope", 2 * rope * BF16_BYTES),
                MemoryKernel("kv_write", a.kv_values_per_token() * (BF16_BYTES + kv.bits / 8))]
    return kernels


def ffn_kernels(model: Model, act: DType, ffn: int, name: str, per: str = "token") -> list[MemoryKernel]:
    """SiLU(gate) x up with the output quantised for the down GEMM."""
    return [MemoryKernel(f"{name}.silu_mul", 2 * ffn * BF16_BYTES + act.activation_bytes(ffn), per)]


def moe_kernels(model: Model, act: DType, moe_tp: int = 1) -> list[MemoryKernel]:
    """Around the routed experts: norm, router top-k, permute into expert order, SiLU-mul (over one GPU's
    1/moe_tp of each expert's intermediate), weighted unpermute."""
    h, e = model.hidden, model.n_experts
    kernels = [MemoryKernel("ffn_norm", 3 * h * BF16_BYTES + act.activation_bytes(h)),  # residual add fused
               MemoryKernel("router_topk", e * FP32_BYTES + 2 * model.top_k * FP32_BYTES),
               MemoryKernel("permute", 2 * act.activation_bytes(h), "received")]
    kernels += ffn_kernels(model, act, model.expert_ffn // moe_tp, "routed_experts", "received")
    kernels.append(MemoryKernel("unpermute", h * BF16_BYTES, "received"))
    kernels.append(MemoryKernel("weighted_sum", 2 * h * BF16_BYTES))
    if model.shared_ffn:
        kernels += ffn_kernels(model, act, model.shared_ffn, "shared_experts")
    return kernels


def dense_kernels(model: Model, act: DType) -> list[MemoryKernel]:
    """A dense FFN layer's norm (residual add fused) and SiLU-mul."""
    h = model.hidden
    return ([MemoryKernel("ffn_norm", 3 * h * BF16_BYTES + act.activation_bytes(h))]
            + ffn_kernels(model, act, model.dense_ffn, "dense_ffn"))
