"""MoE (and dense reference) model architectures from catalog TOML or a Hugging Face ``config.json``.

Parameter counts assume gated FFNs (gate, up, down: 3 x hidden x ffn weights), the layouts of the
supported architectures; norms and biases (< 0.01% of any catalog model) are left out. Attention families:
MLA (DeepSeek-V2/V3, Kimi K2), MLA with DeepSeek Sparse Attention (V3.2: a lightning indexer picks
``index_topk`` past tokens per query), GQA with sliding-window layers (gpt-oss), and GQA hybrids whose other
layers are Gated DeltaNet linear attention with a fixed-size state (Qwen3-Next). Sources: docs/sources.md §2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from wideep.core import units
from wideep.core.catalog import Field, check_table, read_file, resolve
from wideep.core.errors import CatalogError, InputError
from wideep.core.limits import check_option
from wideep.core.units import DType, KVFormat
from wideep.specs.attention import Attention, LinearAttention
from wideep.specs.hfconfig import PARSERS, config_fields

MODEL_FIELDS = {
    "name": Field(str),
    "published_total_params_B": Field(float, "positive"),
    "published_active_params_B": Field(float, "positive"),
    "active_params_count_embedding": Field(bool),
    "active_params_count_lm_head": Field(bool, required=False),
    "published_active_tolerance": Field(float, "positive", required=False),
    "config": Field(dict),
    "routing": Field(dict, required=False),
}

#: ``[routing]`` of a model file: the spread of its measured expert popularity (see ``lognormal`` routing in
#: :mod:`wideep.routing.stats`): log weights are sigma times evenly spaced normal quantiles (their spread is
#: 0.84-0.92 sigma at 4-8 values), at most POPULARITY_SIGMA_MAX; group_sigma 0 without routing groups.
ROUTING_FIELDS = {"group_sigma": Field(float, "nonneg"), "expert_sigma": Field(float, "nonneg")}

#: Largest popularity spread accepted: past it one expert takes nearly every selection of its group, which no
#: published routing statistics show (DeepSeek-V3's measured spread is about a third of it), and drawing
#: distinct experts by rejection slows down.
POPULARITY_SIGMA_MAX = 1.5

__all__ = ["Attention", "LinearAttention", "Model", "PARSERS", "kv_usage", "load_model", "model_from_config"]


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
    popularity_sigma: tuple[float, float] | None = None  # (group, expert) spread of measured routing, if any
    max_context: int | None = None  # tokens of the longest sequence it encodes (max_position_embeddings), if named

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
            "sliding_layers": self.attention.sliding_layers, "sliding_window_tokens": self.attention.sliding_window,
            "dsa_index_topk": self.attention.index_topk, "linear_attention_layers": self.linear_layers,
            "max_context_tokens": self.max_context,
            "total_params_B": self.total_params / units.BILLION, "active_params_B": self.active_params_as_published / units.BILLION,
            "published_total_params_B": self.published_total_B,
            "published_active_params_B": self.published_active_B,
            "bytes_per_expert": {n: self.expert_bytes(dt) for n, dt in units.DTYPES.items()},
            "non_expert_bytes_bf16": units.DTYPES["bf16"].weight_bytes(self.non_expert_params),
            "kv_bytes_per_token_bf16": self.kv_bytes_per_token(context_tokens, units.DTYPES["bf16"]),
            "context_tokens": context_tokens,
            "GFLOPs_per_token": self.flops_per_token(context_tokens) / units.GFLOP,
        }


def model_from_config(cfg: dict[str, Any], model_id: str, source: str, prefix: str = "config.",
                      **meta: Any) -> Model:
    """Build a :class:`Model` from a Hugging Face config dict."""
    arch, fields = config_fields(cfg, source, prefix)
    sigma = meta.get("popularity_sigma")
    if sigma and sigma[0] > 0 and fields["n_group"] <= 1:
        raise CatalogError(f"must be 0: {model_id} has no routing groups (n_group {fields['n_group']})", source,
                           "routing.group_sigma")
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
        published_active_tolerance=data.get("published_active_tolerance", 0.03),
        popularity_sigma=popularity_sigma(data.get("routing"), path_str))


def popularity_sigma(table: dict[str, Any] | None, source: str) -> tuple[float, float] | None:
    """(group_sigma, expert_sigma) of a model file's ``[routing]`` table, None without one."""
    if table is None:
        return None
    check_table(table, ROUTING_FIELDS, source, "routing.")
    for key in ROUTING_FIELDS:
        if table[key] > POPULARITY_SIGMA_MAX:
            raise CatalogError(f"must be <= {POPULARITY_SIGMA_MAX}, got {table[key]}", source, f"routing.{key}")
    return float(table["group_sigma"]), float(table["expert_sigma"])


def kv_usage(model: Model, context_tokens: int, kv: str | DType | KVFormat) -> dict[str, Any]:
    """KV cache of one sequence: bytes per token and in total (GB and GiB too), layout ``kv``."""
    check_context(context_tokens, model)
    total = model.kv_bytes(context_tokens, kv)
    return {"model": model.id, "attention": model.attention_label, "context_tokens": context_tokens,
            "kv_dtype": model.kv_format(kv).name, "kv_bytes_per_token": total / context_tokens, "kv_bytes_total": total,
            "kv_GB_total": total / units.GB, "kv_GiB_total": total / units.GiB}


def check_context(context_tokens: int, model: Model | None = None, option: str = "--context", what: str = "") -> None:
    """A context length must be a positive number of tokens, and no longer than ``model`` encodes (``what``
    names the length in the message when it is not the option's own value)."""
    if context_tokens <= 0:
        raise InputError(f"must be > 0, got {context_tokens}", option)
    check_option(option, context_tokens)
    if model is not None and model.max_context is not None and context_tokens > model.max_context:
        raise InputError(f"{model.id} encodes at most {model.max_context:,} tokens (max_position_embeddings; "
                         f"rope_scaling in its config extends it), got {what}{context_tokens:,}", option)
