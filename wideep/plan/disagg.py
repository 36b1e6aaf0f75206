"""Disaggregated serving in whole instances: x prefill and y decode instances whose request rates match (xPyD).

An instance is the GPUs of one planned layout, the fewest that hold the model in that layout, so a pool is
never a fraction of an instance: a small decode group that needs a sliver of prefill still pays for one whole
prefill instance. The prefill layout is chosen on its own (a prefill instance can be narrower or wider than a
decode instance). With a decode instance of ``Gd`` GPUs giving ``r_d`` output tokens/s per GPU and a prefill
instance of ``Gp`` GPUs taking ``r_p`` prompt tokens/s per GPU, a replica of ``x`` prefill and ``y`` decode
instances serves ``min(y Gd r_d, x Gp r_p osl / isl)`` output tokens/s on ``x Gp + y Gd`` GPUs. When prefill
binds, the decode instances run below their batch: TPOT is the full batch's, an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_INSTANCES = 16  # per pool of one replica (one router in front of both pools)


@dataclass(frozen=True)
class PrefillInstance:
    """One prefill layout: its GPUs, prompt throughput, and the TTFT it gives."""

    tp: int
    ep: int
    gpus: int
    tokens_per_s_per_gpu: float  # prompt tokens
    ttft_s: float  # one prompt's prefill and its KV sent to the decode pool
    transport: str = ""  # its MoE layers' (wideep.traffic.transports), "" where nothing is dispatched


@dataclass(frozen=True)
class Replica:
    """``prefill_instances`` x ``prefill`` beside ``decode_instances`` decode instances of ``decode_gpus`` each."""

    prefill: PrefillInstance
    prefill_instances: int
    decode_instances: int
    decode_gpus: int
    output_tokens_per_s: float

    @property
    def prefill_gpus(self) -> int:
        return self.prefill_instances * self.prefill.gpus

    @property
    def gpus(self) -> int:
        return self.prefill_gpus + self.decode_instances * self.decode_gpus

    @property
    def tokens_per_s_per_gpu(self) -> float:
        """Output tokens/s per GPU of both pools."""
        return self.output_tokens_per_s / self.gpus


def counts(decode_gpus: int, decode_rate: float, prefill_gpus: int, prefill_rate: float) -> tuple[int, int, float]:
    """(x prefill, y decode instances, output tokens/s) with the most output per GPU, each count in
    1..:data:`MAX_INSTANCES`; ties (to 1e-9): fewer GPUs. Rates are the output tokens/s one instance gives
    or feeds. For each y only the two x around the rate match can win."""
    best, best_per_gpu, best_gpus = (0, 0, 0.0), 0.0, 0
    for y in range(1, MAX_INSTANCES + 1):
        match = int(y * decode_rate / prefill_rate)
        for x in (max(1, min(MAX_INSTANCES, match)), max(1, min(MAX_INSTANCES, match + 1))):
            gpus = x * prefill_gpus + y * decode_gpus
            out = min(y * decode_rate, x * prefill_rate)
            per_gpu = out / gpus
            if per_gpu > best_per_gpu * (1 + 1e-9) or (per_gpu >= best_per_gpu * (1 - 1e-9) and gpus < best_gpus):
                best, best_per_gpu, best_gpus = (x, y, out), per_gpu, gpus
    return best


def best_replica(decode_gpus: int, decode_tokens_per_s_per_gpu: float, prefills: list[PrefillInstance],
                 isl: int, osl: int, ttft_s_max: float | None = None) -> Replica:
    """The replica with the most output per GPU over the prefill layouts whose TTFT meets ``ttft_s_max`` (all
    of them when none does); ties (to 9 digits): fewer GPUs, then the shorter TTFT."""
    meeting = [p for p in prefills if ttft_s_max is None or p.ttft_s <= ttft_s_max] or prefills
    decode_rate = decode_gpus * decode_tokens_per_s_per_gpu  # output tokens/s of one decode instance
    best = None
    for p in sorted(meeting, key=lambda p: -p.tokens_per_s_per_gpu):  # falling bound, below
        feeds_per_gpu = p.tokens_per_s_per_gpu * osl / isl  # output tokens/s one prefill GPU feeds
        bound = 1 / (1 / decode_tokens_per_s_per_gpu + 1 / feeds_per_gpu)  # output per GPU at an exact match
        if best and bound < best.tokens_per_s_per_gpu * (1 - 1e-9):
            break
        x, y, out = counts(decode_gpus, decode_rate, p.gpus, p.gpus * feeds_per_gpu)
        r = Replica(p, x, y, decode_gpus, out)
        if best is None or key(r) < key(best):
            best = r
    return best


def key(r: Replica) -> tuple:
    """Most output per GPU (to 9 digits), then fewer GPUs, then the shorter TTFT."""
    return -round(r.tokens_per_s_per_gpu, 9), r.gpus, r.prefill.ttft_s
