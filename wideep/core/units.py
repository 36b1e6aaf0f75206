"""Unit constants and the one dtype table.

Data files use human units in key names (``hbm_TBps``, ``nic_Gbps``, ``latency_us``); the loaders
convert once with these constants to SI (bytes, seconds, bytes/s, FLOP/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wideep.core.errors import InputError

GB = 1e9  #: bytes
GiB = 2**30  #: bytes
TB = 1e12  #: bytes
GBps = 1e9  #: bytes/s
TBps = 1e12  #: bytes/s
Gbps = 1e9 / 8  #: bytes/s per Gb/s
TFLOPs = 1e12  #: FLOP/s
us = 1e-6  #: seconds
ms = 1e-3  #: seconds
W = 1.0  #: watts
kW = 1e3  #: watts
BILLION = 1e9  #: parameters per "B" in published parameter counts (7B, 671B)
GFLOP = 1e9  #: FLOPs
TFLOP = 1e12  #: FLOPs


@dataclass(frozen=True)
class DType:
    """Storage format of weights or activations.

    Parameters
    ----------
    name : str
        ``bf16``, ``fp8``, ``nvfp4``, ``mxfp4`` or ``int4``.
    bits : int
        Bits per value.
    act_scale_block : int
        Values sharing one scale on activations (0: no scales). FP8: 1x128 per DeepSeek-V3 / DeepEP;
        NVFP4: 16 (NVIDIA NVFP4 micro-block).
    weight_scale_block : int
        Values sharing one scale on weights (FP8: 128x128 blocks as in DeepSeek-V3).
    scale_bytes : int
        Bytes per scale (float32 for FP8, E4M3 for NVFP4, E8M0 for MXFP4, bf16 for INT4).
    tensor_cores : str
        Key of :attr:`wideep.specs.hardware.GPU.flops_per_s` whose tensor cores multiply this format
        natively ("" for none: INT4 weights have no tensor-core path on Hopper or Blackwell).
    weight_only_compute : str
        Format the GEMM runs in where the chip lacks those tensor cores (weights dequantised on the fly,
        W4A16); "" means the format needs its tensor cores (NVFP4 on Hopper is an error).
    others : str
        Format of the non-expert GEMMs in the checkpoints that ship their experts in this one ("" = same).
    """

    name: str
    bits: int
    act_scale_block: int
    weight_scale_block: int
    scale_bytes: int
    tensor_cores: str = ""
    weight_only_compute: str = ""
    others: str = ""

    def activation_bytes(self, values: float) -> float:
        """Bytes of ``values`` activation values with their scales.

        >>> DTYPES["fp8"].activation_bytes(7168)
        7392.0
        """
        scales = math.ceil(values / self.act_scale_block) if self.act_scale_block else 0
        return values * self.bits / 8 + scales * self.scale_bytes

    def weight_bytes(self, params: float) -> float:
        """Bytes of ``params`` weights with their block scales (fractional scales are fine here)."""
        scales = params / self.weight_scale_block if self.weight_scale_block else 0.0
        return params * self.bits / 8 + scales * self.scale_bytes


DTYPES: dict[str, DType] = {
    "bf16": DType("bf16", 16, 0, 0, 0, "bf16"),
    # FP8 E4M3, one float32 scale per 128 activations (DeepEP dispatch format, docs/sources.md §3)
    # and per 128x128 weight block (DeepSeek-V3 technical report).
    "fp8": DType("fp8", 8, 128, 128 * 128, 4, "fp8"),
    # NVFP4: E2M1 values, one E4M3 scale per 16 values = 4.5 bits (NVIDIA NVFP4 format description);
    # NVIDIA's NVFP4 checkpoints keep attention in FP8 (nvidia/DeepSeek-R1-FP4).
    "nvfp4": DType("nvfp4", 4, 16, 16, 1, "nvfp4", "", "fp8"),
    # MXFP4 (OCP Microscaling): E2M1 values, one E8M0 scale per 32 = 4.25 bits, as gpt-oss ships its
    # experts (OpenAI gpt-oss model card). Blackwell's FP4 tensor cores run it; Hopper has none, so there
    # it is weight-only, dequantised to bf16 (W4A16). Non-expert weights of gpt-oss are bf16.
    "mxfp4": DType("mxfp4", 4, 32, 32, 1, "nvfp4", "bf16", "bf16"),
    # INT4 weight-only: symmetric int4, one bf16 scale per group of 32 = 4.5 bits, as Kimi-K2-Thinking
    # ships its routed experts (compressed-tensors, group_size 32); no tensor core multiplies INT4 x BF16,
    # so it runs W4A16 at bf16. Its attention, shared experts and head stay bf16 (docs/sources.md §2).
    "int4": DType("int4", 4, 0, 32, 2, "", "bf16", "bf16"),
}
#: Formats that exist only as stored weights (never an activation, KV or dispatch payload).
WEIGHT_ONLY = ("mxfp4", "int4")


def dtype(name: str, source: str = "--dtype", weights: bool = False) -> DType:
    """Look up a dtype by name; unknown names raise :class:`~wideep.core.errors.InputError`, and so do
    weight-only formats (mxfp4, int4) unless ``weights`` (routed-expert weights) is what is asked for."""
    allowed = [n for n in DTYPES if weights or n not in WEIGHT_ONLY]
    if name not in allowed:
        what = "a weight-only format (routed-expert weights: plan --dtype)" if name in WEIGHT_ONLY else "unknown dtype"
        raise InputError(f"{name!r} is {what}; choose from {', '.join(allowed)}" if name in WEIGHT_ONLY
                         else f"{what} {name!r} (choose from {', '.join(allowed)})", source)
    return DTYPES[name]


@dataclass(frozen=True)
class KVFormat:
    """How an engine stores one token's KV values (or MLA latent) in its cache.

    Parameters
    ----------
    name : str
        The name ``--kv-dtype`` takes (vLLM's ``--kv-cache-dtype`` names where one exists).
    bits : int
        Bits per cached value.
    scale_block : int
        Values sharing one stored scale (0: one scale per tensor, not stored per token).
    scale_bytes : int
        Bytes per stored scale.
    rope_bits : int
        MLA only: bits of the RoPE key dims when stored apart unquantised (0: like the other values).
    """

    name: str
    bits: int
    scale_block: int = 0
    scale_bytes: int = 0
    rope_bits: int = 0

    def bytes_per_token(self, values: int, rope: int = 0) -> float:
        """Bytes of one token of one layer: ``values`` cached values, of which ``rope`` are MLA RoPE dims.

        >>> KV_FORMATS["fp8_ds_mla"].bytes_per_token(576, rope=64)
        656.0
        >>> KV_FORMATS["fp8_e4m3"].bytes_per_token(576, rope=64)
        576.0
        """
        quantised = values - rope if self.rope_bits else values
        scales = math.ceil(quantised / self.scale_block) * self.scale_bytes if self.scale_block else 0
        apart = rope * self.rope_bits / 8 if self.rope_bits else 0.0
        return quantised * self.bits / 8 + scales + apart


#: KV-cache layouts engines use (docs/sources.md section 2, "KV cache layouts").
KV_FORMATS: dict[str, KVFormat] = {
    "bf16": KVFormat("bf16", 16),
    # FP8 E4M3 with one scale per tensor (vLLM/SGLang --kv-cache-dtype fp8_e4m3): 1 B per value,
    # 576 B per token per layer for DeepSeek MLA.
    "fp8_e4m3": KVFormat("fp8_e4m3", 8),
    # FlashMLA "FP8 with scale": 512 fp8 latent values, 4 fp32 scales (one per 128), 64 RoPE dims in bf16
    # = 656 B per token per layer (FlashMLA README; vLLM fp8_ds_mla). The only FP8 layout of the sparse
    # (DSA) MLA kernels.
    "fp8_ds_mla": KVFormat("fp8_ds_mla", 8, 128, 4, 16),
    # NVFP4 KV: E2M1 values, one E4M3 scale per 16 (TensorRT-LLM NVFP4 KV cache).
    "nvfp4": KVFormat("nvfp4", 4, 16, 1),
}
#: ``fp8`` means what the engines pick for it: fp8_ds_mla for sparse (DSA) MLA, where vLLM treats fp8 as
#: its alias, and per-tensor fp8_e4m3 everywhere else.
KV_ALIASES = {"fp8": ("fp8_ds_mla", "fp8_e4m3")}


def kv_format(name: str, source: str = "--kv-dtype", sparse_mla: bool = False) -> KVFormat:
    """The KV layout called ``name`` (``fp8`` resolved for sparse MLA or not); unknown names raise."""
    if name in KV_ALIASES:
        name = KV_ALIASES[name][0 if sparse_mla else 1]
    try:
        return KV_FORMATS[name]
    except KeyError:
        choices = ", ".join([*KV_ALIASES, *KV_FORMATS])
        raise InputError(f"unknown KV cache format {name!r} (choose from {choices})", source) from None
