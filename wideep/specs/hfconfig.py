"""Readers of Hugging Face ``config.json`` layouts, one per architecture, with consistency checks.

Each parser returns the keyword fields of :class:`wideep.specs.model.Model`; problems raise
:class:`~wideep.core.errors.CatalogError` naming the file and the field (one line, exit 2 in the CLI).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from wideep.core.catalog import Field, check_value
from wideep.core.errors import CatalogError
from wideep.specs.attention import Attention, LinearAttention

#: Largest sizes a model file may declare: far past any published model (Kimi K2: 384 experts, 61 layers),
#: small enough that a plan's per-expert and per-layer arrays stay in memory.
MAX_EXPERTS = 65_536
MAX_LAYERS = 4_096
MAX_WIDTH = 1 << 20  # hidden, FFN and head widths, heads, vocabulary entries / 16


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
    if heads > hidden and c.cfg.get("head_dim") is None:
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


def chunked_layers(t: ConfigReader, layers: int) -> int:
    """Llama 4's RoPE layers, which attend within attention_chunk_size chunks: the 1 entries of
    ``no_rope_layers``, else all but every ``no_rope_layer_interval``-th layer (transformers'
    Llama4TextConfig: a NoPE layer every 4th by default)."""
    flags = t.get("no_rope_layers", None, kind=list)
    if flags is not None:
        if len(flags) < layers or any(f not in (0, 1) for f in flags):
            t.fail("no_rope_layers", f"must list a 0 or 1 for each of the {layers} layers")
        return sum(flags[:layers])
    interval = t.get("no_rope_layer_interval", 4)
    return sum(1 for i in range(layers) if (i + 1) % interval)


def parse_llama4(c: ConfigReader) -> dict[str, Any]:
    """Llama 4: MoE every interleave_moe_layer_step-th layer; chunked attention on the RoPE layers, modelled
    as a window of attention_chunk_size (a token sees at most its own chunk: an upper bound on cache and reads)."""
    t = c.sub("text_config")
    hidden, layers, step = t.get("hidden_size"), t.layers(), t.get("interleave_moe_layer_step", 1)
    moe = tuple(range(step - 1, layers, step))  # as transformers' Llama4TextConfig derives moe_layers
    attn, chunk = gqa(t, hidden), t.get("attention_chunk_size", 0, rule="nonneg")
    if chunk:
        attn = replace(attn, sliding_window=chunk, sliding_layers=chunked_layers(t, layers))
    return dict(hidden=hidden, layers=layers, moe_layers=len(moe), dense_layers=layers - len(moe), moe_layer_ids=moe,
                dense_ffn=t.get("intermediate_size_mlp"), n_experts=t.experts("num_local_experts"),
                top_k=t.get("num_experts_per_tok"), expert_ffn=t.get("intermediate_size"),
                shared_ffn=t.get("intermediate_size"), n_group=1, topk_group=1, vocab=t.get("vocab_size"),
                tie_embeddings=t.get("tie_word_embeddings", False, kind=bool), attention=attn)


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


def config_fields(cfg: dict[str, Any], source: str, prefix: str = "config.") -> tuple[str, dict[str, Any]]:
    """(architecture, Model fields) of a Hugging Face config dict, checked for consistency."""
    archs = cfg.get("architectures")
    if not isinstance(archs, list) or not archs:
        raise CatalogError("missing required field (a list such as [\"DeepseekV3ForCausalLM\"])",
                           source, prefix + "architectures")
    arch = archs[0]
    if not isinstance(arch, str) or arch not in PARSERS:
        raise CatalogError(f"unsupported architecture {arch!r} (supported: {', '.join(PARSERS)})",
                           source, prefix + "architectures")
    fields = PARSERS[arch](ConfigReader(cfg, source, prefix))
    fields["max_context"] = max_positions(cfg, source, prefix)
    if fields["n_experts"] and not 0 < fields["top_k"] <= fields["n_experts"]:
        raise CatalogError(f"top-k ({fields['top_k']}) must be between 1 and the number of experts "
                           f"({fields['n_experts']})", source, prefix + "num_experts_per_tok")
    if fields["n_group"] > 1 and (fields["n_experts"] % fields["n_group"] or fields["topk_group"] > fields["n_group"]):
        raise CatalogError("n_group must divide the experts and be >= topk_group", source, prefix + "n_group")
    if fields["n_group"] > 1 and fields["topk_group"] * fields["n_experts"] // fields["n_group"] < fields["top_k"]:
        raise CatalogError(f"topk_group ({fields['topk_group']}) groups hold fewer experts than top-k "
                           f"({fields['top_k']})", source, prefix + "topk_group")
    return arch, fields


def max_positions(cfg: dict[str, Any], source: str, prefix: str) -> int | None:
    """The longest sequence the model encodes: ``max_position_embeddings`` (top level, else ``text_config``'s),
    or ``rope_scaling``'s factor x ``original_max_position_embeddings`` where that is longer (YaRN set in the
    config); None where the config names neither."""
    text = cfg.get("text_config")
    if "max_position_embeddings" not in cfg and isinstance(text, dict):
        cfg, prefix = text, prefix + "text_config."
    c = ConfigReader(cfg, source, prefix)
    native = c.get("max_position_embeddings", None, most=1 << 30)
    scaling = cfg.get("rope_scaling")
    if native is None or not isinstance(scaling, dict):
        return native
    scaled = ConfigReader(scaling, source, prefix + "rope_scaling.")
    factor = scaled.get("factor", 1.0, kind=float)
    return max(native, int(factor * scaled.get("original_max_position_embeddings", native, most=1 << 30)))
