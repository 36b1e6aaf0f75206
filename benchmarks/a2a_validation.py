"""All-to-all: measured dispatch/combine times against wideep's prediction, fitted and held-out rows apart.

Each transport's constants (fixed cost per link tier, bandwidth ramp, and for DeepEP how the kernels' blocks
limit the send side and how the fixed cost grows) come from a few series of ONE kernel build per GPU and
tier (the rows marked ``fit``); every other row is a check that can fail. Run

    python benchmarks/a2a_validation.py                        # the validation table (markdown)
    python benchmarks/a2a_validation.py --summary              # one row per source and EP
    python benchmarks/a2a_validation.py --fit ID [--gpu NAME]  # the tables a transport file (or its [gpu.NAME]) gets

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
import hashlib
import math
import re
import tempfile
from functools import lru_cache
from typing import NamedTuple
from pathlib import Path

import numpy as np

from wideep.core.catalog import resolve
from wideep.report.tables import markdown_table
from wideep.routing.stats import synthetic_routing
from wideep.slots import contiguous_phy2log
from wideep.specs.model import load_model
from wideep.specs.topology import TIERS, load_cluster
from wideep.traffic.a2a import a2a, reduced_bytes
from wideep.traffic.linkload import routes
from wideep.traffic.transports import KERNEL_TABLES, PHASES, expert_blocks, load_transport

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
    sms: int = 0  # SMs the kernels ran on when not the transport file's


AIC_SYSTEMS = {"H100": "hgx-h100", "H200": "hgx-h200", "B200": "hgx-b200", "B300": "hgx-b300", "GB200": "gb200-nvl72",
               "GB300": "gb300-nvl72"}  # by the device a row names (AIC's h200_sxm normal 0.5.6.post2 file ran on H100)
DEEPSEEK_SHAPE, FEW_EXPERTS_SHAPE = (7168, 8, 256), (4096, 2, 8)  # the two fitted series of each fitted GPU
FITTED_GPUS = {"h200_sxm": "", "b200_sxm": "b200", "gb200": "gb200"}  # system -> the table its series fit


def aic_gpu(row: dict) -> str:
    """The GPU an AIC row names: "NVIDIA H200 ..." -> "H200"."""
    return row["device"].replace("NVIDIA ", "").split(" ")[0]


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
            gpu = aic_gpu(r)
            out.append(Case(f"AIC {gpu} DeepEP LL (sglang {folder})", "deepep-ll", AIC_SYSTEMS[gpu], ep,
                            int(r["num_token"]), float(r["dispatch_avg_t_us"]), float(r["combine_avg_t_us"]),
                            "fit" if fit else "held-out", shape=shape, fits=FITTED_GPUS.get(system, "")))
    return out


NORMAL_SMS = 20  # SMs SGLang gives DeepEP's normal kernels (the transport file's sms); the 4-SM series fit the SM rate
SMALL_HIDDEN_SHAPE = (2048, 8, 256)  # normal kernels' second fitted series: DeepSeek-V3's routing, 2/7 its bytes
REDUCE_SHAPE = (4096, 2, 8)  # their third, at 4 SMs only: 2 copies per token against 5.3 (the combine's reduce rate)


def aic_deepep_normal() -> list[Case]:
    """AIC DeepEP normal-kernel rows (prefill) of six GPUs, 16 layer shapes, up to 16,384 tokens per rank, at
    SGLang's 20 SMs and (fitting the rate per SM) at 4 SMs; EP8 from the 0.5.12 build, EP16..EP64 (H200, its
    notify kernel added) from 0.5.6.post2.

    Fitted: on H200, B200 and GB200 the EP8 series of DeepSeek-V3's shape and of 2048 x top-8 of 256 at 4 SMs
    (what a token and a byte cost each SM) and at 20 SMs (fixed cost, its growth with the hidden size, and the
    NVLink ramp), and of 4096 x top-2 of 8 at 4 SMs (the rate of the combine's reduced outputs); the H200 EP32
    series of the 0.5.6.post2 build at 20 SMs (the scale-out tier) and at 4 (the relaying kernels' rate per
    block). Held out: every other shape at 20 SMs, H100 / B300 / GB300 on the H200 /
    B200 / GB200 constants, and EP16 and EP64 at 20 and at 4 SMs. Left out: EP8 at 4 SMs beyond the fitted
    shapes (not an operating point; README "Validation" says how they fare).
    """
    out = []
    with open(DATA / "aic_deepep_normal.csv") as fh:
        for r in csv.DictReader(fh):
            system, folder, ep, sms = r["system"], r["folder"], 8 * int(r["node_num"]), int(r["dispatch_sms"])
            shape = (int(r["hidden_size"]), int(r["num_topk"]), int(r["num_experts"]))
            if (system == "h100_sxm" and folder == "0.5.6.post2") or shape[2] % ep:
                continue
            fit = system in FITTED_GPUS and (
                (folder == "0.5.12" and shape in (DEEPSEEK_SHAPE, SMALL_HIDDEN_SHAPE))
                or (folder == "0.5.12" and shape == REDUCE_SHAPE and sms != NORMAL_SMS)
                or (folder == "0.5.6.post2" and ep == 32 and shape == DEEPSEEK_SHAPE))
            if sms != NORMAL_SMS and not fit and ep == 8:
                continue
            gpu = aic_gpu(r)
            times = [float(r[f"{p}_transmit_us"]) + float(r[f"{p}_notify_us"]) for p in PHASES]
            on = "" if sms == NORMAL_SMS else f" on {sms} SMs"
            out.append(Case(f"AIC {gpu} DeepEP normal{on} (sglang {folder})", "deepep-normal", AIC_SYSTEMS[gpu], ep,
                            int(r["num_token"]), *times, "fit" if fit else "held-out", shape=shape,
                            fits=FITTED_GPUS.get(system, ""), sms=0 if sms == NORMAL_SMS else sms))
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
    cases += [Case("TensorRT-LLM blog 18 (GB200)", "nvlink-onesided", "gb200-nvl72", ep, b, d, c, "held-out", "bf16",
                   "bf16") for (ep, b), (d, c) in TRTLLM_ONESIDED.items()]
    return cases


# GPU -> (table, GPU counts of its fitted series): the most GPUs (ramp) and PEER_GPUS (one peer: the pair's stream).
PEER_GPUS = 2
NCCL = ("nccl", "nccl-allgather")  # nccl-tests' even buffers, fitted on the same series
NCCL_FITS = {"H200": ("", (8, PEER_GPUS)), "B200": ("b200", (8, PEER_GPUS)), "GB200": ("gb200", (4, PEER_GPUS))}


def aic_nccl() -> list[Case]:
    """AIC nccl-tests alltoall (NCCL 2.29.2 files, half) of six GPUs: the 8- and 2-GPU series fit nccl's top
    level (H200) and [gpu.b200], GB200's 4- and 2-GPU series (its table has no 8-GPU one) [gpu.gb200]; every
    other series (4 GPUs of H200 and B200), and H100 / B300 / GB300 on the H200 / B200 / GB200 constants, is
    held out.

    ``message_size`` counts half-precision elements each rank sends in total, split evenly over the ranks;
    expressed here as tokens of NCCL_HIDDEN elements, one copy of each token to every GPU."""
    out = []
    with open(DATA / "aic_nccl_alltoall_2.29.2.csv") as fh:
        for r in csv.DictReader(fh):
            n, elems = int(r["num_gpus"]), int(r["message_size"])
            if elems % (NCCL_HIDDEN * n):
                continue
            gpu = aic_gpu(r)
            table, fitted_gpus = NCCL_FITS.get(gpu, ("", ()))
            us = 1e3 * float(r["latency"])
            out.append(Case(f"AIC {gpu} nccl-tests alltoall (NCCL 2.29.2)", "nccl", AIC_SYSTEMS[gpu], n,
                            elems // (NCCL_HIDDEN * n), us, us, "fit" if n in fitted_gpus else "held-out", "bf16",
                            "bf16", fits=table))
    return out


def aic_nccl_allgather() -> list[Case]:
    """AIC nccl-tests all_gather (dispatch) and reduce_scatter (combine) at equal sizes, NCCL 2.29.2, half, of
    six GPUs: fitted and held out as :func:`aic_nccl` (the same GPU counts fit the same tables). ``message_size``
    counts the elements of the whole buffer, 1/num_gpus of it each rank's: tokens of NCCL_HIDDEN elements per
    rank, each to every GPU."""
    times: dict[tuple, dict] = {}
    with open(DATA / "aic_nccl_allgather_2.29.2.csv") as fh:
        for r in csv.DictReader(fh):
            n, elems = int(r["num_gpus"]), int(r["message_size"])
            if elems % (NCCL_HIDDEN * n) == 0:
                gpu = aic_gpu(r)
                times.setdefault((gpu, n, elems // (NCCL_HIDDEN * n)), {})[r["op_name"]] = 1e3 * float(r["latency"])
    out = []
    for (gpu, n, tokens), t in sorted(times.items()):
        if len(t) == 2:
            table, fitted_gpus = NCCL_FITS.get(gpu, ("", ()))
            out.append(Case(f"AIC {gpu} nccl-tests all_gather / reduce_scatter (NCCL 2.29.2)", "nccl-allgather",
                            AIC_SYSTEMS[gpu], n, tokens, t["all_gather"], t["reduce_scatter"],
                            "fit" if n in fitted_gpus else "held-out", "bf16", "bf16", fits=table))
    return out


#: The AIC one-sided series fitted (its smallest and largest group: the fixed cost and its growth per
#: doubling, the ramp from the largest) and the tokens per rank read from each series.
ONESIDED_FIT_EPS, ONESIDED_TOKENS = (2, 32), (1, 8, 32, 128, 256, 512, 1024, 2048, 4096)


def aic_onesided() -> list[Case]:
    """AIC GB200 one-sided NVLink all-to-all (TensorRT-LLM 1.2.0rc6 kernels): NVFP4 dispatch, BF16 combine
    taken for the combine rows (the table names no combine dtype); EP2 and EP32 fit, EP4..EP16 held out."""
    rows: dict[tuple[int, int], dict] = {}
    with open(DATA / "aic_gb200_onesided_alltoall.csv") as fh:
        for r in csv.DictReader(fh):
            ep, tokens = int(r["moe_ep_size"]), int(r["num_tokens"])
            if tokens in ONESIDED_TOKENS:
                rows.setdefault((ep, tokens), {})[r["op_name"]] = 1e3 * float(r["latency"])
    return [Case("AIC GB200 one-sided (TensorRT-LLM 1.2.0rc6)", "nvlink-onesided", "gb200-nvl72", ep, t,
                 v["alltoall_dispatch"], v["alltoall_combine"], "fit" if ep in ONESIDED_FIT_EPS else "held-out",
                 "nvfp4", "bf16")
            for (ep, t), v in sorted(rows.items()) if len(v) == 2]


def ends_only(case: Case) -> bool:
    """A fit row of a series of which only the smallest and largest case are fitted: the 4-SM series (the
    blocks' send limit) and NCCL's 2-GPU series (the fixed cost per peer and the pair's stream)."""
    return case.role == "fit" and (bool(case.sms) or (case.transport in NCCL and case.ep == PEER_GPUS))


def cases() -> list[Case]:
    return aic_deepep_ll() + aic_deepep_normal() + published() + aic_nccl() + aic_nccl_allgather() + aic_onesided()


def routing_model(shape: tuple):
    """DeepSeek-V3 with a case's hidden size, top-k and experts (``shape``); the kernels' own tests route each
    token to its top-k uniformly (no groups)."""
    hidden, top_k, experts = shape
    return dataclasses.replace(load_model("deepseek-v3"), n_group=1, topk_group=1, hidden=hidden, top_k=top_k,
                               n_experts=experts)


@lru_cache(maxsize=None)
def cluster_of(system: str, ep: int):
    """One cluster object per (system, EP): its link routes are built once and reused by every case."""
    return load_cluster(system, ep)


#: TensorRT-LLM's one-sided kernels: their series ran AIConfigurator's balanced pattern (:func:`balanced_routing`),
#: and their fixed cost grows with each doubling of the group (every rank waits for all ranks' flags), fitted
#: between two group sizes; other transports' grows per GPU sent to, with a pair's stream rate (NCCL)
ONESIDED = ("nvlink-onesided",)


def routing_key(case: Case) -> tuple:
    """What a case's routing depends on: (layer shape, EP, tokens per rank sampled, pattern: ``even`` (NCCL),
    ``balanced`` (:data:`ONESIDED`) or ``uniform``)."""
    pattern = "even" if case.transport in NCCL else "balanced" if case.transport in ONESIDED else "uniform"
    return case.shape, case.ep, max(case.tokens, 64), pattern


@lru_cache(maxsize=4)
def case_routing(shape: tuple, ep: int, tokens: int, pattern: str, layers: int):
    """(model, routing statistics) of :func:`routing_key`: the kernels' test routing (uniform top-k, or the
    balanced pattern), or for NCCL an even all-to-all (one copy of each token to every GPU); the cases of one
    key share it (predict them in :func:`routing_key` order, :func:`predict_all`)."""
    model = routing_model(shape)
    if pattern == "even":
        model = dataclasses.replace(model, hidden=NCCL_HIDDEN, n_experts=ep * 8, top_k=ep, layers=layers,
                                    moe_layers=layers, dense_layers=0, moe_layer_ids=())
        return model, even_routing(model, ep, tokens, layers)
    if pattern == "balanced":
        model = dataclasses.replace(model, layers=layers, moe_layers=layers, dense_layers=0, moe_layer_ids=())
        return model, balanced_routing(model, ep, tokens, layers)
    return model, synthetic_routing(model, "uniform", ep * tokens, seed=0, layers=layers)


def predict_all(cases: list[Case]) -> list[tuple]:
    """:func:`predict` of every case, computed in :func:`routing_key` order (each routing drawn once)."""
    for c in sorted(cases, key=routing_key):
        predict(c)
    return [predict(c) for c in cases]


@lru_cache(maxsize=None)
def predict(case: Case, transport_file: str | None = None, layers: int = 2) -> tuple:
    """(dispatch us, combine us, dispatch SOL us, combine SOL us, binding tier, dispatch and combine fixed
    costs us, {phase: bytes the busiest GPU's kernels move}, {phase: bytes of the busiest NVLink pair},
    {phase: of the bytes moved, the reduced outputs}) for one case."""
    model, stats = case_routing(*routing_key(case), layers)
    phy2log = contiguous_phy2log(layers, model.n_experts, model.n_experts)
    transport = transport_file or case.transport
    if case.sms:
        transport = with_sms(transport, case.sms)
    r = a2a(model, cluster_of(case.system, case.ep), phy2log, stats, case.ep, case.tokens, transport,
            case.dispatch_dtype, case.combine_dtype)
    return (r.dispatch_s * 1e6, r.combine_s * 1e6, r.dispatch_sol_s * 1e6, r.combine_sol_s * 1e6, r.binding_tier,
            r.latency_s["dispatch"] * 1e6, r.latency_s["combine"] * 1e6, r.sent_bytes, r.peer_bytes,
            {p: reduced_bytes(p, case.tokens, r.message_bytes) for p in PHASES})


def with_sms(transport: str, sms: int) -> str:
    """A copy of a transport file (catalog id or path) whose kernels run on ``sms`` SMs."""
    src = Path(str(resolve("transports", transport)))
    text = src.read_text()
    text = (re.sub(r"^sms = \d+", f"sms = {sms}", text, count=1, flags=re.M) if re.search(r"^sms = ", text, re.M)
            else f"sms = {sms}\n" + text)
    return temp_transport(src.stem, text)


def temp_transport(stem: str, text: str) -> str:
    """Write a transport file's ``text`` to a temporary path named ``stem``.toml, one folder per content (the
    loader caches by path, so different contents never share one)."""
    path = Path(tempfile.gettempdir()) / f"wideep-{hashlib.sha1(text.encode()).hexdigest()[:12]}" / f"{stem}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return str(path)


def even_routing(model, ep: int, tokens_per_gpu: int, layers: int):
    """Every token selects one expert on each GPU (a plain all-to-all of equal blocks)."""
    from wideep.routing.stats import stats_from_arrays

    per_gpu = model.n_experts // ep
    ids = np.arange(ep)[None, None, :] * per_gpu + np.zeros((layers, ep * tokens_per_gpu, 1), dtype=np.int64)
    return stats_from_arrays(ids.astype(np.int32), None, model, "even all-to-all")


def balanced_routing(model, ep: int, tokens_per_gpu: int, layers: int):
    """AIConfigurator's balanced pattern for TensorRT-LLM's all-to-all (collector/slurm_comm_collector/
    collect_trtllm_alltoall.py, ``generate_balanced_expert_ids``), the same on every rank: with EP >= top-k
    the ranks form EP / top-k groups of top-k, token i goes to one expert on each rank of group i mod groups;
    with fewer ranks than top-k, selection j goes to rank j mod EP. So every token reaches min(EP, top-k)
    GPUs, the copies TensorRT-LLM's blog 18 counts; the expert within a rank rotates with the token."""
    from wideep.routing.stats import stats_from_arrays

    k, per_rank = model.top_k, model.n_experts // ep
    if ep >= k and ep % k:
        raise ValueError(f"the balanced pattern needs EP a multiple of top-k when EP >= top-k (EP{ep}, top-{k})")
    i, j = np.arange(tokens_per_gpu)[:, None], np.arange(k)[None, :]
    if ep >= k:
        groups = ep // k
        ids = ((i % groups) * k + j) * per_rank + (i // groups) % per_rank
    else:
        ids = (j % ep) * per_rank + (i + j // ep) % per_rank
    ids = np.sort(np.tile(ids, (ep, 1)), axis=1)
    return stats_from_arrays(np.broadcast_to(ids, (layers, *ids.shape)).astype(np.int32), None, model,
                             "balanced all-to-all")


@dataclasses.dataclass(frozen=True)
class Point:
    """One fitted case seen through a flat transport: tokens, busiest link bytes B, its time at datasheet S
    (us), measured time less the wire latency (us), bytes the busiest GPU sends, the kernel's send blocks,
    bytes of the busiest NVLink pair, of the bytes sent the reduced outputs."""

    tokens: int
    link_bytes: float
    sol_us: float
    measured_us: float
    sent_bytes: float
    blocks: int
    peer_bytes: float
    reduced_bytes: float


# How the blocks bound each phase's send side: DeepEP low-latency dispatch sends one token per block at a time
# (a time per round); its combine and the normal kernels (channels streaming chunks) move bytes at a rate per block.
SEND_LIMITS = {"deepep-ll": {"dispatch": "issue_us", "combine": "block_GBps"},
               "deepep-normal": {"dispatch": "block_GBps", "combine": "block_GBps"}}


class Series(NamedTuple):
    """One fitted series: the busiest link's tier, the layer shape, the EP group and the SMs the kernels ran on."""

    tier: str
    hidden: int
    top_k: int
    experts: int
    ep: int
    system: str
    sms: int

    @property
    def gpu_sms(self) -> int:
        return cluster_of(self.system, self.ep).gpu.sm_count


def fit(transport: str, gpu: str = "") -> dict:
    """Per tier: a fixed cost and a ramp of achieved bandwidth by the bytes on the busiest link; where the
    fitted rows hold series on fewer send blocks (fewer experts, or fewer SMs) also the blocks' send limit,
    and with two expert counts or hidden sizes how the fixed cost grows.

    ``gpu``: fit the ``[gpu.<gpu>]`` table from its rows ("" the file's top level).
    - Send limit, from the NVLink series with fewest blocks (their smallest and largest case): one series
      gives the one limit :data:`SEND_LIMITS` names, the time per round of one token per block
      (``issue_us``) or the bytes per block per second (``block_GBps``); two series give both. A relaying
      transport's scale-out series on fewest blocks give the relaying rate (``relay_GBps``).
    - Fixed cost of each series run on the file's own SMs: its smallest case at full link speed,
      measured - max(S, send) - W. Between two expert counts it grows per expert slot (dispatch: a count
      is signalled to every expert) or steps up once the slots outnumber the SMs (combine: slots packed into
      warp groups); between two hidden sizes, per hidden element; between two GPU counts, per GPU sent to
      (``per_peer_us``), and the largest case of each gives the pair's stream rate (``peer_GBps``), or for
      :data:`ONESIDED` per doubling of the group (``per_doubling_us``, no pair's stream).
    - Ramp, from the NVLink series of most experts and bytes, and each scale-out series: every larger case's
      S / (measured - fixed - W), clipped to (0, 1]; 1 where the send limit alone explains the time; at the
      busiest link's bytes, or as the file's ``ramp_bytes`` says. A
      series of one case is all bandwidth (fixed = 0).
    """
    rows = [c for c in cases() if c.transport == transport and c.role == "fit" and c.fits == gpu]
    out: dict = {"latency_us": {"dispatch": {}, "combine": {}}, "ramp": {}}
    own = load_transport(transport)
    own = next((own.for_gpu(ids[0]) for ids, table, _ in own.variants if table == gpu), own)  # the table fitted
    relays = own.copies == "node"  # its scale-out tier runs other kernels
    per_doubling = transport in ONESIDED
    for phase in PHASES:
        series = fit_points(rows, transport, phase, out)
        send = {tier: send_limit(transport, phase, [series[k] for k in fewest_blocks(series, tier)], out,
                                 "relay_GBps" if tier == "scale_out" else "")
                for tier in TIERS}
        limit = lambda key, p: send[key.tier if relays else "nvlink"](p)  # noqa: E731
        fixed = {k: max(0.0, pts[0].measured_us - max(pts[0].sol_us, limit(k, pts[0]))) if len(pts) > 1 else 0.0
                 for k, pts in series.items()}
        main = [k for k in series if k.tier == "nvlink" and k.sms == own.sms]  # run on the file's own SMs
        fixed_part = fixed_growth(phase, main, fixed, out, per_doubling)
        ramped = max(main, key=lambda k: (k.experts, k.hidden, k.ep)) if main else None
        peer = (lambda p: 0.0) if per_doubling else peer_stream(phase, main, series, fixed, out)
        for key, pts in series.items():
            if key != ramped and (key.tier == "nvlink" or key.sms != own.sms):
                continue
            f = fixed[key]
            out["latency_us"][phase][key.tier] = round(f - fixed_part(key), 2)
            ramp = [(own.ramp_read_at(p.link_bytes, p.peer_bytes, key.ep),
                     1.0 if p.measured_us - f - peer(p) <= max(p.sol_us, limit(key, p)) * 1.02 else
                     min(1.0, max(0.02, p.sol_us / (p.measured_us - f - peer(p)))))
                    for p in (pts[1:] if len(pts) > 1 else pts)]
            out["ramp"].setdefault(key.tier, {})[phase] = ramp
    return out


def fit_points(rows: list[Case], transport: str, phase: str, out: dict) -> dict[Series, list[Point]]:
    """The fitted rows of one phase as Points by series, sorted by tokens; records the scale-out share of the
    series that measured the scale-out tier in ``out``."""
    zero, idx = flat_transport(transport), PHASES.index(phase)
    series: dict[Series, list] = {}
    for c in rows:
        pred = predict(c, zero)
        key = Series(pred[4], *c.shape, c.ep, c.system, c.sms or load_transport(transport).sms)
        series.setdefault(key, []).append(Point(
            c.tokens, pred[2 + idx] * 1e-6 * link_bw_Bps(c.system, c.ep, key.tier), pred[2 + idx],
            (c.dispatch_us, c.combine_us)[idx] - pred[5 + idx], pred[7][phase],
            key.sms or expert_blocks(key.experts, key.gpu_sms), pred[8][phase], pred[9][phase]))
        if key.tier == "scale_out":
            pairs = routes(cluster_of(c.system, c.ep), c.ep).pair_tier
            out["scale_out_fixed_share"] = float((pairs == "scale_out").mean())
    return {k: sorted(v, key=lambda p: p.tokens) for k, v in series.items()}


def fewest_blocks(series: dict, tier: str) -> list[Series]:
    """The series of ``tier`` run on fewest send blocks (none when every series of the tier has as many), most
    experts first (so the normal kernels' reduce series, top-2 of 8, comes last)."""
    tiered = [k for k in series if k.tier == tier]
    least = min((series[k][0].blocks for k in tiered), default=0)
    senders = sorted((k for k in tiered if series[k][0].blocks == least), key=lambda k: (-k.experts, k.hidden))
    return [] if len(senders) == len(tiered) else senders


#: Phases whose reduced outputs (one per own token) go at their own rate, fitted on a third series of other
#: copies per token: DeepEP's normal combine.
REDUCING = {("deepep-normal", "combine")}


def send_limit(transport: str, phase: str, senders: list[list[Point]], out: dict, rate_name: str = ""):
    """Fit the blocks' send limit on the series with fewest blocks; returns point -> us (0 without series).

    Between a series' smallest and largest case the time grows by issue x rounds + bytes / (blocks x rate):
    one series fits the one term :data:`SEND_LIMITS` names for the phase, two series fit both, and in a
    :data:`REDUCING` phase a third series of other copies per token the rate its reduced outputs go at
    (``reduce_GBps``; the copy rate when the third series is faster than any reduce cost gives). ``rate_name``:
    fit the rate alone under that name (``relay_GBps``: the relaying kernels across domains)."""
    rounds = lambda p: math.ceil(p.tokens / p.blocks)  # noqa: E731
    if not senders:
        return lambda p: 0.0
    steps = [(rounds(s[-1]) - rounds(s[0]), (s[-1].sent_bytes - s[0].sent_bytes) / s[-1].blocks / 1e3,
              s[-1].measured_us - s[0].measured_us) for s in senders]
    if rate_name:  # the first series alone: the rate is all the send time grows by
        us_per_kb = steps[0][2] / steps[0][1]
        if us_per_kb <= 0:
            raise ValueError(f"{transport} {phase}: the send time does not grow with the bytes; no {rate_name}")
        out.setdefault(rate_name, {})[phase] = round(1 / us_per_kb, 2)
        return lambda p: us_per_kb * p.sent_bytes / p.blocks / 1e3
    issue_us, us_per_kb = issue_and_rate(transport, phase, steps)
    us_per_reduced_kb = max(us_per_kb, 0.0)
    if (transport, phase) in REDUCING and len(senders) > 2:
        issue_us, us_per_kb, us_per_reduced_kb = separate_reduce(transport, senders, steps) or (
            issue_us, us_per_kb, us_per_reduced_kb)
        if us_per_reduced_kb <= 0:
            raise ValueError(f"{transport} {phase}: the send time does not grow with the bytes; no reduce_GBps")
        # written even at the copy rate: a GPU's table never inherits another's
        out.setdefault("reduce_GBps", {})[phase] = round(1 / us_per_reduced_kb, 2)
    if len(steps) > 1 or issue_us:
        out.setdefault("issue_us", {})[phase] = round(issue_us, 3)
    if us_per_kb > 0:
        out.setdefault("block_GBps", {})[phase] = round(1 / us_per_kb, 2)
    us_per_kb = max(us_per_kb, 0.0)
    return lambda p: (issue_us * rounds(p) + (us_per_kb * (p.sent_bytes - p.reduced_bytes)
                                              + us_per_reduced_kb * p.reduced_bytes) / p.blocks / 1e3)


def issue_and_rate(transport: str, phase: str, steps: list[tuple]) -> tuple[float, float]:
    """(us per round, us per kB per block) from the growth of the first two series (both terms), or of one
    series (the term :data:`SEND_LIMITS` names; the other 0)."""
    if len(steps) > 1:
        issue_us, us_per_kb = np.linalg.solve([st[:2] for st in steps[:2]], [st[2] for st in steps[:2]])
        return max(0.0, float(issue_us)), float(us_per_kb)
    if SEND_LIMITS[transport][phase] == "issue_us":
        return steps[0][2] / steps[0][0], 0.0
    return 0.0, steps[0][2] / steps[0][1]


def separate_reduce(transport: str, senders: list[list[Point]], steps: list[tuple]) -> tuple | None:
    """(us per round, us per copied kB, us per reduced kB) from three series, the first two of one count of
    copies per token and the third of another; None when the reduce cost comes out not positive (the third
    series is faster than any reduce cost gives)."""
    share = [s[-1].reduced_bytes / s[-1].sent_bytes for s in senders[:3]]
    if not math.isclose(share[0], share[1], rel_tol=0.05) or math.isclose(share[0], share[2], rel_tol=0.05):
        raise ValueError(f"{transport}: the reduce rate needs two series of one count of copies per token and a "
                         f"third of another (reduced shares {', '.join(f'{x:.2f}' for x in share)})")
    reduced = [(s[-1].reduced_bytes - s[0].reduced_bytes) / s[-1].blocks / 1e3 for s in senders[:3]]
    issue_us, us_per_kb, us_per_reduced_kb = np.linalg.solve(
        [(n, kb - r, r) for (n, kb, _), r in zip(steps[:3], reduced)], [st[2] for st in steps[:3]])
    return (max(0.0, float(issue_us)), float(us_per_kb), float(us_per_reduced_kb)) if us_per_reduced_kb > 0 else None


def fixed_growth(phase: str, main: list[Series], fixed: dict, out: dict, per_doubling: bool = False):
    """How the fixed cost grows between the first two main series (fewest experts, hidden size, GPUs): a
    function (series -> us) of the growth fitted over expert slots (dispatch per slot, ``per_expert_us``;
    combine a step once the slots outnumber the SMs, ``packed_us``), over the hidden size (``per_hidden_us``),
    over the GPUs sent to (``per_peer_us``) or, ``per_doubling``, over log2 of the group's GPUs
    (``per_doubling_us``); none with one main series. A fixed cost that would shrink is written as 0 (so a
    GPU's table never inherits another's growth)."""
    if len(main) < 2:
        return lambda key: 0.0
    lo, hi = sorted(main, key=lambda k: (k.experts, k.hidden, k.ep))[:2]
    if lo.ep != hi.ep and per_doubling:
        count, name = (lambda key: math.log2(key.ep)), "per_doubling_us"
    elif lo.ep != hi.ep:
        count, name = (lambda key: float(key.ep - 1)), "per_peer_us"
    elif lo.experts == hi.experts:
        count, name = (lambda key: float(key.hidden)), "per_hidden_us"
    elif phase == "dispatch":
        count, name = (lambda key: float(key.experts)), "per_expert_us"
    else:
        count, name = (lambda key: float(key.experts > key.gpu_sms)), "packed_us"
    growth = max(0.0, (fixed[hi] - fixed[lo]) / (count(hi) - count(lo)))
    out.setdefault(name, {})[phase] = round(growth, 4 if name != "per_hidden_us" else 6)
    return lambda key: growth * count(key)


def peer_stream(phase: str, main: list[Series], series: dict, fixed: dict, out: dict):
    """The pair's stream rate from the largest case of two GPU counts; returns point -> us (0 with one count).

    Past the ramp, measured - fixed = S / e + (busiest pair's bytes) / rate: with one peer the pair carries
    all the busiest link's bytes, with seven an eighth, so the two cases give e and the rate apart."""
    counts = sorted({k.ep for k in main})
    if len(counts) < 2:
        return lambda p: 0.0
    keys = [max((k for k in main if k.ep == n), key=lambda k: len(series[k])) for n in (counts[0], counts[-1])]
    ends = [series[k][-1] for k in keys]
    _, us_per_byte = np.linalg.solve([[p.sol_us, p.peer_bytes] for p in ends],
                                     [p.measured_us - fixed[k] for p, k in zip(ends, keys)])
    if us_per_byte <= 0:
        return lambda p: 0.0
    out.setdefault("peer_GBps", {})[phase] = round(1e-3 / us_per_byte, 1)
    return lambda p: us_per_byte * p.peer_bytes


def fit_toml(fitted: dict, gpu: str = "") -> str:
    """The measured tables of a fit, as TOML text to paste into the transport file (``gpu``: under
    ``[gpu.<gpu>]``)."""
    at = f"gpu.{gpu}." if gpu else ""
    share = fitted.get("scale_out_fixed_share")
    lines = [f"scale_out_fixed_share = {share:.3f}"] if share is not None else []
    lines.append(f"[{at}efficiency]  # beyond the ramps: the smaller of the two phases' largest measured sizes")
    lines += [f"{tier} = {min(pts[-1][1] for pts in phases.values()):.3f}" for tier, phases in fitted["ramp"].items()]
    for key in KERNEL_TABLES:
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

    src = Path(str(resolve("transports", transport)))
    header = tomllib.loads(src.read_text())
    keep = {k: header[k] for k in ("name", "copies", "forward", "scope", "dispatch_header_bytes",
                                   "combine_header_bytes")}
    lines = [f'{k} = {v!r}'.replace("'", '"') for k, v in keep.items()]
    lines += ["[efficiency]", "nvlink = 1.0", "scale_out = 1.0", "[latency_us]", "dispatch = 0.0", "combine = 0.0"]
    return temp_transport(f"flat-{src.stem}", "\n".join(lines) + "\n")


def link_bw_Bps(system: str, ep: int, tier: str) -> float:
    cluster = cluster_of(system, ep)
    bws = cluster.edge_bw_Bps[cluster.edge_tier == tier]
    return float(bws.min())


def table() -> list[list]:
    """[source, transport, EP, tokens, role, measured d, predicted d, err %, measured c, predicted c, err %]."""
    out = []
    every = cases()
    for c, (d, cb, *_) in zip(every, predict_all(every)):
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
        print(markdown_table(head, summary()))
        return
    head = ["source", "transport", "EP", "tokens/rank", "role", "dispatch us", "pred", "err %", "combine us", "pred",
            "err %"]
    print(markdown_table(head, table()))


if __name__ == "__main__":
    main()
