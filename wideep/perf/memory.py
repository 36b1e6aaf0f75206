"""Memory fit of one GPU of an EP group: weights + KV cache + workspace against usable HBM.

Weights per GPU = its expert slots (slots_per_gpu x MoE layers x bytes per expert) + every non-expert
weight (attention, dense FFNs, shared experts, embedding and LM head) split over the attention
tensor-parallel group (``tp``; 1 = data-parallel attention, every GPU holds them whole; routers stay whole).
KV per GPU: the group's sequences x one rank's part of their KV (:func:`kv_rank_bytes`: a rank keeps its kv
heads, :func:`kv_share`, MLA's single latent whole on every rank; a Gated DeltaNet layer's state split by its
own heads). MTP modules (DeepSeek-V3: one extra MoE layer sharing the embedding and
the LM head, per its technical report) add one attention layer, shared expert and slot set each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wideep.core import units
from wideep.specs.hardware import GPU
from wideep.specs.model import Model
from wideep.core.units import DType


@dataclass(frozen=True)
class Precision:
    """Storage/compute formats: routed-expert weights, attention projection weights, KV cache.

    ``attention`` None means the same as ``weights`` (DeepSeek-V3 runs every projection as an FP8 GEMM;
    its "BF16 MLA" is the attention core, which wideep always computes at bf16 peak), except for the
    expert-only formats (``DType.others``): NVIDIA's NVFP4 checkpoints (nvidia/DeepSeek-R1-FP4) keep
    attention in FP8, gpt-oss (MXFP4 experts) and Kimi-K2-Thinking (INT4 experts) keep it in bf16.
    Dense FFNs and shared experts follow ``weights``, or ``attention`` for those formats (:attr:`dense`).
    Embedding, LM head, routers and the MTP projection stay in bf16 (as DeepSeek-V3 keeps them). ``kv``
    names a KV layout (:data:`wideep.core.units.KV_FORMATS`).
    """

    weights: str = "fp8"
    attention: str | None = None
    kv: str = "bf16"

    def __post_init__(self) -> None:
        if self.attention is None:
            object.__setattr__(self, "attention", self.expert_only or self.weights)

    @property
    def expert_only(self) -> str:
        """Format of the other GEMMs when ``weights`` is an expert-only format, else ""."""
        dt = units.DTYPES.get(self.weights)
        return dt.others if dt else ""

    @property
    def dense(self) -> str:
        """Dtype of the non-routed FFN GEMMs (dense layers, shared experts)."""
        return self.attention if self.expert_only else self.weights

    def dt(self, which: str) -> DType:
        """The DType of ``weights``, ``attention`` or ``dense`` (KVFormat of ``kv``); unknown names raise
        naming the option."""
        if which == "kv":
            return units.kv_format(self.kv, OPTIONS[which])  # type: ignore[return-value]
        return units.dtype(getattr(self, which), OPTIONS[which], weights=which == "weights")


#: The CLI option that sets each Precision field (named in errors).
OPTIONS = {"weights": "--dtype", "attention": "--attn-dtype", "kv": "--kv-dtype", "dense": "--dtype"}


@dataclass(frozen=True)
class MemoryFit:
    """Bytes per GPU and the largest batch and context that fit (all bytes, per GPU).

    ``max_batch`` is at the plan's context, ``max_context`` at the plan's batch (at most the tokens the model
    encodes); 0 when nothing fits.
    """

    weights_bytes: float
    expert_weights_bytes: float
    kv_bytes: float
    workspace_bytes: float
    usable_bytes: float
    fits: bool
    max_batch: int
    max_context: int

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_bytes + self.workspace_bytes

    def to_dict(self) -> dict:
        gb = units.GB
        return {"weights_GB": self.weights_bytes / gb, "expert_weights_GB": self.expert_weights_bytes / gb,
                "kv_GB": self.kv_bytes / gb, "workspace_GB": self.workspace_bytes / gb,
                "total_GB": self.total_bytes / gb, "usable_GB": self.usable_bytes / gb, "fits": self.fits,
                "max_batch": self.max_batch, "max_context": self.max_context}


def expert_weight_bytes(model: Model, slots_per_gpu: int, prec: Precision, mtp: int = 0, moe_tp: int = 1) -> float:
    """Routed-expert bytes on one GPU: its slots in every MoE layer (and MTP layer), 1/moe_tp of each under MoE
    tensor parallelism."""
    return slots_per_gpu * (model.moe_layers + mtp) * model.expert_bytes(prec.dt("weights")) / moe_tp


def kv_share(model: Model, tp: int) -> float:
    """Share of a sequence's softmax-attention KV one rank of a ``tp``-way attention group keeps:
    1 / min(tp, kv heads); MLA 1. (Linear-attention state: :func:`kv_rank_bytes`.)

    >>> from wideep.specs.model import load_model
    >>> kv_share(load_model("deepseek-v3"), 8), kv_share(load_model("llama-3.1-70b"), 8)
    (1.0, 0.125)
    """
    heads = 1 if model.attention.kind == "mla" else model.attention.kv_heads
    return 1.0 / max(1, min(tp, heads))


def replicated_weight_bytes(model: Model, prec: Precision, mtp: int = 0, tp: int = 1) -> float:
    """Bytes of the non-expert weights one GPU holds: attention, dense and shared FFNs, embedding and head
    over ``tp`` (MLA's latent down-projections whole), routers whole."""
    bf16, w = units.DTYPES["bf16"], prec.dt("dense")
    h = model.hidden
    a = model.attention
    whole = h * (a.q_lora_rank + a.kv_lora_rank + a.rope_dim) if a.kind == "mla" and tp > 1 else 0
    whole *= model.softmax_layers + mtp
    attention = (model.attention_params(extra_layers=mtp) - whole) / tp + whole
    ffn = (model.dense_layers * 3 * h * model.dense_ffn + (model.moe_layers + mtp) * 3 * h * model.shared_ffn) / tp
    routers = (model.moe_layers + mtp) * h * model.n_experts
    head = (model.embedding_params + (0 if model.tie_embeddings else model.lm_head_params)) / tp
    return (prec.dt("attention").weight_bytes(attention) + w.weight_bytes(ffn)
            + bf16.weight_bytes(routers + head + mtp * 2 * h * h))


def linear_state_bytes(model: Model, mtp: int = 0, tp: int = 1) -> float:
    """Linear-attention state of one sequence, every Gated DeltaNet layer (scaled for MTP layers as
    :func:`kv_bytes_per_sequence` scales), that one rank of a ``tp``-way attention group keeps; 0 without."""
    if not model.linear:
        return 0.0
    return model.linear.layers * model.linear.state_bytes(tp) * (model.layers + mtp) / model.layers


def kv_rank_bytes(model: Model, seq_bytes: float, tp: int, mtp: int = 0, state_copies: int = 1) -> float:
    """One rank's part of ``seq_bytes``, cache bytes of one sequence (:func:`kv_bytes_per_sequence`, or with
    ``state_copies`` 2 :func:`kv_read_bytes_per_sequence`, which reads and writes the state): the softmax
    layers' KV x :func:`kv_share`, the linear-attention state split by its own heads.

    >>> from wideep.specs.model import load_model
    >>> m = load_model("qwen3-next-80b-a3b")  # 12 GQA layers, 2 kv heads; 36 Gated DeltaNet, 32 value heads
    >>> kv_rank_bytes(m, linear_state_bytes(m), 8) == linear_state_bytes(m) / 8
    True
    """
    if tp <= 1:
        return seq_bytes
    state = state_copies * linear_state_bytes(model, mtp)
    return (seq_bytes - state) * kv_share(model, tp) + state_copies * linear_state_bytes(model, mtp, tp)


def kv_bytes_per_sequence(model: Model, context: float, prec: Precision, mtp: int = 0) -> float:
    """KV bytes of one sequence at ``context`` tokens (linear-attention state included), MTP layers too."""
    prec.dt("kv")
    return model.kv_bytes(context, prec.kv) * (model.layers + mtp) / model.layers


def kv_read_bytes_per_sequence(model: Model, context: float, prec: Precision, mtp: int = 0) -> float:
    """Cache bytes one new token of a sequence reads at ``context`` tokens: the KV it attends to (DSA: only
    its selected tokens, plus the indexer keys of every token), sliding windows, linear-attention state."""
    prec.dt("kv")
    return model.kv_read_bytes(context, prec.kv) * (model.layers + mtp) / model.layers


def mtp_modules(model: Model, draft_tokens: int) -> int:
    """MTP modules a GPU holds for ``draft_tokens`` draft tokens: engines run the model's module(s) once per
    draft step (DeepSeek-V3 ships one and SGLang, vLLM and TensorRT-LLM reuse it for every step), so the
    weights and the KV are those of ``min(draft_tokens, num_nextn_predict_layers)`` modules."""
    return min(draft_tokens, model.mtp_layers)


def memory_fit(model: Model, gpu: GPU, slots_per_gpu: int, sequences: float, context: int, prec: Precision,
               workspace_fraction: float, mtp: int = 0, tp: int = 1, moe_tp: int = 1) -> MemoryFit:
    """Fit of ``sequences`` sequences of ``context`` tokens per attention group of ``tp`` GPUs.

    Parameters
    ----------
    slots_per_gpu : int
        Expert slots per GPU (logical + redundant experts over the EP size), each split ``moe_tp`` ways.
    sequences : float
        Sequences resident per attention group (decode: the batch); per GPU when ``tp`` is 1.
    workspace_fraction : float
        Share of usable HBM kept for activations and buffers (calibration data).
    mtp : int
        MTP modules held (weights and KV): the model's, at most, whatever the draft tokens
        (:func:`mtp_modules`).
    """
    experts = expert_weight_bytes(model, slots_per_gpu, prec, mtp, moe_tp)
    weights = experts + replicated_weight_bytes(model, prec, mtp, tp)
    workspace = workspace_fraction * gpu.hbm_usable_bytes
    free = gpu.hbm_usable_bytes - weights - workspace
    per_seq = kv_rank_bytes(model, kv_bytes_per_sequence(model, context, prec, mtp), tp, mtp)
    kv = sequences * per_seq
    longest = min(max_context(model, free, max(sequences, 1), prec, mtp, tp), model.max_context or MAX_CONTEXT_SEARCH)
    return MemoryFit(weights, experts, kv, workspace, gpu.hbm_usable_bytes, kv <= free,
                     max(0, int(free // per_seq)) if free > 0 else 0, longest)


MAX_CONTEXT_SEARCH = 2**40  # contexts searched: [0, MAX_CONTEXT_SEARCH - 1]


def max_context(model: Model, free_bytes: float, sequences: float, prec: Precision, mtp: int = 0, tp: int = 1) -> int:
    """Largest context (tokens) whose KV for ``sequences`` sequences, one rank's part of a ``tp``-way group,
    fits in ``free_bytes``.

    KV bytes never fall as the context grows, so the answer is the one context that fits while one token more
    does not: tried first where the straight line through two long contexts crosses ``free_bytes`` (KV is
    linear in the context past any sliding window), else found by bisection.
    """
    if free_bytes <= 0:
        return 0
    def need(context: int) -> float:
        return sequences * kv_rank_bytes(model, kv_bytes_per_sequence(model, context, prec, mtp), tp, mtp)

    fits = lambda c: need(c) <= free_bytes  # noqa: E731
    a, b = 2**29, 2**30
    at_a, at_b = need(a), need(b)
    if at_b > at_a and math.isfinite(at_b):
        guess = int(min(max(a + (free_bytes - at_a) * (b - a) / (at_b - at_a), 0.0), MAX_CONTEXT_SEARCH))
        for c in (guess, guess - 1, guess + 1):
            if 0 <= c < MAX_CONTEXT_SEARCH - 1 and fits(c) and not fits(c + 1):
                return c
    return bisect_context(fits)


def bisect_context(fits) -> int:
    """Largest context in [0, MAX_CONTEXT_SEARCH - 1] for which ``fits`` (non-increasing truth) holds, 0 if none:
    doubling from 1, then bisection."""
    lo, hi = 0, 1
    while fits(hi) and hi < MAX_CONTEXT_SEARCH:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def prefill_transient_bytes(model: Model, tokens: float, prec: Precision) -> float:
    """Activations and all-to-all buffers of one prefill chunk of ``tokens`` tokens on one GPU.

    The largest per-layer intermediate (attention's query, key and value heads and its output, or a dense
    FFN's gate and up outputs, in bf16) for every token, the residual stream twice, and the dispatch
    (fp8 with scales) and combine (bf16) buffers of every token copy (top_k per token, send and receive).
    """
    bf16, act = units.DTYPES["bf16"], prec.dt("weights")
    h, a = model.hidden, model.attention
    attention = a.heads * (2 * a.head_dim + a.v_head_dim) + h
    ffn = 2 * max(model.dense_ffn, model.shared_ffn, model.expert_ffn * model.top_k)
    per_token = bf16.activation_bytes(max(attention, ffn) + 2 * h)
    copies = 2 * model.top_k if model.is_moe else 0
    per_token += copies * (act.activation_bytes(h) + bf16.activation_bytes(h))
    return tokens * per_token


def prefill_fits(model: Model, gpu: GPU, slots_per_gpu: int, chunk_tokens: int, prompt_tokens: int,
                 prec: Precision, workspace_fraction: float, tp: int = 1,
                 moe_tp: int = 1) -> tuple[bool, float, int]:
    """(fits, bytes needed per GPU, largest chunk that fits) for a prefill chunk of ``chunk_tokens`` per
    attention group of ``tp`` GPUs.

    Needed = weights + the KV of the chunk's prompts + max(workspace, the chunk's activations and buffers).
    """
    weights = expert_weight_bytes(model, slots_per_gpu, prec, moe_tp=moe_tp) + replicated_weight_bytes(model, prec, tp=tp)

    def need(tokens: int) -> float:
        sequences = max(1.0, tokens / prompt_tokens)
        kv = sequences * kv_rank_bytes(model, kv_bytes_per_sequence(model, prompt_tokens, prec), tp)
        return weights + kv + max(workspace_fraction * gpu.hbm_usable_bytes, prefill_transient_bytes(model, tokens, prec))

    lo, hi = 0, 1
    while need(hi) <= gpu.hbm_usable_bytes and hi < 2**31:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if need(mid) <= gpu.hbm_usable_bytes else (lo, mid)
    return need(chunk_tokens) <= gpu.hbm_usable_bytes, need(chunk_tokens), lo
