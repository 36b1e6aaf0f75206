"""Routed-expert compute of one MoE layer on one rank against NVIDIA AIConfigurator's measured MoE kernels.

AIC's ``moe_perf`` (TensorRT-LLM 1.3.0rc20, H200, fp8 block-scaled, balanced routing; rows in
benchmarks/data/aic_h200_moe_trtllm.csv: DeepSeek-V3's shape, and those of Qwen3-235B, Qwen3-30B, Llama 4
Maverick and MiniMax-M2; Mixtral's rows, at EP 1-4, are kept but not compared) times one rank's
routed-expert work for ``num_tokens`` tokens entering the layer across the EP group: routing from logits, permute, both grouped GEMMs, activation,
unpermute and weighted sum. wideep's ``routed_experts`` term (plus the router top-k kernel) covers the same
work for the rank's own num_tokens / ep tokens, on the shipped H200 file's fused MoE curves measured on our own
H200 at each model's shape; nothing here was fitted to these rows. The op also routes,
quantises and finalizes every one of the num_tokens (about 6.3 ns per token on H200,
:func:`wideep.calibrate.aic.token_work`), which a rank behind DeepEP does not: at 16,384 tokens that is
~110 us of each row, most of the gap in the last rows. The experts each rank reads are counted on AIC's own balanced
routing pattern (:func:`wideep.calibrate.aic.balanced_topk`), as a plan counts them on its routing sample;
the last column is the same prediction with the even-spread estimate instead.
Run: python benchmarks/moe_validation.py
"""

from __future__ import annotations

import csv
from pathlib import Path

from wideep.calibrate.aic import balanced_active
from wideep.perf.kernels import moe_kernels
from wideep.perf.memory import Precision
from wideep.perf.roofline import load_calibration
from wideep.perf.step import activation_dtype, experts_time_router, memory_kernels, routed_experts
from wideep.perf.workload import CommCurve, ExpertParallel, Workload
from wideep.report.tables import markdown_table
from wideep.specs.hardware import load_gpu
from wideep.specs.model import load_model

DATA = Path(__file__).resolve().parent / "data" / "aic_h200_moe_trtllm.csv"
EPS = (8, 16, 32, 64)
TOKENS = (16, 128, 1024, 4096, 16384)
MODELS = ("deepseek-v3", "qwen3-235b-a22b", "qwen3-30b-a3b", "minimax-m2", "llama-4-maverick")


def predict_us(ep: int, num_tokens: int, calibration: str | None = None, counted: bool = True,
               model_id: str = "deepseek-v3") -> float:
    """wideep's time for one rank: routed experts + router top-k (unless the calibration's curve timed the whole
    MoE layer, which holds it, as a plan counts), at num_tokens / ep tokens per rank.

    ``counted``: the experts the rank reads counted on AIC's routing (else the even-spread estimate).
    """
    model, gpu = load_model(model_id), load_gpu("h200-sxm")
    cal = load_calibration("h200-sxm", calibration)
    zero = CommCurve.constant(0.0)
    per_rank = num_tokens / ep
    touched = ((per_rank,), (balanced_active(num_tokens, ep, model),)) if counted else ((), ())
    group = ExpertParallel(ep, model.n_experts // ep, 1.0 / ep, zero, zero, touched_tokens=touched[0],
                           touched_slots=touched[1])
    wl = Workload("prefill", 1, 1, 1, precision=Precision("fp8"))
    term, _ = routed_experts(model, gpu, cal, wl, group, per_rank)
    if experts_time_router(model, cal, "fp8", group.slots_per_gpu):
        return term.time_s * 1e6
    router_topk = [k for k in moe_kernels(model, activation_dtype(gpu, "fp8")) if k.name == "router_topk"]
    return (term.time_s + memory_kernels(router_topk, per_rank, 0, gpu, cal)[0].time_s) * 1e6


def measured(model_id: str = "deepseek-v3") -> dict[tuple[int, int], float]:
    """{(EP, tokens across the group): us} of the rows of ``model_id``'s expert shape."""
    m = load_model(model_id)
    shape = (m.hidden, m.expert_ffn, m.top_k, m.n_experts)
    with open(DATA) as fh:
        return {(int(r["moe_ep_size"]), int(r["num_tokens"])): 1e3 * float(r["latency"]) for r in csv.DictReader(fh)
                if tuple(int(r[k]) for k in ("hidden_size", "inter_size", "topk", "num_experts")) == shape}


def table() -> list[list]:
    rows = []
    for model_id in MODELS:
        meas = measured(model_id)
        for (ep, tokens), m in sorted(meas.items()):
            if ep in EPS and tokens in TOKENS:
                p, e = predict_us(ep, tokens, model_id=model_id), predict_us(ep, tokens, counted=False,
                                                                            model_id=model_id)
                rows.append([model_id, ep, tokens, round(m, 1), round(p, 1), round(100 * (p / m - 1), 1),
                             round(100 * (e / m - 1), 1)])
    return rows


def main() -> None:
    head = ["model", "EP", "tokens (all ranks)", "measured us", "wideep us", "error %", "error % (estimated experts)"]
    print(markdown_table(head, table()))


if __name__ == "__main__":
    main()
