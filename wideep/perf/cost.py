"""Cost and energy per token from throughput per GPU, a $/GPU-hour price and all-in kW per GPU.

$/Mtok = $/GPU-hour x 1e6 / (3600 x tokens/s per GPU), the formula InferenceX and NVIDIA use
(docs/sources.md section 1). A workload mix of ISL prompt and OSL output tokens per request pays for the
prefill GPU-seconds and the decode GPU-seconds together (disaggregated serving counts both pools).
Energy at fleet level: a request holds GPUs for isl / prefill rate + osl / decode rate GPU-seconds, so
joules per output token = all-in W per GPU x those GPU-seconds / osl, and output tokens/s per MW =
osl / those GPU-seconds x 1e6 / all-in W (prefill GPUs included); the decode pool alone is reported beside.
"""

from __future__ import annotations

from dataclasses import dataclass

from wideep.core import units
from wideep.core.errors import InputError
from wideep.specs.hardware import GPU

SECONDS_PER_HOUR = 3600.0
TOKENS_PER_MTOK = 1e6
W_PER_MW = 1e6


def usd_per_mtok(usd_per_gpu_hour: float, tokens_per_s_per_gpu: float) -> float:
    """Dollars per million tokens.

    >>> round(usd_per_mtok(2.0, 1000.0), 4)
    0.5556
    """
    return usd_per_gpu_hour * TOKENS_PER_MTOK / (SECONDS_PER_HOUR * tokens_per_s_per_gpu)


@dataclass(frozen=True)
class Cost:
    """Price and energy of serving on one GPU type.

    Attributes
    ----------
    usd_per_gpu_hour : float
        The price used, from ``price_scenario`` (a catalog scenario or ``user``).
    usd_per_mtok_output, usd_per_mtok_input : float
        Decode output tokens; prefill prompt tokens (cache hits included, as served).
    usd_per_mtok_mix : float
        Per million tokens (prompt + output) of requests with ``isl`` prompt and ``osl`` output tokens.
    all_in_kW : float
        All-in power per GPU (server, network, cooling share), kW.
    output_tokens_per_s_per_MW, joules_per_output_token : float
        Fleet energy per output token of ISL/OSL requests (prefill and decode GPUs together).
    decode_output_tokens_per_s_per_MW : float
        The decode pool alone.
    """

    price_scenario: str
    usd_per_gpu_hour: float
    usd_per_mtok_output: float
    usd_per_mtok_input: float
    usd_per_mtok_mix: float
    isl: int
    osl: int
    all_in_kW: float
    output_tokens_per_s_per_MW: float
    joules_per_output_token: float
    decode_output_tokens_per_s_per_MW: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def price(gpu: GPU, usd_per_gpu_hour: float | None = None, scenario: str | None = None) -> tuple[str, float]:
    """(scenario, $/GPU-hour): a user's price, else a catalog scenario (the GPU's first by default)."""
    if usd_per_gpu_hour is not None and scenario is not None:
        raise InputError("give --price-per-gpu-hour or --price-scenario, not both", "--price-per-gpu-hour")
    if usd_per_gpu_hour is not None:
        if not usd_per_gpu_hour > 0 or usd_per_gpu_hour == float("inf"):
            raise InputError(f"must be a finite number > 0, got {usd_per_gpu_hour}", "--price-per-gpu-hour")
        return "user", usd_per_gpu_hour
    return gpu.price(scenario)


def cost(gpu: GPU, output_tokens_per_s_per_gpu: float, input_tokens_per_s_per_gpu: float, isl: int = 1024,
         osl: int = 1024, usd_per_gpu_hour: float | None = None, scenario: str | None = None) -> Cost:
    """Cost and energy from decode and prefill throughput per GPU.

    Parameters
    ----------
    output_tokens_per_s_per_gpu : float
        Decode output tokens/s per GPU.
    input_tokens_per_s_per_gpu : float
        Prefill prompt tokens/s per GPU (cache hits included).
    isl, osl : int
        Prompt and output tokens per request for the mixed price.
    """
    if isl < 0 or osl < 0 or isl + osl == 0:
        raise InputError(f"need isl >= 0, osl >= 0 and isl + osl > 0, got {isl} and {osl}", "--isl/--osl")
    name, usd = price(gpu, usd_per_gpu_hour, scenario)
    gpu_s = isl / input_tokens_per_s_per_gpu + osl / output_tokens_per_s_per_gpu
    mix = usd / SECONDS_PER_HOUR * gpu_s / (isl + osl) * TOKENS_PER_MTOK
    fleet_output_rate = osl / gpu_s if osl else 0.0  # output tokens/s per GPU of the whole fleet
    return Cost(name, usd, usd_per_mtok(usd, output_tokens_per_s_per_gpu),
                usd_per_mtok(usd, input_tokens_per_s_per_gpu), mix, isl, osl, gpu.all_in_W / units.kW,
                fleet_output_rate * W_PER_MW / gpu.all_in_W,
                gpu.all_in_W / fleet_output_rate if fleet_output_rate else float("inf"),
                output_tokens_per_s_per_gpu * W_PER_MW / gpu.all_in_W)
