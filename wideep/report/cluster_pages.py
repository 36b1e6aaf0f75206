"""The HTML pages of ``a2a`` and ``place``: the cluster graph under dispatch and combine, and where experts sit.

``a2a`` draws the all-to-all's link loads on the cluster graph. ``place`` shows, per MoE layer, how much
work each GPU receives under the engines' default layout (before), DeepSeek's EPLB and the chosen
algorithm (after), with the redundant copies marked, one layer's slots expert by expert, and the graph
under the chosen placement's dispatch and combine.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from wideep.core import units
from wideep.report import figures
from wideep.report.html import Section, figure_html, page, table_html
from wideep.report.pages import graph_section, rule_words
from wideep.report.tables import HELD_OUT_COLS, PLACE_COLS, VERSUS_WORDS

HEAT_TEXT = ("Each panel is one placement of the experts; rows are MoE layers, columns GPUs (EP ranks; white lines "
             "separate NVLink domains). A cell's colour is the token-expert selections that GPU receives in that "
             "layer, as a multiple of the layer's mean: blue is idle, red overloaded, and the step waits for the "
             "reddest GPU of every layer. 'contiguous' is the engines' default layout (before), 'balanced' is "
             "DeepSeek's EPLB, and the chosen algorithm is the after.")
SLOTS_TEXT = ("One MoE layer (the one the default layout balances worst), slot by slot, under the same placements: "
              "each column is a GPU, each cell one resident expert, coloured by its share of the layer's selections "
              "per copy. Redundant slots hold extra copies of hot experts (white squares mark every copy of an "
              "expert that has several), so each copy carries part of that expert's load.")


def a2a_rows(s: dict) -> list[list[Any]]:
    """One row per phase, as ``wideep a2a`` prints it."""
    return [[p, s[f"{p}_us"], s[f"{p}_sol_us"], s[f"{p}_latency_us"], s[f"{p}_logical_GBps"],
             s["bytes_by_tier"][p]["nvlink"] / units.GB, s["bytes_by_tier"][p]["scale_out"] / units.GB,
             s["binding_link" if p == "dispatch" else "combine_binding_link"]] for p in ("dispatch", "combine")]


A2A_HEADERS = ["phase", "time [us]", "SOL [us]", "fixed cost [us]", "GB/s per GPU", "NVLink [GB]", "scale-out [GB]",
               "binding link"]


def routing_words(routing: str, model: str) -> str:
    """The --routing option as the run resolved it (``auto``: the model's measured popularity, or uniform)."""
    from wideep.routing.stats import resolve_auto
    from wideep.specs.model import load_model

    resolved = resolve_auto(routing, load_model(model))
    return routing if resolved == routing else f"{routing}: {resolved}"


def a2a_page(res: Any, cluster: Any, model: str, routing: str, command: str = "") -> str:
    """``wideep a2a --html``: the phase table, the graph and the assumptions."""
    s = res.summary()
    what = f"{s['tokens_per_gpu']} tokens per GPU"
    assumptions = [["model", model], ["cluster", cluster.name], ["EP group", f"ranks 0-{s['ep_size'] - 1}"],
                   ["tokens per GPU", s["tokens_per_gpu"]], ["transport", s["transport"]],
                   ["bytes per token copy", ", ".join(f"{p} {b:,}" for p, b in s["message_bytes"].items())],
                   ["routing statistics", routing_words(routing, model)],
                   ["replica rule", rule_words(s["replica_rule"])]]
    sections = [Section("Dispatch and combine, per MoE layer",
                        "Dispatch sends each token's hidden state to the GPUs holding its selected experts; combine "
                        "brings the results back. Time is the binding link's bytes over its achieved bandwidth plus "
                        "the transport's fixed cost; SOL is the same bytes at datasheet bandwidth with no latency. "
                        "GB are per MoE layer for the whole EP group, by the tier of the link they leave on.",
                        table_html(a2a_rows(s), A2A_HEADERS)),
                graph_section(cluster, res, what),
                Section("Assumptions", "What the figures above assume.", table_html(assumptions, ["assumption", "value"]))]
    return page(f"{model}: all-to-all on {cluster.name}, EP {s['ep_size']}",
                "How many bytes cross which link when an expert-parallel MoE layer dispatches tokens to their experts "
                "and combines the results, and which link sets the time.", sections, command)


def place_rows(rows: Sequence[dict], split: str | None) -> tuple[list[list[Any]], list[str]]:
    """The ``wideep place`` table: in-sample columns, held-out ones beside them when the statistics were split."""
    cols = [(k, h, False) for k, h in PLACE_COLS]
    if split is not None:
        cols = [c for k, h in PLACE_COLS for c in [(k, h, False)] + ([(k, HELD_OUT_COLS[k], True)]
                                                                       if k in HELD_OUT_COLS else [])]
    cells = [[(r.get("held_out") or {}).get(k) if ho else r[k] for k, _, ho in cols] for r in rows]
    return cells, [h for _, h, _ in cols]


def versus_rows(rows: Sequence[dict]) -> list[list[Any]]:
    """Each algorithm against EPLB (balanced): change in sample, held out, verdict."""
    return [[r["algorithm"], VERSUS_WORDS[k], f"{100 * v['in_sample']:+.1f}%",
             "-" if v["held_out"] is None else f"{100 * v['held_out']:+.1f}%", v["verdict"]]
            for r in rows for k, v in (r.get("vs_balanced") or {}).items()]


LABELS = {"contiguous": "contiguous (before)", "balanced": "balanced (EPLB)"}


def load_panels(placements: Sequence[Any], stats: Any, rule: str) -> list[tuple[str, Any]]:
    """(name, GPU load / layer mean, shape (layers, gpus)) per placement, selections sent as ``rule`` sends them."""
    from wideep.traffic.a2a import gpu_loads

    out = []
    for p in placements:
        load = np.asarray(gpu_loads(p.phy2log, stats, p.ep_size, p.domain_of, rule), dtype=float)
        out.append((LABELS.get(p.algorithm, p.algorithm), load / np.maximum(load.mean(axis=1, keepdims=True), 1e-12)))
    return out


def slot_panel(p: Any, stats: Any, layer: int) -> tuple[str, Any, Any]:
    """(name, share of the layer's selections per copy, copies of the expert) per slot, shape (gpus, slots/GPU)."""
    load = np.asarray(stats.load[layer], dtype=float)
    counts = p.replica_counts()[layer]
    experts = p.phy2log[layer]
    share = (load[experts] / counts[experts] / max(load.sum(), 1e-12)).reshape(p.ep_size, -1)
    return LABELS.get(p.algorithm, p.algorithm), share, counts[experts].reshape(p.ep_size, -1)


def place_statistics(paths: Sequence[str] | None, routing: str | None, model: Any, tokens: int, seed: int) -> Any:
    """All the routing statistics a placement was made from (files merged, or the synthetic sample)."""
    from wideep.routing.files import routing_from_spec
    from wideep.routing.split import load_all

    return routing_from_spec(routing, model, tokens, seed) if routing is not None else load_all(list(paths), model)


def place_page(study: Any, chosen: str, model: Any, cluster: Any, stats: Any, traffic: dict, command: str = "") -> str:
    """``wideep place --html``: the table, the heat maps before/after against EPLB, a slot map, the graph."""
    from wideep.traffic.a2a import a2a

    h, rows = study.header, study.rows()
    names = list(dict.fromkeys(["contiguous", "balanced", chosen]))
    shown = [run[0] for name in names for run in study.runs if run[0].algorithm == name]
    panels = load_panels(shown, stats, study.replica_rule)
    domain = int(np.bincount(np.asarray(cluster.domain_of)[:h["ep_size"]]).max())
    cells, heads = place_rows(rows, study.split)
    sections = [Section("The placements compared", "One row per algorithm. bal is balancedness (mean over max GPU "
                        "load per layer; 1 is perfect); busiest GPU the selections it receives per step; x-domain/tok "
                        "and x-GPU/tok the copies of a token sent to other NVLink domains and other GPUs; dispatch and "
                        "combine in microseconds per MoE layer. HO columns are held out: " + (study.split or
                        "not split (give --compare to judge on statistics the placement did not see)."),
                        table_html(cells, heads) + (table_html(versus_rows(rows), ["algorithm", "measure", "in sample",
                                                    "held out", "verdict"]) if study.split else "")),
                Section("Expert load by GPU and layer: before and after", HEAT_TEXT,
                        figure_html(figures.heatmap_svg(panels, domain, f"{h['model']} on {h['cluster']}, EP "
                                                        f"{h['ep_size']}, {h['slots']} slots"),
                                    "load from all the routing statistics", "heatmap"))]
    chosen_p = shown[-1]
    worst = int(panels[0][1].max(axis=1).argmax())
    sections.append(Section("One layer, slot by slot: where the replicas went", SLOTS_TEXT,
                            figure_html(figures.slots_svg([slot_panel(p, stats, worst) for p in shown], worst),
                                        f"MoE layer {worst}, loads from all the routing statistics", "slots")))
    settings = (traffic["transport"], traffic["dtype"], traffic["combine_dtype"], traffic["seed"])
    res = study.counted_traffic(chosen_p.algorithm, stats, *settings)
    if res is None:
        res = a2a(model, cluster, chosen_p.phy2log, stats, h["ep_size"], h["tokens_per_gpu"], *settings,
                  study.replica_rule)
    sections.append(graph_section(cluster, res, f"{h['tokens_per_gpu']} tokens per GPU under the {chosen} placement"))
    assumptions = [["model", h["model"]], ["cluster", h["cluster"]], ["EP group", h["ep_size"]],
                   ["slots per layer", f"{h['slots']} ({h['redundant']} redundant)"],
                   ["tokens per GPU per step", h["tokens_per_gpu"]], ["replica rule", rule_words(study.replica_rule)],
                   ["transport (for the times)", traffic["transport"]]]
    sections.append(Section("Assumptions", "What the figures above assume.",
                            table_html(assumptions, ["assumption", "value"])))
    return page(f"{h['model']}: expert placement on {h['cluster']}, EP {h['ep_size']}",
                "Where each MoE layer's experts live on the GPUs, how evenly that spreads the work, and how much "
                "dispatch and combine traffic it sends over the slow links.", sections, command)


def place_report(study: Any, chosen: str, model: Any, cluster: Any, stats_paths: Sequence[str] | None,
                 routing: str | None, traffic: dict, command: str = "") -> str:
    """:func:`place_page` on all the statistics: those the study measured on when nothing was held out (its
    traffic counts then serve the page), else read again from the ``--stats`` files or ``--routing`` spec."""
    h = study.header
    stats = study.whole if study.whole is not None else place_statistics(
        stats_paths, routing, model, h["ep_size"] * h["tokens_per_gpu"], traffic["seed"])
    return place_page(study, chosen, model, cluster, stats, traffic, command)
