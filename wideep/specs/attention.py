"""Attention geometry of a model: MLA (optionally with DeepSeek Sparse Attention), GQA with sliding windows,
and Gated DeltaNet linear attention; their weights, cache bytes and score FLOPs (docs/sources.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass

from wideep.core import units
from wideep.core.errors import InputError
from wideep.core.units import KVFormat

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
        # DeepSeek-V3.2-Exp inference/model.py: k_cache float8_e4m3fn, k_scale_cache float32 per 128 values,
        # which is the fp8 activation format of the dtype table
        return units.DTYPES["fp8"].activation_bytes(self.index_head_dim)

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

    def state_bytes(self, tp: int = 1) -> float:
        """State of one sequence in one layer: v_heads x k_dim x v_dim in float32 plus the convolution's
        last conv_kernel - 1 inputs in bf16 (Qwen3-Next-80B-A3B: 2,097,152 + 49,152 B).

        On one rank of a ``tp``-way attention group: its value heads' state and its query/key and value
        channels of the convolution, each set of heads split over min(tp, heads) ranks (vLLM shards Gated
        DeltaNet by heads, docs/sources.md section 2; past that many ranks, heads repeat).

        >>> la = LinearAttention(36, k_heads=16, v_heads=32, k_dim=128, v_dim=128, conv_kernel=4)
        >>> la.state_bytes(), la.state_bytes(4), la.state_bytes(32)
        (2146304.0, 536576.0, 67840.0)
        """
        k_heads = self.k_heads / max(1, min(tp, self.k_heads))
        v_heads = self.v_heads / max(1, min(tp, self.v_heads))
        conv_channels = 2 * k_heads * self.k_dim + v_heads * self.v_dim
        return (v_heads * self.k_dim * self.v_dim * LINEAR_STATE_BYTES
                + (self.conv_kernel - 1) * conv_channels * LINEAR_CONV_BYTES)

    def flops_per_token(self) -> float:
        """Recurrence FLOPs per token per layer, independent of context: per value head, the delta rule's
        S^T k, rank-1 update and S^T q (2 FLOPs per state element each) plus the decay (1): 7 x k_dim x v_dim."""
        return 7.0 * self.v_heads * self.k_dim * self.v_dim
