"""MoE (and dense reference) model architectures from catalog TOML or a Hugging Face ``config.json``.

Parameter counts assume gated FFNs (gate, up, down: 3 x hidden x ffn weights), the layouts of the
supported architectures; norms and biases (< 0.01% of any catalog model) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from wideep.core import units
from wideep.core.catalog import Field, check_table, check_value, read_file, resolve
from wideep.core.errors import CatalogError, InputError
from wideep.core.limits import check_option
from wideep.core.units import DType

MODEL_FIELDS = {
    "name": Field(str),
    "published_total_params_B": Field(float, "positive"),
    "published_active_params_B": Field(float, "positive"),
    "active_params_count_embedding": Field(bool),
    "config": Field(dict),
}


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

    def params(self, hidden: int) -> int:
        """Weights of one attention layer."""
        if self.kind == "mla":
            q = (hidden * self.q_lora_rank + self.q_lora_rank * self.heads * self.head_dim
                 if self.q_lora_rank else hidden * self.heads * self.head_dim)
            kv = hidden * (self.kv_lora_rank + self.rope_dim)
            kv += self.kv_lora_rank * self.heads * (self.head_dim - self.rope_dim + self.v_head_dim)
            return q + kv + self.heads * self.v_head_dim * hidden
        return hidden * self.head_dim * (self.heads + 2 * self.kv_heads) + self.heads * self.v_head_dim * hidden

    def kv_values_per_token(self) -> int:
        """Cached values per token per layer: MLA latent + RoPE key; GQA K and V of every kv head."""
        if self.kind == "mla":
            return self.kv_lora_rank + self.rope_dim
        return self.kv_heads * (self.head_dim + self.v_head_dim)

    def score_flops_per_token(self, context: float, absorbed: bool = True) -> float:
        """Score and value FLOPs per new token per layer at ``context`` cached tokens.

        MLA ``absorbed`` (decode, as DeepSeek's inference runs it) scores queries against the latent
        (kv_lora + rope dims) and reads values from it (kv_lora); not absorbed (prefill) it works on full
        per-head keys and values like GQA.
        """
        if self.kind == "mla" and absorbed:
            return 2.0 * self.heads * (2 * self.kv_lora_rank + self.rope_dim) * context
        return 2.0 * self.heads * (self.head_dim + self.v_head_dim) * context


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
    published_total_B: float | None = None
    published_active_B: float | None = None
    active_counts_embedding: bool = False

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

    def layer_params_shared(self) -> int:
        """Weights every token uses in the decoder stack: attention, routers, shared experts, dense FFNs."""
        return (self.layers * self.attention.params(self.hidden)
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
        """:attr:`active_params` under the publisher's convention (input embedding counted or not)."""
        return self.active_params + (self.embedding_params if self.active_counts_embedding else 0)

    def expert_bytes(self, dt: DType) -> float:
        """Bytes of one routed expert's weights in dtype ``dt`` (block scales included)."""
        return dt.weight_bytes(self.expert_params)

    def kv_bytes(self, context_tokens: float, dt: DType) -> float:
        """KV-cache bytes of one sequence of ``context_tokens`` tokens, all layers (sliding layers capped)."""
        per_layer = dt.activation_bytes(self.attention.kv_values_per_token())
        full, window = self.attended(context_tokens)
        return per_layer * ((self.layers - self.attention.sliding_layers) * full + self.attention.sliding_layers * window)

    def kv_bytes_per_token(self, context_tokens: float, dt: DType) -> float:
        """Mean KV bytes per cached token at ``context_tokens`` (70,272 B for DeepSeek-V3 in BF16)."""
        return self.kv_bytes(context_tokens, dt) / context_tokens

    def attended(self, context_tokens: float) -> tuple[float, float]:
        """Tokens a new token attends to in (full-attention, sliding-window) layers."""
        a = self.attention
        return context_tokens, min(context_tokens, a.sliding_window) if a.sliding_window else context_tokens

    def score_flops_per_token(self, context_tokens: float, absorbed: bool = True, extra_layers: int = 0) -> float:
        """Attention score + value FLOPs of one new token over all layers (plus ``extra_layers`` full ones,
        e.g. MTP modules) at ``context_tokens`` cached tokens; sliding-window layers capped."""
        a = self.attention
        full, window = self.attended(context_tokens)
        return ((self.layers - a.sliding_layers + extra_layers) * a.score_flops_per_token(full, absorbed)
                + a.sliding_layers * a.score_flops_per_token(window, absorbed))

    def flops_per_token(self, context_tokens: float) -> float:
        """Forward FLOPs for one new token at ``context_tokens`` cached: 2 x active weights + attention."""
        return 2.0 * self.active_params + self.score_flops_per_token(context_tokens)

    def summary(self, context_tokens: int = 4096) -> dict[str, Any]:
        """Figures for display and JSON (parameters in billions; FLOPs at ``context_tokens``)."""
        check_context(context_tokens)
        return {
            "id": self.id, "name": self.name, "architecture": self.architecture,
            "hidden_size": self.hidden, "layers": self.layers, "moe_layers": self.moe_layers,
            "routed_experts": self.n_experts, "top_k": self.top_k, "expert_ffn": self.expert_ffn,
            "attention": self.attention.kind,
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

    def get(self, key: str, default: Any = ..., kind: type = int, rule: str = "positive") -> Any:
        if key not in self.cfg or self.cfg[key] is None:
            if default is ...:
                raise CatalogError("missing required field", self.source, self.prefix + key)
            return default
        check_value(self.cfg[key], Field(kind, rule), self.source, self.prefix + key)
        return self.cfg[key]

    def sub(self, key: str) -> "ConfigReader":
        value = self.cfg.get(key)
        if not isinstance(value, dict):
            raise CatalogError("missing required table", self.source, self.prefix + key)
        return ConfigReader(value, self.source, f"{self.prefix}{key}.")


def gqa(c: ConfigReader, hidden: int, heads_key: str = "num_attention_heads",
        kv_key: str = "num_key_value_heads") -> Attention:
    heads = c.get(heads_key)
    head_dim = c.get("head_dim", hidden // heads)
    return Attention("gqa", heads, c.get(kv_key, heads), head_dim, head_dim)


def parse_deepseek(c: ConfigReader) -> dict[str, Any]:
    layers, first_dense = c.get("num_hidden_layers"), c.get("first_k_dense_replace", 0, rule="nonneg")
    freq = c.get("moe_layer_freq", 1)
    moe = tuple(i for i in range(first_dense, layers) if i % freq == 0)
    nope, rope = c.get("qk_nope_head_dim"), c.get("qk_rope_head_dim")
    heads = c.get("num_attention_heads")
    attn = Attention("mla", heads, heads, nope + rope, c.get("v_head_dim"), c.get("q_lora_rank", 0, rule="nonneg"),
                     c.get("kv_lora_rank"), rope)
    return dict(hidden=c.get("hidden_size"), layers=layers, moe_layers=len(moe), dense_layers=layers - len(moe),
                moe_layer_ids=moe, dense_ffn=c.get("intermediate_size"), n_experts=c.get("n_routed_experts"),
                top_k=c.get("num_experts_per_tok"), expert_ffn=c.get("moe_intermediate_size"),
                shared_ffn=c.get("n_shared_experts", 0, rule="nonneg") * c.get("moe_intermediate_size"),
                n_group=c.get("n_group", 1), topk_group=c.get("topk_group", 1), vocab=c.get("vocab_size"),
                tie_embeddings=c.get("tie_word_embeddings", False, kind=bool), attention=attn,
                mtp_layers=c.get("num_nextn_predict_layers", 0, rule="nonneg"))


def parse_qwen3_moe(c: ConfigReader) -> dict[str, Any]:
    layers, step = c.get("num_hidden_layers"), c.get("decoder_sparse_step", 1)
    dense_only = set(c.get("mlp_only_layers", [], kind=list))
    moe = tuple(i for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
    hidden = c.get("hidden_size")
    return dict(hidden=hidden, layers=layers, moe_layers=len(moe), dense_layers=layers - len(moe), moe_layer_ids=moe,
                dense_ffn=c.get("intermediate_size"), n_experts=c.get("num_experts"),
                top_k=c.get("num_experts_per_tok"), expert_ffn=c.get("moe_intermediate_size"), shared_ffn=0,
                n_group=1, topk_group=1, vocab=c.get("vocab_size"),
                tie_embeddings=c.get("tie_word_embeddings", False, kind=bool), attention=gqa(c, hidden))


def parse_mixtral(c: ConfigReader) -> dict[str, Any]:
    hidden, layers = c.get("hidden_size"), c.get("num_hidden_layers")
    return dict(hidden=hidden, layers=layers, moe_layers=layers, dense_layers=0, dense_ffn=0,
                n_experts=c.get("num_local_experts"), top_k=c.get("num_experts_per_tok"),
                expert_ffn=c.get("intermediate_size"), shared_ffn=0, n_group=1, topk_group=1,
                vocab=c.get("vocab_size"), tie_embeddings=c.get("tie_word_embeddings", False, kind=bool),
                attention=gqa(c, hidden))


def parse_llama4(c: ConfigReader) -> dict[str, Any]:
    t = c.sub("text_config")
    hidden, layers, step = t.get("hidden_size"), t.get("num_hidden_layers"), t.get("interleave_moe_layer_step", 1)
    moe = tuple(range(step - 1, layers, step))  # as transformers' Llama4TextConfig derives moe_layers
    return dict(hidden=hidden, layers=layers, moe_layers=len(moe), dense_layers=layers - len(moe), moe_layer_ids=moe,
                dense_ffn=t.get("intermediate_size_mlp"), n_experts=t.get("num_local_experts"),
                top_k=t.get("num_experts_per_tok"), expert_ffn=t.get("intermediate_size"),
                shared_ffn=t.get("intermediate_size"), n_group=1, topk_group=1, vocab=t.get("vocab_size"),
                tie_embeddings=t.get("tie_word_embeddings", False, kind=bool), attention=gqa(t, hidden))


def parse_gpt_oss(c: ConfigReader) -> dict[str, Any]:
    hidden, layers = c.get("hidden_size"), c.get("num_hidden_layers")
    types = c.get("layer_types", [], kind=list)
    attn = gqa(c, hidden)
    window = c.get("sliding_window", 0, rule="nonneg")
    sliding = sum(1 for t in types if t == "sliding_attention") if window else 0
    attn = Attention("gqa", attn.heads, attn.kv_heads, attn.head_dim, attn.v_head_dim,
                     sliding_window=window if sliding else 0, sliding_layers=sliding)
    return dict(hidden=hidden, layers=layers, moe_layers=layers, dense_layers=0, dense_ffn=0,
                n_experts=c.get("num_local_experts"), top_k=c.get("num_experts_per_tok"),
                expert_ffn=c.get("intermediate_size"), shared_ffn=0, n_group=1, topk_group=1,
                vocab=c.get("vocab_size"), tie_embeddings=c.get("tie_word_embeddings", False, kind=bool),
                attention=attn)


def parse_dbrx(c: ConfigReader) -> dict[str, Any]:
    hidden, layers, heads = c.get("d_model"), c.get("n_layers"), c.get("n_heads")
    ffn, attn = c.sub("ffn_config"), c.sub("attn_config")
    head_dim = hidden // heads
    return dict(hidden=hidden, layers=layers, moe_layers=layers, dense_layers=0, dense_ffn=0,
                n_experts=ffn.get("moe_num_experts"), top_k=ffn.get("moe_top_k"),
                expert_ffn=ffn.get("ffn_hidden_size"), shared_ffn=0, n_group=1, topk_group=1,
                vocab=c.get("vocab_size"), tie_embeddings=c.get("tie_word_embeddings", False, kind=bool),
                attention=Attention("gqa", heads, attn.get("kv_n_heads"), head_dim, head_dim))


def parse_llama(c: ConfigReader) -> dict[str, Any]:
    hidden, layers = c.get("hidden_size"), c.get("num_hidden_layers")
    return dict(hidden=hidden, layers=layers, moe_layers=0, dense_layers=layers,
                dense_ffn=c.get("intermediate_size"), n_experts=0, top_k=0, expert_ffn=0, shared_ffn=0,
                n_group=1, topk_group=1, vocab=c.get("vocab_size"),
                tie_embeddings=c.get("tie_word_embeddings", False, kind=bool), attention=gqa(c, hidden))


PARSERS = {
    "DeepseekV3ForCausalLM": parse_deepseek,
    "Qwen3MoeForCausalLM": parse_qwen3_moe,
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
        raise CatalogError("top-k must be between 1 and the number of experts", source, prefix + "num_experts_per_tok")
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
        active_counts_embedding=data["active_params_count_embedding"])


def kv_usage(model: Model, context_tokens: int, dt: DType) -> dict[str, Any]:
    """KV cache of one sequence: bytes per token and in total (GB and GiB too)."""
    check_context(context_tokens)
    total = model.kv_bytes(context_tokens, dt)
    return {"model": model.id, "attention": model.attention.kind, "context_tokens": context_tokens,
            "kv_dtype": dt.name, "kv_bytes_per_token": total / context_tokens, "kv_bytes_total": total,
            "kv_GB_total": total / units.GB, "kv_GiB_total": total / units.GiB}


def check_context(context_tokens: int) -> None:
    """A context length must be a positive number of tokens (``--context``)."""
    if context_tokens <= 0:
        raise InputError(f"must be > 0, got {context_tokens}", "--context")
    check_option("--context", context_tokens)
