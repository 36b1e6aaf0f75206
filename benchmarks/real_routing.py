"""Placement on real routing statistics: SGLang's DeepSeek-V3 expert counts, in sample and held out.

The statistics: SGLang's published per-layer expert counts of DeepSeek-V3, one JSON file per benchmark
shape, each ``{"logical_count": [61][256]}`` (layers 0-2 are dense and hold zeros); SGLang issue #6017
attachment, copy in GeneratedRandomly/SGLang-reproduce attachment_ep_statistics/ (docs/sources.md section
4). The files carry no license and are not part of this repository: pass the folder holding them.

For each deployment (EP32 over 4 hgx-h100 nodes with 32 redundant slots; EP8 on one node with 32 and with
0 redundant) and each EPLB policy (``balanced``: hierarchical, expert groups packed onto nodes first;
``global``: replicate and pack over all GPUs), balancedness (mean GPU load / max GPU load, per MoE layer,
expected loads under the replica rule) is reported as the mean over MoE layers and the worst layer:

- in sample: placed on one file, judged on the same file (mean over files; worst layer of any file);
- leave one out: placed on the other files (counts summed), judged on the one left out;
- prefill -> decode: placed on the 8 prefill files, judged on each decode file; decode -> prefill the reverse;
- CLI split: what ``wideep place --stats FILE ... --compare`` does with the files in sorted order (the first
  half places, the rest, summed, is judged).

``--objective``: per replica rule, the four placements an EP32 deployment over 4 hgx-h100 nodes can use
(``balanced``, ``global``, ``topology``, which is ``balanced`` on loads-only statistics, and ``auto``, per
layer the least predicted time of the others' candidates) placed on one part of the files and judged on
another: expected cross-node copies per token (scale-out copies of DeepEP normal mode, from the traffic
model's loads-only approximation) and the predicted MoE layer time on the busiest GPU
(:mod:`wideep.placement.objective`, 128 tokens per GPU, ``--transport``), in sample and held out.

Run: python benchmarks/real_routing.py FOLDER [--rule sglang|vllm|trtllm|nearest|all] [--markdown]
     [--objective [--transport deepep-normal]]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from wideep.placement.metrics import score
from wideep.placement.objective import layer_time
from wideep.placement.placers import place
from wideep.report.tables import markdown_table
from wideep.routing.files import load_routing
from wideep.routing.split import merge
from wideep.slots import REPLICA_RULES
from wideep.specs.model import load_model
from wideep.specs.topology import load_cluster
from wideep.traffic.a2a import a2a

#: (label, EP size = GPUs, redundant slots)
DEPLOYMENTS = (("EP32, 4 nodes, 32 redundant", 32, 32), ("EP8, 1 node, 32 redundant", 8, 32),
               ("EP8, 1 node, 0 redundant", 8, 0))
ALGORITHMS = ("balanced", "global")
TOKENS_PER_GPU = 128  # only scales the busiest-GPU figure; balancedness of expected loads does not depend on it


def load_folder(folder: str | Path) -> dict:
    """{benchmark name: RoutingStats} of every ``*.json`` in ``folder``, sorted by name."""
    model = load_model("deepseek-v3")
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise SystemExit(f"{folder}: no *.json statistics files")
    return {f.stem: load_routing(f, model) for f in files}


def judge(stats: dict, train: list[str], test: list[str], algorithm: str, ep: int, redundant: int,
          rule: str) -> list[np.ndarray]:
    """Balancedness per layer on each of ``test`` of ``algorithm`` placed on ``train`` (counts summed)."""
    model = load_model("deepseek-v3")
    cluster = load_cluster("hgx-h100", ep)
    p = place(algorithm, merge([stats[n] for n in train]), model, cluster, ep, redundant)
    return [score(p, stats[n], model, TOKENS_PER_GPU, rule).balancedness for n in test]


def protocols(names: list[str]) -> dict[str, list[tuple[list[str], list[str]]]]:
    """(train, test) pairs of every protocol of the module docstring."""
    prefill = [n for n in names if n.startswith("prefill")]
    decode = [n for n in names if n.startswith("decode")]
    cut = (len(names) + 1) // 2
    out = {"in sample": [([n], [n]) for n in names],
           "leave one out": [([m for m in names if m != n], [n]) for n in names]}
    if prefill and decode:
        out["prefill -> decode"] = [(prefill, decode)]
        out["decode -> prefill"] = [(decode, prefill)]
    out["CLI split"] = [(names[:cut], ["+".join(names[cut:])])]
    return out


def table(stats: dict, rule: str) -> list[dict]:
    """One row per (deployment, algorithm): {protocol: (mean over files of the layer mean, worst layer)}."""
    names = list(stats)
    cut = (len(names) + 1) // 2
    stats = dict(stats)
    stats["+".join(names[cut:])] = merge([stats[n] for n in names[cut:]])
    rows = []
    for label, ep, redundant in DEPLOYMENTS:
        for alg in ALGORITHMS:
            row = {"deployment": label, "algorithm": alg}
            for proto, pairs in protocols(names).items():
                bal = [b for train, test in pairs for b in judge(stats, train, test, alg, ep, redundant, rule)]
                row[proto] = (float(np.mean([b.mean() for b in bal])), float(np.min([b.min() for b in bal])))
            rows.append(row)
    return rows


OBJECTIVE_ALGORITHMS = ("balanced", "global", "topology", "auto")


def objective_figures(p, judged, model, cluster, rule: str, transport: str) -> tuple[float, float]:
    """(cross-node copies per token, predicted layer ms) of placement ``p`` on statistics ``judged``."""
    tpg = TOKENS_PER_GPU
    res = a2a(model, cluster, p.phy2log, judged, p.ep_size, tpg, "deepep-normal", replica_rule=rule)
    copies = res.bytes_by_tier["dispatch"]["scale_out"] / res.message_bytes["dispatch"] / (p.ep_size * tpg)
    t = layer_time(p.phy2log, judged, model, cluster, p.ep_size, tpg, transport, rule=rule)
    return copies, float(t.total_s.mean() * 1e3)


def objective_table(stats: dict, rule: str, transport: str = "deepep-normal", ep: int = 32,
                    redundant: int = 32) -> list[dict]:
    """Per algorithm: {protocol: (in-sample copies, held-out copies, in-sample ms, held-out ms)}."""
    model, cluster = load_model("deepseek-v3"), load_cluster("hgx-h100", ep)
    names = list(stats)
    cut = (len(names) + 1) // 2
    prefill = [n for n in names if n.startswith("prefill")]
    decode = [n for n in names if n.startswith("decode")]
    splits = {"CLI split": (names[:cut], names[cut:]), "prefill -> decode": (prefill, decode),
              "decode -> prefill": (decode, prefill)}
    rows = []
    for alg in OBJECTIVE_ALGORITHMS:
        row = {"algorithm": alg}
        for proto, (train, test) in splits.items():
            fit, judged = merge([stats[n] for n in train]), merge([stats[n] for n in test])
            opts = {"replica_rule": rule, "transport": transport} if alg in ("topology", "auto") else {}
            p = place(alg, fit, model, cluster, ep, redundant, **opts)
            row[proto] = (*objective_figures(p, fit, model, cluster, rule, transport),
                          *objective_figures(p, judged, model, cluster, rule, transport))
        rows.append(row)
    return rows


def render_objective(rows: list[dict], markdown: bool) -> str:
    protos = [k for k in rows[0] if k != "algorithm"]
    head = ["algorithm"] + [f"{p}: x-node/tok in / HO, layer ms in / HO" for p in protos]
    body = [[r["algorithm"]] + [f"{r[p][0]:.3f} / {r[p][2]:.3f}, {r[p][1]:.4f} / {r[p][3]:.4f}" for p in protos]
            for r in rows]
    return render_rows(head, body, markdown)


def render(rows: list[dict], markdown: bool) -> str:
    protos = [k for k in rows[0] if k not in ("deployment", "algorithm")]
    head = ["deployment", "algorithm"] + [f"{p} mean / worst" for p in protos]
    body = [[r["deployment"], r["algorithm"]] + [f"{r[p][0]:.3f} / {r[p][1]:.3f}" for p in protos] for r in rows]
    return render_rows(head, body, markdown)


def render_rows(head: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        return markdown_table(head, body)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="folder of SGLang logical_count JSON files")
    ap.add_argument("--rule", default="sglang", choices=[*REPLICA_RULES, "all"])
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    ap.add_argument("--objective", action="store_true", help="copies and predicted layer time per algorithm")
    ap.add_argument("--transport", default="deepep-normal", help="transport of the predicted layer time")
    args = ap.parse_args()
    stats = load_folder(args.folder)
    print(f"{len(stats)} files: {', '.join(stats)}; {next(iter(stats.values())).layers} MoE layers each")
    for rule in REPLICA_RULES if args.rule == "all" else [args.rule]:
        if args.objective:
            start = time.perf_counter()
            rows = objective_table(stats, rule, args.transport)
            print(f"\nreplica rule {rule}, EP32 over 4 hgx-h100 nodes, 32 redundant, {args.transport}, "
                  f"{TOKENS_PER_GPU} tokens/GPU ({time.perf_counter() - start:.1f} s)")
            print(render_objective(rows, args.markdown))
            continue
        start = time.perf_counter()
        rows = table(stats, rule)
        print(f"\nreplica rule {rule} (balancedness, mean over MoE layers / worst layer; "
              f"{time.perf_counter() - start:.1f} s)")
        print(render(rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
