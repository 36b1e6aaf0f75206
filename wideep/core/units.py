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
        ``bf16``, ``fp8`` or ``nvfp4``.
    bits : int
        Bits per value.
    act_scale_block : int
        Values sharing one scale on activations (0: no scales). FP8: 1x128 per DeepSeek-V3 / DeepEP;
        NVFP4: 16 (NVIDIA NVFP4 micro-block).
    weight_scale_block : int
        Values sharing one scale on weights (FP8: 128x128 blocks as in DeepSeek-V3).
    scale_bytes : int
        Bytes per scale (float32 for FP8, E4M3 for NVFP4).
    """

    name: str
    bits: int
    act_scale_block: int
    weight_scale_block: int
    scale_bytes: int

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
    "bf16": DType("bf16", 16, 0, 0, 0),
    # FP8 E4M3, one float32 scale per 128 activations (DeepEP dispatch format, docs/sources.md §3)
    # and per 128x128 weight block (DeepSeek-V3 technical report).
    "fp8": DType("fp8", 8, 128, 128 * 128, 4),
    # NVFP4: E2M1 values, one E4M3 scale per 16 values (NVIDIA NVFP4 format description).
    "nvfp4": DType("nvfp4", 4, 16, 16, 1),
}


def dtype(name: str, source: str = "--dtype") -> DType:
    """Look up a dtype by name; unknown names raise :class:`~wideep.core.errors.InputError`."""
    try:
        return DTYPES[name]
    except KeyError:
        raise InputError(f"unknown dtype {name!r} (choose from {', '.join(DTYPES)})", source) from None
