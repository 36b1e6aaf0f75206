"""Minimum-latency decode (DeepSeek-R1, batch 1, attention TP8): one step's kernels from TensorRT-LLM's measured
tables against wideep's terms, layer by layer, and the share of the published step those kernels explain.

Kernel times are NVIDIA AIConfigurator's TensorRT-LLM 1.3.0rc20 tables (aiconfigurator-core 0.12.0; rows used
saved in benchmarks/data/aic_latency_budget.csv, latency in ms per call, every table timed under a CUDA graph):
- ``mla_module``: TRT-LLM's whole DeepseekV3 attention module on one GPU built with 16 heads (= one TP8 rank):
  fused_a, q/kv norms, q_b, absorbed BMMs, RoPE + KV write, MLA kernel, o_proj; m = sequences of one token,
  k = cached tokens; no all-reduce.
- ``mla_kernel`` (RoPE + KV write + MLA), ``bmm_pre`` / ``bmm_post`` (kv_b absorbed, 16 heads), ``gemm``
  (activation quantisation included; distinct weight copies defeat L2): the module's parts.
- ``moe``: one rank's routed-expert layer (routing from logits, permute, grouped GEMMs, activation, unpermute;
  no router GEMM, no shared expert, no all-reduce); m = tokens entering the layer (all ranks see all tokens under
  MoE TP), n / k = MoE TP / EP; ``balanced`` routing puts m x 8 / EP distinct experts on the timed rank.
- ``allreduce``: custom all-reduce, m = bf16 elements, n = GPUs (TRT-LLM fuses residual + RMSNorm into it).
MTP3 steps feed 4 tokens (AIC's convention: 4 one-token sequences); 58 + 3 MTP MoE layer passes, 3 dense layers,
the LM head once per token set (main model + each autoregressive draft) and each draft's eh_proj; shared experts
run on an auxiliary stream beside router + routed experts (TRT-LLM's multi-stream), so a MoE layer is
attention + 2 all-reduces + max(router + routed, shared). Published step = accepted tokens / tokens/s/user.
Choices per case (sources in docs/sources.md): H200 FP8 block-scaled GEMMs and CUTLASS MoE (its recipe sets no
MoE backend); B200 BF16 attention and NVFP4 FFNs (TRT-LLM tech blog 1, precision table), trtllm-gen MoE (its
recipe's ``moe_config: backend: TRTLLM``); BF16 KV cache (the recipes set none). wideep's terms are its plans of
benchmarks/e2e_validation.py's LATENCY_CASES (B200 MTP3 with FP8 attention, as there), except that the no-MTP
B200 case stays at MoE EP2 x TP4 here, the split whose trtllm-gen rows were extracted (the end-to-end case runs
EP4 x TP2 since 2026-12-05, blog 1's layout at that stage; AIC's saved rows hold no NVFP4 EP4 x TP2 MoE).

Run: python benchmarks/latency_budget.py            (tables; wideep terms from this checkout)
     python benchmarks/latency_budget.py --extract DIR   (rewrite the CSV from AIC's systems/data directory)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "aic_latency_budget.csv"
HIDDEN = 7168
CONTEXT = 2048  # mean cached tokens over a 1K-prompt, 2K-output request
SHAPES = {"fused_a": (2112, HIDDEN), "q_b": (3072, 1536), "o_proj": (HIDDEN, 2048), "router": (256, HIDDEN),
          "shared_gate_up": (512, HIDDEN), "shared_down": (HIDDEN, 256), "dense_gate_up": (4608, HIDDEN),
          "dense_down": (HIDDEN, 2304), "lm_head": (16160, HIDDEN), "eh_proj": (HIDDEN, 1792)}  # TP8 slices
ACT_US = 3.0  # SiLU-mul of a shared or dense FFN: not in the tables (AIC's own elementwise estimate)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    system: str
    tokens: int  # tokens per step through every layer (1 + MTP drafts)
    mtp: int
    attn_dtype: str  # attention GEMMs
    bmm_dtype: str
    moe: tuple[int, int, str, str]  # MoE TP, EP, dtype, kernel source
    ffn_dtype: str  # shared experts and dense FFNs
    published_tok_s_user: float
    accepted: float
    plan: dict


LAT = dict(model="deepseek-r1", tp=8, batch=1, isl=1024, osl=2048)
CASES = [
    Case("H200 FP8, MoE EP4xTP2, MTP3", "h200_sxm", 4, 3, "fp8_block", "fp8",
         (2, 4, "fp8_block", "moe_torch_flow_cutlass"), "fp8_block", 158.12, 2.82,
         dict(LAT, topology="hgx-h200", ep=4, mtp=3, acceptance=0.772)),
    Case("B200 NVFP4, MoE EP2xTP4, no MTP", "b200_sxm", 1, 0, "bfloat16", "bfloat16",
         (4, 2, "nvfp4", "moe_torch_flow_min_latency"), "nvfp4", 111.0, 1.0,
         dict(LAT, topology="hgx-b200", ep=2, dtype="nvfp4", attn_dtype="bf16")),
    Case("B200 NVFP4, MoE EP2xTP4, MTP3", "b200_sxm", 4, 3, "bfloat16", "bfloat16",
         (4, 2, "nvfp4", "moe_torch_flow_min_latency"), "nvfp4", 274.72, 2.82,
         dict(LAT, topology="hgx-b200", ep=2, dtype="nvfp4", mtp=3, acceptance=0.772)),
]


def load_rows(path: Path = DATA) -> dict:
    """(system, op, dtype, variant, m, n, k) -> latency in us."""
    with open(path) as fh:
        return {(r["system"], r["op"], r["dtype"], r["variant"], int(r["m"]), int(r["n"]), int(r["k"])):
                1000 * float(r["latency_ms"]) for r in csv.DictReader(fh)}


def gemm_us(rows: dict, system: str, dtype: str, m: int, n: int, k: int) -> float:
    """A GEMM's time, bilinear in (n, k) between the measured grid points around it."""
    grid = [(kn, kk) for (s, op, d, _, km, kn, kk) in rows if (s, op, d, km) == (system, "gemm", dtype, m)]
    ns, ks = sorted({g[0] for g in grid}), sorted({g[1] for g in grid})

    def bracket(v, axis):
        hi = next(a for a in axis if a >= v)
        lo = max(a for a in axis if a <= v)
        return lo, hi, 0.0 if hi == lo else (v - lo) / (hi - lo)

    (n0, n1, fn), (k0, k1, fk) = bracket(n, ns), bracket(k, ks)
    at = lambda a, b: rows[(system, "gemm", dtype, "", m, a, b)]
    return ((1 - fn) * (1 - fk) * at(n0, k0) + fn * (1 - fk) * at(n1, k0) + (1 - fn) * fk * at(n0, k1)
            + fn * fk * at(n1, k1))


def allreduce_us(rows: dict, system: str, elements: int) -> float:
    """One 8-GPU bf16 all-reduce, interpolated in log(message size)."""
    pts = sorted((m, v) for (s, op, _, _, m, n, _), v in rows.items() if (s, op, n) == (system, "allreduce", 8))
    return float(np.interp(math.log(elements), [math.log(p[0]) for p in pts], [p[1] for p in pts]))


def aic_layer_us(rows: dict, c: Case, busiest_experts: float) -> dict:
    """Per-layer kernel times (us) of one case; the routed layer also at the busiest rank's expert count."""
    s, t = c.system, c.tokens
    g = lambda name, dt, m=t: gemm_us(rows, s, dt, m, *SHAPES[name])
    tp, ep, dt, src = c.moe
    moe = lambda dist, m=t: rows[(s, "moe", dt, f"{src}/{dist}", m, tp, ep)]
    per_rank = t * 8 / ep  # distinct experts on the timed rank under AIC's balanced routing
    busiest = moe("balanced") + (busiest_experts - per_rank) / per_rank * (moe("balanced", 2 * t) - moe("balanced"))
    out = {"mla_kernel": rows[(s, "mla_kernel", "bfloat16", "", t, 16, CONTEXT - 1)],
           "fused_a": g("fused_a", c.attn_dtype), "q_b": g("q_b", c.attn_dtype),
           "kv_b_bmms": sum(rows[(s, op, c.bmm_dtype, "", t, 16, 0)] for op in ("bmm_pre", "bmm_post")),
           "o_proj": g("o_proj", c.attn_dtype),
           "attn_module": rows[(s, "mla_module", "bfloat16", c.attn_dtype, t, 16, CONTEXT)],
           "router": g("router", "bfloat16"),
           "shared": g("shared_gate_up", c.ffn_dtype) + g("shared_down", c.ffn_dtype) + ACT_US,
           "routed_balanced": moe("balanced"), "routed_power_law": moe("power_law_1.01"), "routed_busiest": busiest,
           "allreduce_2x": 2 * allreduce_us(rows, s, HIDDEN * t),
           "dense_ffn": g("dense_gate_up", c.ffn_dtype) + g("dense_down", c.ffn_dtype) + ACT_US,
           "lm_head": g("lm_head", "bfloat16"),
           "eh_proj": g("eh_proj", c.attn_dtype) + allreduce_us(rows, s, HIDDEN * t)}
    for dist in ("balanced", "power_law", "busiest"):
        out[f"moe_layer_{dist}"] = (out["attn_module"] + out["allreduce_2x"]
                                    + max(out["router"] + out[f"routed_{dist}"], out["shared"]))
    out["dense_layer"] = out["attn_module"] + out["allreduce_2x"] + out["dense_ffn"]
    out["head_per_step"] = (1 + c.mtp) * out["lm_head"] + c.mtp * out["eh_proj"]
    return out


def aic_step_ms(layer: dict, c: Case, dist: str) -> float:
    return ((58 + c.mtp) * layer[f"moe_layer_{dist}"] + 3 * layer["dense_layer"] + layer["head_per_step"]) / 1000


def wideep_layer_us(plan_kwargs: dict) -> dict:
    """wideep's per-layer terms (us) of one case, and its step (ms), from this checkout's step model."""
    from wideep.perf import step as S
    from wideep.perf.kernels import attention_gemms, attention_kernels, ffn_gemms, tp_shard
    from wideep.plan import PlanSpec, plan
    from wideep.plan.deployment import cluster_for, ep_for, load_calibration, redundant_of, resolve_spec
    from wideep.specs.model import load_model

    spec = PlanSpec(**plan_kwargs)
    model = load_model(spec.model)
    spec = resolve_spec(spec, model)
    gpu = cluster_for(spec.topology, spec.ep).gpu
    cal, wl = load_calibration(gpu.id, spec.calibration), spec.workload("decode")
    ep = ep_for(spec, model, redundant_of(spec, model), "decode")
    tokens = S.layer_tokens(wl, wl.batch)
    us = lambda terms: 1e6 * sum(t.time_s for t in terms)
    proj = {g.name: us([S.gemm_kernel(tp_shard(g, wl.tp), tokens, wl.precision.attention, gpu, cal)])
            for g in attention_gemms(model)}
    core = us(S.attention_terms(model, gpu, cal, wl, wl.batch)[:1])
    attn_kernels = us(S.memory_kernels(attention_kernels(model, wl.precision.dt("attention"), wl.precision.dt("kv")),
                                       tokens, 0, gpu, cal))
    routed, received = S.routed_experts(model, gpu, cal, wl, ep, tokens / wl.expert_ranks)
    shared = us(S.sharded_gemms(ffn_gemms(model.shared_ffn, model.hidden, "shared_experts"), tokens,
                                wl.precision.dense, gpu, cal, wl.tp))
    router = us([S.gemm_kernel(S.GemmShape("router", model.n_experts, model.hidden, "router"), tokens / wl.tp,
                               "bf16", gpu, cal)])
    after = us(S.moe_local_terms(model, gpu, cal, wl, wl.batch)[1])  # router GEMM and the layer's memory kernels
    w = dict(proj, attn_core=core, attention=core + sum(proj.values()) + attn_kernels, router=router,
             other_kernels=after - router, shared=shared, routed=1e6 * routed.time_s,
             allreduce_2x=us(S.allreduce_term(ep, wl, tokens)),
             busiest_experts=ep.active_experts(tokens / wl.expert_ranks, received),
             dense_layer=us(S.dense_layer_terms(model, gpu, cal, wl, ep, wl.batch)),
             head=us(S.head_terms(model, gpu, cal, wl, wl.batch)), step_ms=1e3 * plan(spec).decode.step_s)
    w["moe_layer"] = w["attention"] + after + shared + w["routed"] + w["allreduce_2x"]
    return w


def extract(root: Path, out: Path) -> None:
    """Write the rows this script reads from AIC's parquet tables under ``root`` (systems/data)."""
    import pyarrow.parquet as pq

    def read(system: str, sub: str, name: str) -> list[dict]:
        return pq.read_table(root / system / sub / "trtllm" / "1.3.0rc20" / f"{name}.parquet").to_pylist()

    rows = []
    for system in sorted({c.system for c in CASES}):
        gemms = [r for r in read(system, "gemm", "gemm_perf") if r["m"] in (1, 4)]
        ns, ks = sorted({r["n"] for r in gemms}), sorted({r["k"] for r in gemms})
        near = lambda v, axis: {max(a for a in axis if a <= v), min(a for a in axis if a >= v)}
        corners = {(n, k) for sn, sk in SHAPES.values() for n in near(sn, ns) for k in near(sk, ks)}
        for r in gemms:
            if (r["n"], r["k"]) in corners:
                rows.append((system, "gemm", r["gemm_dtype"], "", r["m"], r["n"], r["k"], r["latency"]))
        for r in read(system, "moe", "moe_perf"):
            if ((r["hidden_size"], r["inter_size"], r["num_experts"], r["topk"]) == (HIDDEN, 2048, 256, 8)
                    and r["num_tokens"] in (1, 2, 4, 8) and r["moe_tp_size"] * r["moe_ep_size"] == 8):
                rows.append((system, "moe", r["moe_dtype"], f"{r['kernel_source']}/{r['distribution']}",
                             r["num_tokens"], r["moe_tp_size"], r["moe_ep_size"], r["latency"]))
        for r in read(system, "mla", "generation_mla_perf"):
            if r["num_heads"] == 16 and r["batch_size"] in (1, 4) and r["step"] == CONTEXT - 1:
                rows.append((system, "mla_kernel", r["kv_cache_dtype"], "", r["batch_size"], 16, r["step"],
                             r["latency"]))
        for r in read(system, "mla", "mla_generation_module_perf"):
            if r["num_heads"] == 16 and r["batch_size"] in (1, 4) and r["step"] == CONTEXT:
                rows.append((system, "mla_module", r["kv_cache_dtype"], r["gemm_type"], r["batch_size"], 16, r["step"],
                             float(r["latency"])))
        for r in read(system, "mla_bmm", "mla_bmm_perf"):
            if r["num_heads"] == 16 and r["num_tokens"] in (1, 4):
                op = r["op_name"].replace("mla_gen_", "bmm_")
                rows.append((system, op, r["bmm_dtype"], "", r["num_tokens"], 16, 0, r["latency"]))
        for r in read(system, "comm", "custom_allreduce_perf"):
            if r["num_gpus"] == 8:
                rows.append((system, "allreduce", r["allreduce_dtype"], "", r["message_size"], 8, 0, r["latency"]))
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["system", "op", "dtype", "variant", "m", "n", "k", "latency_ms"])
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extract", metavar="DIR", help="AIC systems/data directory: rewrite the CSV from its parquet")
    args = ap.parse_args()
    if args.extract:
        extract(Path(args.extract), DATA)
        return
    rows = load_rows()
    for c in CASES:
        w = wideep_layer_us(c.plan)
        a = aic_layer_us(rows, c, w["busiest_experts"])
        published_ms = 1000 * c.accepted / c.published_tok_s_user
        lines = [("attn_core: MLA kernel (RoPE + KV write + attention)", a["mla_kernel"], w["attn_core"]),
                 ("attn_proj: fused_a (q_a + kv_a)", a["fused_a"], w["q_a_kv_a"]),
                 ("attn_proj: q_b", a["q_b"], w["q_b"]),
                 ("attn_proj: kv_b (TRT-LLM: two absorbed BMMs)", a["kv_b_bmms"], w["kv_b"]),
                 ("attn_proj: o_proj", a["o_proj"], w["o_proj"]),
                 ("attention module, timed whole (wideep: core + proj + kernels)", a["attn_module"], w["attention"]),
                 ("router GEMM", a["router"], w["router"]),
                 ("other memory kernels (TRT-LLM: fused into all-reduce / MLA)", 0.0, w["other_kernels"]),
                 ("shared experts on the critical path (TRT-LLM: aux stream)",
                  max(0.0, a["shared"] - a["router"] - a["routed_balanced"]), w["shared"]),
                 ("  shared experts, serial", a["shared"], w["shared"]),
                 ("routed MoE, AIC balanced routing", a["routed_balanced"], w["routed"]),
                 ("routed MoE, AIC power-law routing", a["routed_power_law"], w["routed"]),
                 (f"routed MoE at wideep's busiest-rank experts ({w['busiest_experts']:.2f})", a["routed_busiest"],
                  w["routed"]),
                 ("tp_allreduce (2 per layer)", a["allreduce_2x"], w["allreduce_2x"]),
                 ("MoE layer, busiest-rank experts", a["moe_layer_busiest"], w["moe_layer"]),
                 ("dense layer", a["dense_layer"], w["dense_layer"]),
                 ("LM head (+ MTP eh_proj) per step", a["head_per_step"], w["head"])]
        print(f"\n### {c.name}: {c.tokens} token(s) per layer pass, published step {published_ms:.2f} ms\n")
        print("| term | AIC us per layer | wideep us per layer | wideep / AIC |\n|---|---|---|---|")
        for name, x, y in lines:
            print(f"| {name} | {x:.1f} | {y:.1f} | {y / x:.2f} |" if x >= 1 else f"| {name} | {x:.1f} | {y:.1f} | - |")
        steps = {d: aic_step_ms(a, c, d) for d in ("balanced", "power_law", "busiest")}
        print(f"\nStep, ms: AIC kernels {steps['balanced']:.2f} (balanced) / {steps['power_law']:.2f} (power law) / "
              f"{steps['busiest']:.2f} (busiest rank); wideep {w['step_ms']:.2f}; published {published_ms:.2f}. "
              f"Kernels explain {100 * steps['busiest'] / published_ms:.0f}% of the published step; "
              f"{published_ms - steps['busiest']:.2f} ms per step "
              f"({1000 * (published_ms - steps['busiest']) / (61 + c.mtp):.0f} us per layer pass) is not kernel time.")


if __name__ == "__main__":
    main()
