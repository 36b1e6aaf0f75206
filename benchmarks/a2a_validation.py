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
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from wideep.routing.stats import synthetic_routing
from wideep.slots import contiguous_phy2log
from wideep.specs.model import load_model
from wideep.specs.topology import load_cluster
from wideep.traffic.a2a import a2a
from wideep.traffic.linkload import routes
from wideep.traffic.transports import PHASES, load_transport

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
    shape: tuple[int, int, int] = (7168, 8, 256)  # hidden, top-k, experts of the measured layer
    fits: str = ""  # fit rows: the [gpu.<name>] table they fit ("" the file's top level)


AIC_SYSTEMS = {"h100_sxm": "hgx-h100", "h200_sxm": "hgx-h200", "b200_sxm": "hgx-b200", "b300_sxm": "hgx-b300",
               "gb200": "gb200-nvl72", "gb300": "gb300-nvl72"}
DEEPSEEK_SHAPE, FEW_EXPERTS_SHAPE = (7168, 8, 256), (4096, 2, 8)  # the two fitted series of each fitted GPU
FITTED_GPUS = {"h200_sxm": "", "b200_sxm": "b200", "gb200": "gb200"}  # system -> the table its series fit


def aic_deepep_ll() -> list[Case]:
    """AIC DeepEP low-latency rows of six GPUs, 16 layer shapes (SGLang 0.5.12 build, EP8) and the H200's
    multi-node collection (0.5.6.post2 build, EP8..EP64, 256 and 288 experts).

    Fitted: on H200, B200 and GB200 the 0.5.12 EP8 series of DeepSeek-V3's shape (fixed cost and NVLink
    ramp) and of the shape with fewest experts (4096 x top-2 of 8: the per-expert fixed cost and the token
    issue time); the H200 0.5.6.post2 EP64 series (the scale-out tier, the only multi-node collection).
    Held out: every other shape and version, and H100 / B300 / GB300 with the H200 / B200 / GB200 constants.
    Skipped: the H100 0.5.6.post2 file (its rows are the H200's, value for value) and 288 experts at EP64
    (not a whole number of experts per GPU).
    """
    out = []
    with open(DATA / "aic_deepep_ll.csv") as fh:
        for r in csv.DictReader(fh):
            system, folder, ep = r["system"], r["folder"], 8 * int(r["node_num"])
            if system == "h100_sxm" and folder == "0.5.6.post2":
                continue
            shape = (int(r["hidden_size"]), int(r["num_topk"]), int(r["num_experts"]))
            if shape[2] % ep:  # 288 experts at EP64: not one layout per GPU, skipped
                continue
            fit = system in FITTED_GPUS and (
                (folder == "0.5.12" and shape in (DEEPSEEK_SHAPE, FEW_EXPERTS_SHAPE))
                or (folder == "0.5.6.post2" and ep == 64 and shape == DEEPSEEK_SHAPE))
            gpu = r["device"].replace("NVIDIA ", "").split(" ")[0]
            out.append(Case(f"AIC {gpu} DeepEP LL (sglang {folder})", "deepep-ll", AIC_SYSTEMS[system], ep,
                            int(r["num_token"]), float(r["dispatch_avg_t_us"]), float(r["combine_avg_t_us"]),
                            "fit" if fit else "held-out", shape=shape, fits=FITTED_GPUS.get(system, "")))
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


def routing_model(case: Case):
    """DeepSeek-V3 with the case's hidden size, top-k and experts; the kernels' own tests route each token to
    its top-k uniformly (no groups). The NCCL rows are plain all-to-alls: each token goes to every GPU once
    (top_k = EP, gpu copies)."""
    hidden, top_k, experts = case.shape
    return dataclasses.replace(load_model("deepseek-v3"), n_group=1, topk_group=1, hidden=hidden, top_k=top_k,
                               n_experts=experts)


@lru_cache(maxsize=None)
def cluster_of(system: str, ep: int):
    """One cluster object per (system, EP): its link routes are built once and reused by every case."""
    return load_cluster(system, ep)


@lru_cache(maxsize=None)
def predict(case: Case, transport_file: str | None = None, layers: int = 2) -> tuple:
    """(dispatch us, combine us, dispatch SOL us, combine SOL us, binding tier, dispatch and combine fixed
    costs us) for one case."""
    model = routing_model(case)
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


@dataclasses.dataclass(frozen=True)
class Point:
    """One fitted case seen through a flat transport: tokens, busiest link bytes B, its time at datasheet S
    (us), measured time less the wire latency (us), bytes the busiest GPU sends, the GPU's SMs."""

    tokens: int
    link_bytes: float
    sol_us: float
    measured_us: float
    sent_bytes: float
    sms: int


def blocks(experts: int, sms: int) -> int:
    """DeepEP low-latency grid: one block per expert slot, slots packed into warp groups past the SM count."""
    return math.ceil(experts / math.ceil(experts / sms))


def fit(transport: str, gpu: str = "") -> dict:
    """Per tier: a fixed cost and a ramp of achieved bandwidth by the bytes on the busiest link; for fitted
    rows of two expert counts (DeepEP low-latency) also how the fixed cost grows and the blocks' send limit.

    ``gpu``: fit the ``[gpu.<gpu>]`` table from its rows ("" the file's top level).
    - Send limit, from the series with fewest experts (smallest and largest case): dispatch the time per
      round of one token per block (``issue_us``), combine the bytes per block per second (``block_GBps``).
    - Fixed cost of a series: its smallest case at full link speed, measured - max(S, send limit) - W. With
      two expert counts, the fixed cost grows per expert slot (dispatch: a count is signalled to every expert)
      or steps up once the slots outnumber the SMs (combine: slots packed into warp groups).
    - Ramp, from the series with most experts: every larger case's S / (measured - fixed - W), clipped to
      (0, 1]. A series of one case is all bandwidth (fixed = 0).
    """
    rows = [c for c in cases() if c.transport == transport and c.role == "fit" and c.fits == gpu]
    out: dict = {"latency_us": {"dispatch": {}, "combine": {}}, "ramp": {}}
    for phase in PHASES:
        series = fit_points(rows, transport, phase, out)
        nvlink = sorted((k for k in series if k[0] == "nvlink"), key=lambda k: k[1])
        few, many = (nvlink[0], nvlink[-1]) if len({k[1] for k in nvlink}) > 1 else (None, None)
        send = send_limit(phase, few, series[few], out) if few else (lambda experts, p: 0.0)
        fixed = {k: max(0.0, pts[0].measured_us - max(pts[0].sol_us, send(k[1], pts[0]))) if len(pts) > 1 else 0.0
                 for k, pts in series.items()}
        count = (lambda k: k[1]) if phase == "dispatch" else (lambda k: float(k[1] > series[k][0].sms))  # noqa: E731
        growth = (fixed[many] - fixed[few]) / (count(many) - count(few)) if few else 0.0
        if few:
            out["per_expert_us" if phase == "dispatch" else "packed_us"] = {phase: round(growth, 4)}
        for key, pts in series.items():
            if few and key[0] == "nvlink" and key != many:
                continue  # the NVLink ramp and fixed cost come from the series with most experts
            f = fixed[key]
            out["latency_us"][phase][key[0]] = round(f - growth * count(key), 2)
            ramp = [(p.link_bytes, min(1.0, max(0.02, p.sol_us / (p.measured_us - f))) if p.measured_us > f else 1.0)
                    for p in (pts[1:] if len(pts) > 1 else pts)]
            out["ramp"].setdefault(key[0], {})[phase] = ramp
    return out


def fit_points(rows: list[Case], transport: str, phase: str, out: dict) -> dict[tuple, list[Point]]:
    """The fitted rows of one phase as Points by series (tier, experts, EP, system), sorted by tokens; records
    the scale-out share of the series that measured the scale-out tier in ``out``."""
    zero, idx = flat_transport(transport), PHASES.index(phase)
    series: dict[tuple, list] = {}
    for c in rows:
        pred = predict(c, zero)
        tier = pred[4]
        series.setdefault((tier, c.shape[2], c.ep, c.system), []).append(Point(
            c.tokens, pred[2 + idx] * 1e-6 * link_bw_Bps(c.system, c.ep, tier), pred[2 + idx],
            (c.dispatch_us, c.combine_us)[idx] - pred[5 + idx], send_bytes(c, phase),
            cluster_of(c.system, c.ep).gpu.sm_count))
        if tier == "scale_out":
            pairs = routes(cluster_of(c.system, c.ep), c.ep).first_hop_tier
            out["scale_out_fixed_share"] = float((pairs == "scale_out").mean())
    return {k: sorted(v, key=lambda p: p.tokens) for k, v in series.items()}


def send_limit(phase: str, few: tuple, pts: list[Point], out: dict):
    """Fit the blocks' send limit on the series with fewest experts; returns (experts, point) -> us."""
    first, last = pts[0], pts[-1]
    if phase == "dispatch":
        rounds = lambda experts, p: math.ceil(p.tokens / blocks(experts, p.sms))  # noqa: E731
        issue_us = (last.measured_us - first.measured_us) / (rounds(few[1], last) - rounds(few[1], first))
        out["issue_us"] = {phase: round(issue_us, 3)}
        return lambda experts, p: issue_us * rounds(experts, p)
    bytes_per_us = (last.sent_bytes - first.sent_bytes) / (last.measured_us - first.measured_us)
    gbps = bytes_per_us / blocks(few[1], last.sms) / 1e3
    out["block_GBps"] = {phase: round(gbps, 2)}
    return lambda experts, p: p.sent_bytes / (blocks(experts, p.sms) * gbps * 1e3)


def send_bytes(case: Case, phase: str) -> float:
    """Bytes one GPU sends in ``phase`` of a case of uniform routing: tokens x top-k x message bytes."""
    from wideep.traffic.a2a import message_bytes

    model = routing_model(case)
    msg = message_bytes(model, load_transport(case.transport), case.dispatch_dtype, case.combine_dtype)
    return case.tokens * model.top_k * msg[phase]


def fit_toml(fitted: dict, gpu: str = "") -> str:
    """The measured tables of a fit, as TOML text to paste into the transport file (``gpu``: under
    ``[gpu.<gpu>]``)."""
    at = f"gpu.{gpu}." if gpu else ""
    lines = [f"scale_out_fixed_share = {fitted['scale_out_fixed_share']:.3f}"] if "scale_out_fixed_share" in fitted else []
    lines.append(f"[{at}efficiency]  # beyond the ramps: the smaller of the two phases' largest measured sizes")
    lines += [f"{tier} = {min(pts[-1][1] for pts in phases.values()):.3f}" for tier, phases in fitted["ramp"].items()]
    for key in ("per_expert_us", "packed_us", "issue_us", "block_GBps"):
        if key in fitted:
            lines.append(f"[{at}{key}]")
            lines += [f"{phase} = {us}" for phase, us in fitted[key].items()]
    for phase, tiers in fitted["latency_us"].items():
        lines.append(f"[{at}latency_us.{phase}]")
        lines += [f"{tier} = {us}" for tier, us in tiers.items()]
    for tier, phases in fitted["ramp"].items():
        for phase, pts in phases.items():
            lines.append(f"[{at}ramp.{phase}.{tier}]")
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
    ap.add_argument("--gpu", default="", help="with --fit: the [gpu.<name>] table to fit (default: the top level)")
    ap.add_argument("--summary", action="store_true", help="one row per series: mean and worst error")
    args = ap.parse_args()
    if args.fit:
        print(fit_toml(fit(args.fit, args.gpu), args.gpu))
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
