"""MoE (and dense reference) model architectures from catalog TOML or a Hugging Face ``config.json``.

Parameter counts assume gated FFNs (gate, up, down: 3 x hidden x ffn weights), the layouts of the
supported architectures; norms and biases (< 0.01% of any catalog model) are left out. Attention families:
MLA (DeepSeek-V2/V3, Kimi K2), MLA with DeepSeek Sparse Attention (V3.2: a lightning indexer picks
``index_topk`` past tokens per query), GQA with sliding-window layers (gpt-oss), and GQA hybrids whose other
layers are Gated DeltaNet linear attention with a fixed-size state (Qwen3-Next). Sources: docs/sources.md §2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from wideep.core import units
from wideep.core.catalog import Field, check_table, check_value, read_file, resolve
from wideep.core.errors import CatalogError, InputError
from wideep.core.limits import check_option
from wideep.core.units import DType, KVFormat

MODEL_FIELDS = {
    "name": Field(str),
    "published_total_params_B": Field(float, "positive"),
    "published_active_params_B": Field(float, "positive"),
    "active_params_count_embedding": Field(bool),
    "active_params_count_lm_head": Field(bool, required=False),
    "published_active_tolerance": Field(float, "positive", required=False),
    "config": Field(dict),
}

#: Largest sizes a model file may declare: far past any published model (Kimi K2: 384 experts, 61 layers),
#: small enough that a plan's per-expert and per-layer arrays stay in memory.
MAX_EXPERTS = 65_536
MAX_LAYERS = 4_096
MAX_WIDTH = 1 << 20  # hidden, FFN and head widths, heads, vocabulary entries / 16

#: Bytes per cached DSA indexer key: fp8 values plus one float32 scale per 128 (DeepSeek-V3.2-Exp
#: inference/model.py keeps ``k_cache`` in float8_e4m3fn and ``k_scale_cache`` in float32, block 128).
INDEX_SCALE_BLOCK = 128
#: Gated DeltaNet state precision: the recurrent state in float32 (SGLang's default --mamba-ssm-dtype),
#: the short-convolution state in bf16 (docs/sources.md §2).
LINEAR_STATE_BYTES = 4
LINEAR_CONV_BYTES = 2


@dataclass(frozen=True)
class Attention:
    """Attention geometry. ``kind`` is ``mla`` (latent KV) or ``gqa`` (grouped query; MHA and MQA too)."""

    kind: str
    heads: int
    kv_heads: int
    head_dim: int  # query/key head dim (MLA: nope + rope)
    v_head_dim: int
    q_lora_rank: int = 0  # MLA only (0: full-rank query projection)
    kv_lora_rank: int = 0  # MLA only
    rope_dim: int = 0  # MLA only: decoupled RoPE key dim
    sliding_window: int = 0  # tokens, 0 = none
    sliding_layers: int = 0  # layers that use the window
    output_gate: bool = False  # gated attention (Qwen3-Next): q_proj also emits a per-head sigmoid gate
    index_topk: int = 0  # DSA: past tokens the indexer selects per query (0: dense attention)
    index_heads: int = 0  # DSA indexer heads
    index_head_dim: int = 0  # DSA indexer key/query dim

    def params(self, hidden: int) -> int:
        """Weights of one attention layer (DSA indexer included)."""
        if self.kind == "mla":
            q = (hidden * self.q_lora_rank + self.q_lora_rank * self.heads * self.head_dim
                 if self.q_lora_rank else hidden * self.heads * self.head_dim)
            kv = hidden * (self.kv_lora_rank + self.rope_dim)
            kv += self.kv_lora_rank * self.heads * (self.head_dim - self.rope_dim + self.v_head_dim)
            return q + kv + self.heads * self.v_head_dim * hidden + self.indexer_params(hidden)
        q = hidden * self.head_dim * self.heads * (2 if self.output_gate else 1)
        return q + 2 * hidden * self.head_dim * self.kv_heads + self.heads * self.v_head_dim * hidden

    def indexer_params(self, hidden: int) -> int:
        """DSA lightning indexer: query up-projection from the q latent, one key, per-head weights."""
        if not self.index_topk:
            return 0
        q_in = self.q_lora_rank or hidden
        return q_in * self.index_heads * self.index_head_dim + hidden * (self.index_head_dim + self.index_heads)

    def kv_values_per_token(self) -> int:
        """Cached values per token per layer: MLA latent + RoPE key; GQA K and V of every kv head."""
        if self.kind == "mla":
            return self.kv_lora_rank + self.rope_dim
        return self.kv_heads * (self.head_dim + self.v_head_dim)

    def kv_bytes_per_token(self, fmt: KVFormat) -> float:
        """Cache bytes of one token in one layer in layout ``fmt`` (DSA indexer keys not included).

        DeepSeek-V3: 1,152 B in bf16, 576 B in fp8_e4m3, 656 B in FlashMLA's fp8_ds_mla.
        """
        if self.kind == "mla":
            return fmt.bytes_per_token(self.kv_values_per_token(), self.rope_dim)
        if fmt.rope_bits:
            raise InputError(f"{fmt.name} is a layout of MLA latents; this model has {self.kind} attention",
                             "--kv-dtype")
        return fmt.bytes_per_token(self.kv_values_per_token())

    def index_bytes_per_token(self) -> float:
        """DSA indexer key cache per token per layer: fp8 values + a float32 scale per 128 (132 B)."""
        if not self.index_topk:
            return 0.0
        return self.index_head_dim + math.ceil(self.index_head_dim / INDEX_SCALE_BLOCK) * 4

    def selected(self, context: float) -> float:
        """Tokens the attention core reads per query: all of ``context``, or DSA's top-k of them."""
        return min(context, self.index_topk) if self.index_topk else context

    def score_flops_per_token(self, context: float, absorbed: bool = True) -> float:
        """Score and value FLOPs per new token per layer at ``context`` cached tokens.

        MLA ``absorbed`` (decode, as DeepSeek's inference runs it) scores queries against the latent
        (kv_lora + rope dims) and reads values from it (kv_lora); not absorbed (prefill) it works on full
        per-head keys and values like GQA.
        """
        if self.kind == "mla" and absorbed:
            return 2.0 * self.heads * (2 * self.kv_lora_rank + self.rope_dim) * context
        return 2.0 * self.heads * (self.head_dim + self.v_head_dim) * context

    def indexer_flops_per_token(self, context: float) -> float:
        """DSA indexer FLOPs per new token per layer: every head's query against every cached key, then
        the weighted sum over heads (fp8 in DeepSeek's kernels)."""
        return 2.0 * self.index_heads * (self.index_head_dim + 1) * context if self.index_topk else 0.0


@dataclass(frozen=True)
class LinearAttention:
    """Gated DeltaNet layers (Qwen3-Next): a fixed-size recurrent state per sequence instead of a KV cache.

    ``layers`` of the model use it; ``k_heads`` query/key heads of ``k_dim`` and ``v_heads`` value heads of
    ``v_dim`` (keys repeated to the value heads); a causal convolution of ``conv_kernel`` taps on q, k, v.
    """

    layers: int
    k_heads: int
    v_heads: int
    k_dim: int
    v_dim: int
    conv_kernel: int

    @property
    def conv_channels(self) -> int:
        return 2 * self.k_heads * self.k_dim + self.v_heads * self.v_dim

    def params(self, hidden: int) -> int:
        """One layer: in_proj_qkvz (q, k, v and the output gate z), in_proj_ba (beta, alpha per value
        head), the depthwise convolution and out_proj."""
        value = self.v_heads * self.v_dim
        qkvz = hidden * (2 * self.k_heads * self.k_dim + 2 * value)
        return qkvz + hidden * 2 * self.v_heads + self.conv_channels * self.conv_kernel + value * hidden

    def state_bytes(self) -> float:
        """State of one sequence in one layer: v_heads x k_dim x v_dim in float32 plus the convolution's
        last conv_kernel - 1 inputs in bf16 (Qwen3-Next-80B-A3B: 2,097,152 + 49,152 B)."""
        return (self.v_heads * self.k_dim * self.v_dim * LINEAR_STATE_BYTES
                + (self.conv_kernel - 1) * self.conv_channels * LINEAR_CONV_BYTES)

    def flops_per_token(self) -> float:
        """Recurrence FLOPs per token per layer, independent of context: per value head, the delta rule's
        S^T k, rank-1 update and S^T q (2 FLOPs per state element each) plus the decay (1): 7 x k_dim x v_dim."""
        return 7.0 * self.v_heads * self.k_dim * self.v_dim


@dataclass(frozen=True)
class Model:
    """An architecture, normalised across Hugging Face config layouts.

    ``moe_layers`` layers hold ``n_experts`` routed experts (top ``top_k``) plus shared experts of
    ``shared_ffn`` total width; ``dense_layers`` hold a dense FFN of width ``dense_ffn``.
    """

    id: str
    name: str
    architecture: str
    hidden: int
    layers: int
    moe_layers: int
    dense_layers: int
    dense_ffn: int
    n_experts: int
    top_k: int
    expert_ffn: int
    shared_ffn: int
    n_group: int
    topk_group: int
    vocab: int
    tie_embeddings: bool
    attention: Attention
    mtp_layers: int = 0
    moe_layer_ids: tuple[int, ...] = ()  # decoder indices of the MoE layers (empty: the last moe_layers)
    linear: LinearAttention | None = None  # linear-attention layers (their count is in ``layers``)
    published_total_B: float | None = None
    published_active_B: float | None = None
    active_counts_embedding: bool = False
    active_counts_lm_head: bool = True
    published_active_tolerance: float = 0.03  # relative; only a model whose miss is stated in its file widens it

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    def moe_layer_indices(self) -> tuple[int, ...]:
        """Decoder index of each MoE layer (DeepSeek-V3: 3..60; Llama-4 Maverick: 1, 3, ..., 47)."""
        return self.moe_layer_ids or tuple(range(self.layers - self.moe_layers, self.layers))

    @property
    def expert_params(self) -> int:
        """Weights of one routed expert (gate, up, down)."""
        return 3 * self.hidden * self.expert_ffn

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def lm_head_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def linear_layers(self) -> int:
        """Layers with linear attention (Gated DeltaNet) instead of softmax attention."""
        return self.linear.layers if self.linear else 0

    @property
    def softmax_layers(self) -> int:
        """Layers with softmax attention (full or sliding-window) and a KV cache."""
        return self.layers - self.linear_layers

    def attention_params(self, extra_layers: int = 0) -> int:
        """Attention weights of every layer (plus ``extra_layers`` softmax ones, e.g. MTP modules)."""
        linear = self.linear.params(self.hidden) * self.linear.layers if self.linear else 0
        return (self.softmax_layers + extra_layers) * self.attention.params(self.hidden) + linear

    def layer_params_shared(self) -> int:
        """Weights every token uses in the decoder stack: attention, routers, shared experts, dense FFNs."""
        return (self.attention_params()
                + self.moe_layers * (self.hidden * self.n_experts + 3 * self.hidden * self.shared_ffn)
                + self.dense_layers * 3 * self.hidden * self.dense_ffn)

    @property
    def routed_params(self) -> int:
        """All routed-expert weights."""
        return self.moe_layers * self.n_experts * self.expert_params

    @property
    def total_params(self) -> int:
        """All weights, main model (MTP modules excluded, as published totals do)."""
        head = 0 if self.tie_embeddings else self.lm_head_params
        return self.layer_params_shared() + self.routed_params + self.embedding_params + head

    @property
    def non_expert_params(self) -> int:
        """Weights replicated on every GPU of an EP group (everything but routed experts)."""
        return self.total_params - self.routed_params

    @property
    def active_params(self) -> int:
        """Weights one token multiplies: shared stack, top-k experts per MoE layer and the LM head."""
        return self.layer_params_shared() + self.moe_layers * self.top_k * self.expert_params + self.lm_head_params

    @property
    def active_params_as_published(self) -> int:
        """:attr:`active_params` under the publisher's convention (input embedding, LM head counted or not)."""
        return (self.active_params + (self.embedding_params if self.active_counts_embedding else 0)
                - (0 if self.active_counts_lm_head else self.lm_head_params))

    def expert_bytes(self, dt: DType) -> float:
        """Bytes of one routed expert's weights in dtype ``dt`` (block scales included)."""
        return dt.weight_bytes(self.expert_params)

    def kv_format(self, kv: str | DType | KVFormat) -> KVFormat:
        """The KV layout named ``kv`` for this model (``fp8``: fp8_ds_mla for DSA, else fp8_e4m3)."""
        name = kv if isinstance(kv, str) else kv.name
        return units.kv_format(name, "--kv-dtype", sparse_mla=bool(self.attention.index_topk))

    def kv_bytes(self, context_tokens: float, kv: str | DType | KVFormat) -> float:
        """Cache bytes of one sequence of ``context_tokens`` tokens, all layers: KV (sliding layers capped
        at their window), DSA indexer keys and linear-attention state.

        ``kv`` names a layout of :data:`wideep.core.units.KV_FORMATS` (a DType stands for its name).
        """
        a = self.attention
        full, window = self.attended(context_tokens)
        per_token = a.kv_bytes_per_token(self.kv_format(kv)) + a.index_bytes_per_token()
        state = self.linear.layers * self.linear.state_bytes() if self.linear else 0.0
        return per_token * ((self.softmax_layers - a.sliding_layers) * full + a.sliding_layers * window) + state

    def kv_read_bytes(self, context_tokens: float, kv: str | DType | KVFormat) -> float:
        """Cache bytes one new token reads at ``context_tokens``: the KV of the tokens it attends to (DSA:
        its top-k selection, plus every token's indexer key), sliding windows, and the linear-attention
        state read and written back. Equals :meth:`kv_bytes` for dense softmax attention."""
        a = self.attention
        full, window = self.attended(context_tokens)
        core = a.kv_bytes_per_token(self.kv_format(kv)) * (
            (self.softmax_layers - a.sliding_layers) * a.selected(full) + a.sliding_layers * window)
        index = a.index_bytes_per_token() * (self.softmax_layers - a.sliding_layers) * full
        state = 2 * self.linear.layers * self.linear.state_bytes() if self.linear else 0.0
        return core + index + state

    def kv_bytes_per_token(self, context_tokens: float, kv: str | DType | KVFormat) -> float:
        """Mean cache bytes per cached token at ``context_tokens`` (70,272 B for DeepSeek-V3 in BF16)."""
        return self.kv_bytes(context_tokens, kv) / context_tokens

    def attended(self, context_tokens: float) -> tuple[float, float]:
        """Tokens a new token attends to in (full-attention, sliding-window) layers."""
        a = self.attention
        return context_tokens, min(context_tokens, a.sliding_window) if a.sliding_window else context_tokens

    def score_flops_per_token(self, context_tokens: float, absorbed: bool = True, extra_layers: int = 0) -> float:
        """Attention score + value FLOPs of one new token over all layers (plus ``extra_layers`` full ones,
        e.g. MTP modules) at ``context_tokens`` cached tokens; sliding-window layers capped, DSA layers over
        their selected tokens, linear-attention layers their recurrence."""
        a = self.attention
        full, window = self.attended(context_tokens)
        linear = self.linear.layers * self.linear.flops_per_token() if self.linear else 0.0
        return ((self.softmax_layers - a.sliding_layers + extra_layers) * a.score_flops_per_token(a.selected(full), absorbed)
                + a.sliding_layers * a.score_flops_per_token(window, absorbed) + linear)

    def indexer_flops_per_token(self, context_tokens: float, extra_layers: int = 0) -> float:
        """DSA lightning-indexer FLOPs of one new token over all layers (0 without DSA)."""
        return (self.softmax_layers + extra_layers) * self.attention.indexer_flops_per_token(context_tokens)

    def flops_per_token(self, context_tokens: float) -> float:
        """Forward FLOPs for one new token at ``context_tokens`` cached: 2 x active weights + attention."""
        return (2.0 * self.active_params + self.score_flops_per_token(context_tokens)
                + self.indexer_flops_per_token(context_tokens))

    @property
    def attention_label(self) -> str:
        """``mla``, ``gqa``, with ``+dsa`` (sparse attention) or ``+linear`` (hybrid linear attention)."""
        a = self.attention
        return a.kind + ("+dsa" if a.index_topk else "") + ("+linear" if self.linear else "")

    def summary(self, context_tokens: int = 4096) -> dict[str, Any]:
        """Figures for display and JSON (parameters in billions; FLOPs at ``context_tokens``)."""
        check_context(context_tokens)
        return {
            "id": self.id, "name": self.name, "architecture": self.architecture,
            "hidden_size": self.hidden, "layers": self.layers, "moe_layers": self.moe_layers,
            "routed_experts": self.n_experts, "top_k": self.top_k, "expert_ffn": self.expert_ffn,
            "attention": self.attention_label,
            "total_params_B": self.total_params / units.BILLION, "active_params_B": self.active_params_as_published / units.BILLION,
            "published_total_params_B": self.published_total_B,
            "published_active_params_B": self.published_active_B,
            "bytes_per_expert": {n: self.expert_bytes(dt) for n, dt in units.DTYPES.items()},
            "non_expert_bytes_bf16": units.DTYPES["bf16"].weight_bytes(self.non_expert_params),
            "kv_bytes_per_token_bf16": self.kv_bytes_per_token(context_tokens, units.DTYPES["bf16"]),
            "context_tokens": context_tokens,
            "GFLOPs_per_token": self.flops_per_token(context_tokens) / units.GFLOP,
        }


class ConfigReader:
    """Typed access to a Hugging Face config dict; problems name the file and the field."""

    def __init__(self, cfg: dict[str, Any], source: str, prefix: str = "config."):
        self.cfg, self.source, self.prefix = cfg, source, prefix

    def get(self, key: str, default: Any = ..., kind: type = int, rule: str = "positive",
            most: int = MAX_WIDTH * 16) -> Any:
        """``cfg[key]`` checked for type, ``rule`` and (integers) an upper bound ``most``."""
        if key not in self.cfg or self.cfg[key] is None:
            if default is ...:
                raise CatalogError("missing required field", self.source, self.prefix + key)
            return default
        value = self.cfg[key]
        check_value(value, Field(kind, rule), self.source, self.prefix + key)
        if kind is int and value > most:
            self.fail(key, f"must be <= {most:,} (a sanity bound), got {value:,}")
        return value

    def fail(self, key: str, problem: str) -> None:
        raise CatalogError(problem, self.source, self.prefix + key)

    def sub(self, key: str) -> "ConfigReader":
        value = self.cfg.get(key)
        if not isinstance(value, dict):
            raise CatalogError("missing required table", self.source, self.prefix + key)
        return ConfigReader(value, self.source, f"{self.prefix}{key}.")

    def layers(self, key: str = "num_hidden_layers") -> int:
        return self.get(key, most=MAX_LAYERS)

    def experts(self, key: str) -> int:
        return self.get(key, most=MAX_EXPERTS)


def gqa(c: ConfigReader, hidden: int, heads_key: str = "num_attention_heads",
        kv_key: str = "num_key_value_heads") -> Attention:
    """GQA geometry; the key/value heads must divide the query heads."""
    heads = c.get(heads_key)
    if heads > hidden and "head_dim" not in c.cfg:
        c.fail(heads_key, f"more heads ({heads}) than hidden_size ({hidden}) and no head_dim")
    head_dim = c.get("head_dim", hidden // heads)
    kv = c.get(kv_key, heads)
    if heads % kv:
        c.fail(kv_key, f"must divide {heads_key} ({heads}), got {kv}")
    return Attention("gqa", heads, kv, head_dim, head_dim)


def first_dense(c: ConfigReader, layers: int) -> int:
    """``first_k_dense_replace``: leading dense layers, at most every layer."""
    n = c.get("first_k_dense_replace", 0, rule="nonneg")
    if n > layers:
        c.fail("first_k_dense_replace", f"more dense layers ({n}) than num_hidden_layers ({layers})")
    return n


def parse_deepseek(c: ConfigReader) -> dict[str, Any]:
    """DeepSeek-V2/V2-Lite/V3 and Kimi K2 (MLA; V2-Lite has no query latent: q_lora_rank null)."""
    layers = c.layers()
    dense = first_dense(c, layers)
    freq = c.get("moe_layer_freq", 1)
    moe = tuple(i for i in range(dense, layers) if i % freq == 0)
    nope, rope = c.get("qk_nope_head_dim"), c.get("qk_rope_head_dim")
    heads = c.get("num_attention_heads")
    attn = Attention("mla", heads, heads, nope + rope, c.get("v_head_dim"), c.get("q_lora_rank", 0, rule="nonneg"),
                     c.get("kv_lora_rank"), rope)
    return dict(hidden=c.get("hidden_size"), layers=layers, moe_layers=len(moe), dense_layers=layers - len(moe),
                moe_layer_ids=moe, dense_ffn=c.get("intermediate_size"), n_experts=c.experts("n_routed_experts"),
                top_k=c.get("num_experts_per_tok"), expert_ffn=c.get("moe_intermediate_size"),
                shared_ffn=c.get("n_shared_experts", 0, rule="nonneg", most=MAX_EXPERTS) * c.get("moe_intermediate_size"),
                n_group=c.get("n_group", 1), topk_group=c.get("topk_group", 1), vocab=c.get("vocab_size"),
                tie_embeddings=c.get("tie_word_embeddings", False, kind=bool), attention=attn,
                mtp_layers=c.get("num_nextn_predict_layers", 0, rule="nonneg", most=MAX_LAYERS))


def parse_deepseek_v32(c: ConfigReader) -> dict[str, Any]:
    """DeepSeek-V3.2: V3 plus DeepSeek Sparse Attention (index_topk tokens per query from a lightning
    indexer of index_n_heads heads of index_head_dim)."""
    fields = parse_deepseek(c)
    fields["attention"] = replace(fields["attention"], index_topk=c.get("index_topk"),
                                  index_heads=c.get("index_n_heads"), index_head_dim=c.get("index_head_dim"))
    return fields


def parse_glm4_moe(c: ConfigReader) -> dict[str, Any]:
    """GLM-4.5/4.6 and GLM-4.5-Air: GQA (partial rotary: it changes neither weights nor cache), leading
    dense layers, one shared expert, MTP layers (num_nextn_predict_layers)."""
    hidden, layers = c.get("hidden_size"), c.layers()
    dense = first_dense(c, layers)
    moe = tuple(range(dense, layers))
    rotary = c.get("partial_rotary_factor", 1.0, kind=float)
    if rotary > 1:
        c.fail("partial_rotary_factor", f"must be in (0, 1], got {rotary}")
    expert_ffn = c.get("moe_intermediate_size")
    return dict(hidden=hidden, layers=layers, moe_layers=len(moe), dense_layers=dense, moe_layer_ids=moe,
                dense_ffn=c.get("intermediate_size"), n_experts=c.experts("n_routed_experts"),
                top_k=c.get("num_experts_per_tok"), expert_ffn=expert_ffn,
                shared_ffn=c.get("n_shared_experts", 0, rule="nonneg", most=MAX_EXPERTS) * expert_ffn,
                n_group=c.get("n_group", 1), topk_group=c.get("topk_group", 1), vocab=c.get("vocab_size"),
                tie_embeddings=c.get("tie_word_embeddings", False, kind=bool), attention=gqa(c, hidden),
                mtp_layers=c.get("num_nextn_predict_layers", 0, rule="nonneg", most=MAX_LAYERS))


def parse_qwen3_moe(c: ConfigReader) -> dict[str, Any]:
    layers, step = c.layers(), c.get("decoder_sparse_step", 1)
    dense_only = c.get("mlp_only_layers", [], kind=list)
    if any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < layers for i in dense_only):
        c.fail("mlp_only_layers", f"entries must be layer indices 0..{layers - 1}")
    moe = tuple(i for i in range(layers) if i not in set(dense_only) and (i + 1) % step == 0)
    hidden = c.get("hidden_size")
    return dict(hidden=hidden, layers=layers, moe_layers=len(moe), dense_layers=layers - len(moe), moe_layer_ids=moe,
                dense_ffn=c.get("intermediate_size"), n_experts=c.experts("num_experts"),
                top_k=c.get("num_experts_per_tok"), expert_ffn=c.get("moe_intermediate_size"), shared_ffn=0,
                n_group=1, topk_group=1, vocab=c.get("vocab_size"),
                tie_embeddings=c.get("tie_word_embeddings", False, kind=bool), attention=gqa(c, hidden))


def linear_layer_count(c: ConfigReader, layers: int) -> int:
    """Gated DeltaNet layers: from ``layer_types``, else all but every ``full_attention_interval``-th layer
    (layer i is full attention when (i + 1) % interval == 0, as transformers' Qwen3NextConfig derives it)."""
    types = c.get("layer_types", None, kind=list)
    if types is not None:
        if len(types) != layers or any(t not in ("linear_attention", "full_attention") for t in types):
            c.fail("layer_types", f"must list {layers} entries of linear_attention / full_attention")
        return sum(t == "linear_attention" for t in types)
    interval = c.get("full_attention_interval", 4)
    return sum(1 for i in range(layers) if (i + 1) % interval)


def parse_qwen3_next(c: ConfigReader) -> dict[str, Any]:
    """Qwen3-Next: Qwen3-MoE experts plus one shared expert, gated attention on every
    full_attention_interval-th layer and Gated DeltaNet linear attention on the others."""
    fields = parse_qwen3_moe(c)
    k_heads, v_heads = c.get("linear_num_key_heads"), c.get("linear_num_value_heads")
    if v_heads % k_heads:
        c.fail("linear_num_key_heads", f"must divide linear_num_value_heads ({v_heads}), got {k_heads}")
    linear = LinearAttention(linear_layer_count(c, fields["layers"]), k_heads, v_heads, c.get("linear_key_head_dim"),
                             c.get("linear_value_head_dim"), c.get("linear_conv_kernel_dim"))
    fields.update(shared_ffn=c.get("shared_expert_intermediate_size", 0, rule="nonneg"), linear=linear,
                  attention=replace(fields["attention"], output_gate=c.get("attn_output_gate", True, kind=bool)))
    return fields


def parse_minimax_m2(c: ConfigReader) -> dict[str, Any]:
    """MiniMax-M2: GQA, every layer MoE (num_local_experts, expert width intermediate_size), MTP modules."""
    hidden, layers = c.get("hidden_size"), c.layers()
    mtp = c.get("num_mtp_modules", 0, rule="nonneg", most=MAX_LAYERS) if c.get("use_mtp", False, kind=bool) else 0
    return dict(hidden=hidden, layers=layers, moe_layers=layers, dense_layers=0, dense_ffn=0,
                n_experts=c.experts("num_local_experts"), top_k=c.get("num_experts_per_tok"),
                expert_ffn=c.get("intermediate_size"), shared_ffn=c.get("shared_intermediate_size", 0, rule="nonneg"),
                n_group=1, topk_group=1, vocab=c.get("vocab_size"),
                tie_embeddings=c.get("tie_word_embeddings", False, kind=bool), attention=gqa(c, hidden), mtp_layers=mtp)


def parse_mixtral(c: ConfigReader) -> dict[str, Any]:
    hidden, layers = c.get("hidden_size"), c.layers()
    return dict(hidden=hidden, layers=layers, moe_layers=layers, dense_layers=0, dense_ffn=0,
                n_experts=c.experts("num_local_experts"), top_k=c.get("num_experts_per_tok"),
                expert_ffn=c.get("intermediate_size"), shared_ffn=0, n_group=1, topk_group=1,
                vocab=c.get("vocab_size"), tie_embeddings=c.get("tie_word_embeddings", False, kind=bool),
                attention=gqa(c, hidden))


def parse_llama4(c: ConfigReader) -> dict[str, Any]:
    t = c.sub("text_config")
    hidden, layers, step = t.get("hidden_size"), t.layers(), t.get("interleave_moe_layer_step", 1)
    moe = tuple(range(step - 1, layers, step))  # as transformers' Llama4TextConfig derives moe_layers
    return dict(hidden=hidden, layers=layers, moe_layers=len(moe), dense_layers=layers - len(moe), moe_layer_ids=moe,
                dense_ffn=t.get("intermediate_size_mlp"), n_experts=t.experts("num_local_experts"),
                top_k=t.get("num_experts_per_tok"), expert_ffn=t.get("intermediate_size"),
                shared_ffn=t.get("intermediate_size"), n_group=1, topk_group=1, vocab=t.get("vocab_size"),
                tie_embeddings=t.get("tie_word_embeddings", False, kind=bool), attention=gqa(t, hidden))


def parse_gpt_oss(c: ConfigReader) -> dict[str, Any]:
    """gpt-oss: GQA, sliding_window-token windows on the ``sliding_attention`` entries of layer_types."""
    hidden, layers = c.get("hidden_size"), c.layers()
    types = c.get("layer_types", [], kind=list)
    if types and len(types) != layers:
        c.fail("layer_types", f"must list one entry per layer ({layers}), got {len(types)}")
    attn = gqa(c, hidden)
    window = c.get("sliding_window", 0, rule="nonneg")
    sliding = sum(1 for t in types if t == "sliding_attention") if window else 0
    attn = replace(attn, sliding_window=window if sliding else 0, sliding_layers=sliding)
    return dict(hidden=hidden, layers=layers, moe_layers=layers, dense_layers=0, dense_ffn=0,
                n_experts=c.experts("num_local_experts"), top_k=c.get("num_experts_per_tok"),
                expert_ffn=c.get("intermediate_size"), shared_ffn=0, n_group=1, topk_group=1,
                vocab=c.get("vocab_size"), tie_embeddings=c.get("tie_word_embeddings", False, kind=bool),
                attention=attn)


def parse_dbrx(c: ConfigReader) -> dict[str, Any]:
    hidden, layers, heads = c.get("d_model"), c.layers("n_layers"), c.get("n_heads")
    ffn, attn = c.sub("ffn_config"), c.sub("attn_config")
    kv = attn.get("kv_n_heads")
    if heads % kv:
        attn.fail("kv_n_heads", f"must divide n_heads ({heads}), got {kv}")
    head_dim = hidden // heads
    if not head_dim:
        c.fail("n_heads", f"more heads ({heads}) than d_model ({hidden})")
    return dict(hidden=hidden, layers=layers, moe_layers=layers, dense_layers=0, dense_ffn=0,
                n_experts=ffn.experts("moe_num_experts"), top_k=ffn.get("moe_top_k"),
                expert_ffn=ffn.get("ffn_hidden_size"), shared_ffn=0, n_group=1, topk_group=1,
                vocab=c.get("vocab_size"), tie_embeddings=c.get("tie_word_embeddings", False, kind=bool),
                attention=Attention("gqa", heads, kv, head_dim, head_dim))


def parse_llama(c: ConfigReader) -> dict[str, Any]:
    hidden, layers = c.get("hidden_size"), c.layers()
    return dict(hidden=hidden, layers=layers, moe_layers=0, dense_layers=layers,
                dense_ffn=c.get("intermediate_size"), n_experts=0, top_k=0, expert_ffn=0, shared_ffn=0,
                n_group=1, topk_group=1, vocab=c.get("vocab_size"),
                tie_embeddings=c.get("tie_word_embeddings", False, kind=bool), attention=gqa(c, hidden))


PARSERS = {
    "DeepseekV2ForCausalLM": parse_deepseek,
    "DeepseekV3ForCausalLM": parse_deepseek,
    "DeepseekV32ForCausalLM": parse_deepseek_v32,
    "Glm4MoeForCausalLM": parse_glm4_moe,
    "Qwen3MoeForCausalLM": parse_qwen3_moe,
    "Qwen3NextForCausalLM": parse_qwen3_next,
    "MiniMaxM2ForCausalLM": parse_minimax_m2,
    "MixtralForCausalLM": parse_mixtral,
    "Llama4ForConditionalGeneration": parse_llama4,
    "Llama4ForCausalLM": parse_llama4,
    "GptOssForCausalLM": parse_gpt_oss,
    "DbrxForCausalLM": parse_dbrx,
    "LlamaForCausalLM": parse_llama,
}


def model_from_config(cfg: dict[str, Any], model_id: str, source: str, prefix: str = "config.",
                      **meta: Any) -> Model:
    """Build a :class:`Model` from a Hugging Face config dict."""
    archs = cfg.get("architectures")
    if not isinstance(archs, list) or not archs:
        raise CatalogError("missing required field (a list such as [\"DeepseekV3ForCausalLM\"])",
                           source, prefix + "architectures")
    arch = archs[0]
    if not isinstance(arch, str) or arch not in PARSERS:
        raise CatalogError(f"unsupported architecture {arch!r} (supported: {', '.join(PARSERS)})",
                           source, prefix + "architectures")
    fields = PARSERS[arch](ConfigReader(cfg, source, prefix))
    if fields["n_experts"] and not 0 < fields["top_k"] <= fields["n_experts"]:
        raise CatalogError(f"top-k ({fields['top_k']}) must be between 1 and the number of experts "
                           f"({fields['n_experts']})", source, prefix + "num_experts_per_tok")
    if fields["n_group"] > 1 and (fields["n_experts"] % fields["n_group"] or fields["topk_group"] > fields["n_group"]):
        raise CatalogError("n_group must divide the experts and be >= topk_group", source, prefix + "n_group")
    return Model(id=model_id, name=meta.pop("name", model_id), architecture=arch, **fields, **meta)


def load_model(name: str) -> Model:
    """Model from a catalog id (``deepseek-v3``), a catalog-style TOML path, or a HF ``config.json``."""
    return _load_model(str(resolve("models", name)))


@lru_cache(maxsize=None)
def _load_model(path_str: str) -> Model:
    path = Path(path_str)
    data = read_file(path)
    if path.suffix == ".json":
        model_id = path.parent.name if path.stem == "config" else path.stem
        return model_from_config(data, model_id, path_str, prefix="")
    check_table(data, MODEL_FIELDS, path_str)
    return model_from_config(
        data["config"], path.stem, path_str, name=data["name"],
        published_total_B=data["published_total_params_B"], published_active_B=data["published_active_params_B"],
        active_counts_embedding=data["active_params_count_embedding"],
        active_counts_lm_head=data.get("active_params_count_lm_head", True),
        published_active_tolerance=data.get("published_active_tolerance", 0.03))


def kv_usage(model: Model, context_tokens: int, kv: str | DType | KVFormat) -> dict[str, Any]:
    """KV cache of one sequence: bytes per token and in total (GB and GiB too), layout ``kv``."""
    check_context(context_tokens)
    total = model.kv_bytes(context_tokens, kv)
    return {"model": model.id, "attention": model.attention_label, "context_tokens": context_tokens,
            "kv_dtype": model.kv_format(kv).name, "kv_bytes_per_token": total / context_tokens, "kv_bytes_total": total,
            "kv_GB_total": total / units.GB, "kv_GiB_total": total / units.GiB}


def check_context(context_tokens: int) -> None:
    """A context length must be a positive number of tokens (``--context``)."""
    if context_tokens <= 0:
        raise InputError(f"must be > 0, got {context_tokens}", "--context")
    check_option("--context", context_tokens)
