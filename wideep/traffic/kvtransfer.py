"""Disaggregated serving: the prompt's KV cache sent from the prefill pool to the decode pool.

The pools sit in different NVLink domains, so the KV crosses the scale-out fabric: the ranks of the prefill
attention group that hold the sequence send in parallel over their own NICs (MLA keeps the whole latent on
every rank, so ``tp`` ranks can each send 1/tp of it; GQA ranks send their own kv heads). Time = fixed
cost + bytes / (NIC bandwidth x achieved fraction), both the scale-out values of the ``nccl`` transport
(``topologies/transports/nccl.toml``, with their sources).
"""

from __future__ import annotations

from wideep.specs.hardware import System
from wideep.traffic.transports import load_transport

TRANSFER_TRANSPORT = "nccl"


def kv_transfer_s(kv_bytes: float, system: System, senders: int = 1) -> float:
    """Seconds to move ``kv_bytes`` of one sequence's KV between pools over ``senders`` GPUs' NICs.

    >>> from wideep.specs.hardware import load_system
    >>> round(kv_transfer_s(70_272 * 1024, load_system("hgx-h100")) * 1e3, 2)  # DeepSeek-V3, 1K tokens, BF16
    1.51
    """
    transport = load_transport(TRANSFER_TRANSPORT)
    bandwidth_Bps = system.scale_out.per_gpu_Bps * senders * transport.efficiency["scale_out"]
    return transport.latency("dispatch", {"scale_out"}) + kv_bytes / bandwidth_Bps
