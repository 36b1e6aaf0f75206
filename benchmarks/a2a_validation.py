"""All-to-all: measured dispatch/combine times against wideep's prediction, fitted and held-out rows apart.

Each transport's constants (fixed cost per link tier and the bandwidth ramp) come from ONE measured series
of ONE kernel version (the rows marked ``fit``); every other row is a check that can fail. Run

    python benchmarks/a2a_validation.py            # the validation table (markdown)
    python benchmarks/a2a_validation.py --fit ID   # the [latency_us] and [ramp] a transport file would get

Sources (docs/sources.md, "All-to-all measurements"):
- AIC: NVIDIA AIConfigurator silicon database (PyPI aiconfigurator-core 0.12.0, Apache-2.0), rows copied to
  benchmarks/data/ (see benchmarks/data/README.md for the files they came from).
- DeepEP README (deepseek-ai/DeepEP): H800 + CX7 400G, 128 tokens per rank; February 2025 release
  (pure RDMA) and the 2025-06-05 re-measure with NVLink inside a node (commit de8cfca, PR #173).
- TensorRT-LLM tech blog 18 (one-sided all-to-all over NVLink, GB200 NVL72, BF16 payloads).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np

from wideep.routing.stats import synthetic_routing
from wideep.slots import contiguous_phy2log
from wideep.specs.model import load_model
from wideep.specs.topology import load_cluster
from wideep.traffic.a2a import a2a
from wideep.traffic.linkload import routes
from wideep.traffic.transports import load_transport

DATA = Path(__file__).resolve().parent / "data"
NCCL_HIDDEN = 1024  # elements per "token" of the even all-to-all that stands for nccl-tests' buffers


@dataclasses.dataclass(frozen=True)
class Case:
    """One measured all-to-all: setup, measured times (us) and whether it was used to fit."""

    source: str
    transport: str
    system: str
    ep: int
    tokens: int  # per rank
    dispatch_us: float
    combine_us: float
    role: str = "held-out"  # or "fit"
    dispatch_dtype: str = "fp8"
    combine_dtype: str = "bf16"


def aic_deepep_ll() -> list[Case]:
    """AIC H200 DeepEP low-latency rows; the 0.5.6.post2 collection (DeepEP with NVLink in a node) fits
    deepep-ll: its EP8 series the NVLink tier, its EP64 series the scale-out tier; EP16/EP32 and the
    0.5.12 collection are held out."""
    out = []
    with open(DATA / "aic_h200_deepep_ll.csv") as fh:
        for r in csv.DictReader(fh):
            ep, folder = 8 * int(r["node_num"]), r["folder"]
            fit = folder == "0.5.6.post2" and ep in (8, 64)
            out.append(Case(f"AIC H200 DeepEP LL (sglang {folder})", "deepep-ll", "hgx-h200", ep, int(r["num_token"]),
                            float(r["dispatch_avg_t_us"]), float(r["combine_avg_t_us"]), "fit" if fit else "held-out"))
    return out


# DeepEP README, H800 + CX7, 128 tokens per rank: (dispatch us, combine us).
DEEPEP_JUNE = {8: (77, 114), 16: (118, 195), 32: (155, 273), 64: (173, 314)}
DEEPEP_FEB = {8: (163, 318), 16: (173, 329), 32: (182, 350), 64: (186, 353), 128: (192, 369), 256: (194, 360)}
# TensorRT-LLM blog 18, GB200 NVL72 one-sided NVLink all-to-all, BF16 both ways: {(EP, batch): (dispatch, combine)}.
TRTLLM_ONESIDED = {(8, 1): (18.9, 31.0), (8, 32): (18.2, 32.7), (8, 128): (31.7, 38.1), (8, 256): (50.8, 53.0),
                   (8, 1024): (166.3, 175.6), (8, 2048): (311.8, 322.6), (16, 1): (18.8, 30.8),
                   (16, 128): (34.6, 39.9), (16, 2048): (343.3, 348.4), (32, 1): (19.8, 31.4),
                   (32, 128): (37.8, 41.1), (32, 256): (61.5, 59.7), (32, 2048): (373.7, 369.5),
                   (64, 1): (27.8, 32.6), (64, 128): (41.6, 44.5), (64, 2048): (399.2, 372.1)}


def published() -> list[Case]:
    cases = [Case("DeepEP README 2025-06 (H800)", "deepep-ll", "dgx-h800", ep, 128, d, c)
             for ep, (d, c) in DEEPEP_JUNE.items()]
    cases += [Case("DeepEP README 2025-02 (H800, pure RDMA)", "deepep-ll-rdma", "dgx-h800", ep, 128, d, c,
                   "fit" if ep == 128 else "held-out") for ep, (d, c) in DEEPEP_FEB.items()]
    cases += [Case("TensorRT-LLM blog 18 (GB200)", "nvlink-onesided", "gb200-nvl72", ep, b, d, c,
                   "fit" if ep == 8 else "held-out", "bf16", "bf16") for (ep, b), (d, c) in TRTLLM_ONESIDED.items()]
    return cases


def aic_nccl() -> list[Case]:
    """AIC H200 nccl-tests alltoall (NCCL 2.29.2 file, half): 8 GPUs fits nccl; 2 and 4 GPUs are held out.

    ``message_size`` counts half-precision elements each rank sends in total, split evenly over the ranks;
    expressed here as tokens of NCCL_HIDDEN elements, one copy of each token to every GPU."""
    out = []
    with open(DATA / "aic_h200_nccl_alltoall_2.29.2.csv") as fh:
        for r in csv.DictReader(fh):
            n, elems = int(r["num_gpus"]), int(r["message_size"])
            if elems % (NCCL_HIDDEN * n):
                continue
            us = 1e3 * float(r["latency"])
            out.append(Case("AIC H200 nccl-tests alltoall (NCCL 2.29.2)", "nccl", "hgx-h200", n,
                            elems // (NCCL_HIDDEN * n), us, us, "fit" if n == 8 else "held-out", "bf16", "bf16"))
    return out


def aic_onesided() -> list[Case]:
    """AIC GB200 one-sided NVLink all-to-all (TensorRT-LLM 1.2.0rc6 kernels): NVFP4 dispatch, BF16 combine
    taken for the combine rows (the table names no combine dtype); EP8..EP32, all held out."""
    rows: dict[tuple[int, int], dict] = {}
    with open(DATA / "aic_gb200_onesided_alltoall.csv") as fh:
        for r in csv.DictReader(fh):
            ep, tokens = int(r["moe_ep_size"]), int(r["num_tokens"])
            if ep >= 8 and tokens in (1, 32, 128, 512, 1024, 4096):
                rows.setdefault((ep, tokens), {})[r["op_name"]] = 1e3 * float(r["latency"])
    return [Case("AIC GB200 one-sided (TensorRT-LLM 1.2.0rc6)", "nvlink-onesided", "gb200-nvl72", ep, t,
                 v["alltoall_dispatch"], v["alltoall_combine"], "held-out", "nvfp4", "bf16")
            for (ep, t), v in sorted(rows.items()) if len(v) == 2]


def cases() -> list[Case]:
    return aic_deepep_ll() + published() + aic_nccl() + aic_onesided()


def routing_model(transport: str):
    """DeepSeek-V3 shapes; the kernels' own tests route each token to top-8 of 256 uniformly (no groups).
    The NCCL rows are plain all-to-alls: each token goes to every GPU once (top_k = EP, gpu copies)."""
    del transport
    return dataclasses.replace(load_model("deepseek-v3"), n_group=1, topk_group=1)


@lru_cache(maxsize=None)
def cluster_of(system: str, ep: int):
    """One cluster object per (system, EP): its link routes are built once and reused by every case."""
    return load_cluster(system, ep)


@lru_cache(maxsize=None)
def predict(case: Case, transport_file: str | None = None, layers: int = 2) -> tuple:
    """(dispatch us, combine us, dispatch SOL us, combine SOL us, binding tier, dispatch and combine fixed
    costs us) for one case."""
    model = routing_model(case.transport)
    if case.transport == "nccl":  # an even all-to-all: one copy of each token to every GPU
        model = dataclasses.replace(model, hidden=NCCL_HIDDEN, n_experts=case.ep * 8, top_k=case.ep, layers=layers,
                                    moe_layers=layers, dense_layers=0, moe_layer_ids=())
        stats = even_routing(model, case.ep, max(case.tokens, 64), layers)
    else:
        stats = synthetic_routing(model, "uniform", case.ep * max(case.tokens, 64), seed=0, layers=layers)
    phy2log = contiguous_phy2log(layers, model.n_experts, model.n_experts)
    r = a2a(model, cluster_of(case.system, case.ep), phy2log, stats, case.ep, case.tokens,
            transport_file or case.transport, case.dispatch_dtype, case.combine_dtype)
    return (r.dispatch_s * 1e6, r.combine_s * 1e6, r.dispatch_sol_s * 1e6, r.combine_sol_s * 1e6, r.binding_tier,
            r.latency_s["dispatch"] * 1e6, r.latency_s["combine"] * 1e6)


def even_routing(model, ep: int, tokens_per_gpu: int, layers: int):
    """Every token selects one expert on each GPU (a plain all-to-all of equal blocks)."""
    from wideep.routing.stats import stats_from_arrays

    per_gpu = model.n_experts // ep
    ids = np.arange(ep)[None, None, :] * per_gpu + np.zeros((layers, ep * tokens_per_gpu, 1), dtype=np.int64)
    return stats_from_arrays(ids.astype(np.int32), None, model, "even all-to-all")


def fit(transport: str) -> dict:
    """Per tier: a fixed cost and a ramp of achieved bandwidth by the bytes on the busiest link.

    For each fitted case the traffic model gives the busiest link's bytes B, its time at datasheet bandwidth
    S and the wire latency W of the graph. The smallest case sets the fixed cost, taking its link at full
    speed: fixed = measured - S - W; every larger case then gives the ramp's efficiency at its B as
    S / (measured - fixed - W), clipped to (0, 1]. A series of one case is all bandwidth (fixed = 0).
    """
    rows = [c for c in cases() if c.transport == transport and c.role == "fit"]
    zero = flat_transport(transport)
    out: dict = {"latency_us": {"dispatch": {}, "combine": {}}, "ramp": {}}
    for phase, idx in (("dispatch", 0), ("combine", 1)):
        by_tier: dict[str, list] = {}
        for c in rows:
            pred = predict(c, zero)
            sol_us, tier = pred[2 + idx], pred[4]
            bw = link_bw_Bps(c.system, c.ep, tier)
            measured = c.dispatch_us if idx == 0 else c.combine_us
            by_tier.setdefault(tier, []).append((c.tokens, sol_us * 1e-6 * bw, sol_us, measured - pred[5 + idx]))
            if tier == "scale_out":  # the share of GPU pairs across scale-out where its fixed cost was measured
                pairs = routes(cluster_of(c.system, c.ep), c.ep).first_hop_tier
                out["scale_out_fixed_share"] = float((pairs == "scale_out").mean())
        for tier, pts in by_tier.items():
            pts.sort()
            fixed = max(0.0, pts[0][3] - pts[0][2]) if len(pts) > 1 else 0.0  # one case: all of it is bandwidth
            out["latency_us"][phase][tier] = round(fixed, 2)
            ramp = [(b, min(1.0, max(0.02, s / (t - fixed)))) if t > fixed else (b, 1.0)
                    for _, b, s, t in (pts[1:] if len(pts) > 1 else pts)]
            out["ramp"].setdefault(tier, {})[phase] = ramp
    return out


def fit_toml(fitted: dict) -> str:
    """The [latency_us] and [ramp] tables of a fit, as TOML text to paste into the transport file."""
    lines = [f"scale_out_fixed_share = {fitted['scale_out_fixed_share']:.3f}"] if "scale_out_fixed_share" in fitted else []
    for phase, tiers in fitted["latency_us"].items():
        lines.append(f"[latency_us.{phase}]")
        lines += [f"{tier} = {us}" for tier, us in tiers.items()]
    for tier, phases in fitted["ramp"].items():
        for phase, pts in phases.items():
            lines.append(f"[ramp.{phase}.{tier}]")
            lines.append("bytes = [" + ", ".join(f"{b:.0f}" for b, _ in pts) + "]")
            lines.append("efficiency = [" + ", ".join(f"{e:.3f}" for _, e in pts) + "]")
    return "\n".join(lines)


def flat_transport(transport: str) -> str:
    """A copy of the transport file with no fixed cost and full efficiency (to read SOL and bytes)."""
    import tomllib

    src = load_transport(transport)
    path = Path("/tmp") / f"wideep-flat-{transport}.toml"
    header = tomllib.loads(Path(str(resolve_transport(transport))).read_text())
    keep = {k: header[k] for k in ("name", "copies", "forward", "scope", "dispatch_header_bytes", "combine_header_bytes")}
    lines = [f'{k} = {v!r}'.replace("'", '"') for k, v in keep.items()]
    lines += ["[efficiency]", "nvlink = 1.0", "scale_out = 1.0", "[latency_us]", "dispatch = 0.0", "combine = 0.0"]
    path.write_text("\n".join(lines) + "\n")
    assert src.id == transport
    return str(path)


def resolve_transport(transport: str):
    from wideep.core.catalog import resolve

    return resolve("transports", transport)


def link_bw_Bps(system: str, ep: int, tier: str) -> float:
    cluster = cluster_of(system, ep)
    bws = cluster.edge_bw_Bps[cluster.edge_tier == tier]
    return float(bws.min())


def table() -> list[list]:
    """[source, transport, EP, tokens, role, measured d, predicted d, err %, measured c, predicted c, err %]."""
    out = []
    for c in cases():
        d, cb, *_ = predict(c)
        out.append([c.source, c.transport, c.ep, c.tokens, c.role, c.dispatch_us, round(d, 1),
                    round(100 * (d / c.dispatch_us - 1), 1), c.combine_us, round(cb, 1),
                    round(100 * (cb / c.combine_us - 1), 1)])
    return out


def summary() -> list[list]:
    """Per (source, transport, EP): role, cases, mean and worst |error| % over both phases."""
    groups: dict[tuple, list] = {}
    for r in table():
        groups.setdefault((r[0], r[1], r[2], r[4]), []).extend([abs(r[7]), abs(r[10])])
    return [[src, tr, ep, role, len(errs) // 2, round(sum(errs) / len(errs), 1), max(errs)]
            for (src, tr, ep, role), errs in groups.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", help="print the fitted constants of this transport id")
    ap.add_argument("--summary", action="store_true", help="one row per series: mean and worst error")
    args = ap.parse_args()
    if args.fit:
        print(fit_toml(fit(args.fit)))
        return
    if args.summary:
        head = ["source", "transport", "EP", "role", "cases", "mean abs err %", "worst abs err %"]
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in summary():
            print("| " + " | ".join(str(v) for v in r) + " |")
        return
    head = ["source", "transport", "EP", "tokens/rank", "role", "dispatch us", "pred", "err %", "combine us", "pred", "err %"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in table():
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
