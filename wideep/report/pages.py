"""The HTML pages of ``plan``, ``compare`` and ``search``: what a procurement reader needs, figure by figure.

Each page is built from the same data the command prints with ``--json`` (plus, for a plan's cluster
graph, the link loads of its decode step, :func:`decode_links`). Sections open with a paragraph saying what
the figure shows and how to read it, so the page stands without the README.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from wideep.perf.cost import usd_per_mtok
from wideep.perf.roofline import ORIGIN_WORDS, kernel_origin
from wideep.plan.comparison import RESOURCE_WORDS, plans_note
from wideep.report import figures, graphfig
from wideep.report.html import Section, figure_html, page, paragraphs, pre, table_html
from wideep.report.tables import pools_words

PARETO_TEXT = ("Each line is one system's Pareto front: the configurations no other configuration of the same "
               "system beats on both axes. Left to right, each user gets tokens faster (smaller batches, more "
               "speculation); bottom to top, each GPU serves more tokens in total (bigger batches). A line above "
               "another at a given interactivity serves more tokens per GPU there. Points are modelled, not measured.")
SWEEP_TEXT = ("Each line is one system's decode batch sweep at the table's settings: one point per batch size that "
              "fits in HBM. Left to right, each user gets tokens faster (smaller batches); bottom to top, each GPU "
              "serves more tokens in total (bigger batches). A line above another at a given interactivity serves "
              "more tokens per GPU there. Points are modelled, not measured.")
COST_TEXT = ("Top: the cheapest price per million tokens each system reaches while giving every user at least the "
             "interactivity on the x axis (log scale; a line stops where the system cannot go faster). Bottom: each "
             "system's price divided by the first system's at the same interactivity; below the dashed line it is "
             "cheaper. A single 'N times cheaper' claim is one point of this curve: the ratio depends on the "
             "interactivity asked for, and grows where the first system approaches its fastest reply.")
TERMS_TEXT = ("Where the decode step's time goes, term by term, for {what}. The coloured bar is the modelled time, "
              "its colour the resource that binds that term; the hatched bar is its speed of light (SOL): the time "
              "if that resource ran at its datasheet peak with no latency. The gap between them is what better "
              "kernels or communication could still win. {overlap}")
#: The last sentence of TERMS_TEXT, by the decode step's micro-batches.
OVERLAP_TEXT = {1: "One micro-batch: nothing overlaps, so the terms add up to the step.",
                2: "Two micro-batches overlap communication with compute, so the terms add up to more than the step."}
GRAPH_TEXT = ("The cluster as wideep models it: GPUs (circles), NVLink switches (green; one node stands for a "
              "domain's switch chips), NICs (red) and the leaf and spine switches of the scale-out network. Each "
              "link is coloured by how long {what} keeps it busy (bytes over bandwidth, the busier direction), as a "
              "share of the busiest link; the binding link, which sets the phase's time, is drawn thick and named. "
              "An 8-GPU HGX board is a ring of GPUs around its NVSwitch with one NIC per GPU outside it; an NVL72 "
              "rack is 18 trays of 4 GPUs around its NVSwitch trays, each GPU's square coloured by its NVLink link.")


def validation(source: str) -> str:
    """How the calibration file/table behind a term was obtained, and whether it was fitted or held out."""
    if "[overlap]" in source:
        return ("fitted end to end on one case (DeepSeek's decode profile, H800 EP128); every other end-to-end "
                "case is held out")
    if source.startswith("transports/"):
        return ("fixed cost, bandwidth ramp and kernel limits fitted on a few measured series of one kernel "
                "build (per GPU where the file has a [gpu] table); its other measured series are held out")
    if source.startswith("collectives/"):
        return "collective model fitted on one measured series (8-GPU H200 custom all-reduce); the others are held out"
    if source.startswith("counted on"):
        return "counted on a routing sample drawn for the plan: nothing fitted"
    if source.startswith("estimate"):
        return "the even-spread estimate of the experts a rank reads: nothing fitted"
    origin = kernel_origin(source)
    return ORIGIN_WORDS[origin] + (", taken for every GPU: an assumption" if origin == "published" else "")


def calibration_table(calibration: dict) -> str:
    """Term, calibration file [table], how it was obtained."""
    return table_html([[t, s, validation(s)] for t, s in calibration.items()],
                      ["term", "calibration file [table]", "obtained how (fitted or held out)"])


def rule_words(rule: str) -> str:
    """A replica rule's name and what it does (which copy of a replicated expert a token uses)."""
    from wideep.slots import RULE_WORDS

    return f"{rule}: {RULE_WORDS[rule]}" if rule in RULE_WORDS else rule


def batch_words(d: dict) -> str:
    """``64 sequences/GPU``, or per attention group under tensor parallelism."""
    return f"{d['batch']} sequences/" + ("GPU" if d.get("tp", 1) <= 1 else f"attention group of {d['tp']} GPUs")


def assumptions_rows(d: dict) -> list[list[Any]]:
    """The assumptions behind a plan dict as (what, value) rows."""
    ep = d.get("expert_parallel", {})
    return [["model", d["model"]], ["system, GPUs", f"{d['system']} x{d['gpus']} ({d['gpu']})"],
            ["price", f"${d['usd_per_gpu_hour']:.2f} per GPU-hour ({d['cost']['price_scenario']})"],
            ["power", f"{d['kW_per_gpu']} kW per GPU, all-in"],
            ["layout, batch, context", f"{d.get('layout', 'EP ' + str(d['ep']))}, {batch_words(d)}, "
                                       f"{d['context']:,} tokens"],
            ["precision, MTP", f"{d['dtype']}, {d['mtp']} draft tokens"],
            ["expert placement", d["placement"]], ["replica rule", rule_words(d["replica_rule"])],
            ["routing statistics", ep.get("routing", "-")],
            ["transport", ep.get("transport") or "none: the attention group spans the EP group, so no all-to-all"],
            ["prompt / output tokens per request", f"{d['cost']['isl']} / {d['cost']['osl']}"]]


def plan_rows(d: dict) -> list[list[Any]]:
    """The headline figures of one plan, with units."""
    m = d["memory"]
    return [["tokens/s per GPU (decode)", d["tokens_per_s_per_gpu"]], ["tokens/s per user", d["tokens_per_s_per_user"]],
            ["decode step [ms]", d["step_ms"]], ["step / speed of light", d["sol_ratio"]],
            ["binding resource", RESOURCE_WORDS.get(d["binding"], d["binding"])],
            ["$ per million output tokens", d["usd_per_mtok_output"]],
            ["$ per million input tokens", d["usd_per_mtok_input"]],
            [f"$ per million tokens at ISL {d['cost']['isl']}/OSL {d['cost']['osl']}", d["usd_per_mtok_mix"]],
            ["output tokens/s per MW (fleet)", d["tokens_per_s_per_MW"]],
            ["dispatch binding link (tier), as the step model counts it",
             f"{d['expert_parallel']['binding_link']} ({d['expert_parallel']['binding_tier']})"],
            ["memory per GPU [GB]", f"{m['total_GB']:.1f} of {m['usable_GB']:.0f} ({'fits' if m['fits'] else 'does not fit'})"]]


def decode_links(p: Any) -> tuple[Any, Any] | None:
    """(cluster, :class:`wideep.traffic.a2a.A2AResult`) of a plan's decode step: its placement and routing
    sample, its tokens per GPU; None where no all-to-all runs (no expert parallelism, or tensor parallelism
    over the whole EP group)."""
    from wideep.plan.deployment import objective_basis, redundant_of
    from wideep.plan.ep_group import TRANSPORTS, cluster_for, placed
    from wideep.traffic.a2a import a2a

    s = p.spec
    if not p.model.is_moe or not s.dispatches:
        return None
    wl = s.workload("decode")
    phy2log, stats = placed(p.model, s.topology, s.ep, redundant_of(s, p.model), s.routing, s.placement, s.seed,
                            s.replica_rule, objective_basis(s, "decode"))
    cluster = cluster_for(s.topology, s.ep)
    res = a2a(p.model, cluster, phy2log, stats, s.ep, max(1, round(wl.batch * wl.tokens_per_sequence / s.tp)),
              s.transport or TRANSPORTS["decode"], s.dispatch_dtype, s.combine_dtype, s.seed, s.replica_rule)
    return cluster, res


def graph_section(cluster: Any, res: Any, what: str, step: tuple[float, float] | None = None) -> Section:
    """The cluster graph of one all-to-all result, with its explanation; ``step``: (dispatch, combine) us the
    plan's curve gives at the same tokens (traffic counted at ``COMM_PROBE_TOKENS`` and scaled in proportion)."""
    from wideep.plan.deployment import COMM_PROBE_TOKENS

    svg = graphfig.graph_svg(cluster, res.link_bytes, {"dispatch": res.binding_link, "combine": res.combine_binding_link},
                             f"{cluster.name}: dispatch and combine of {what}")
    s = res.summary()
    cap = (f"dispatch {s['dispatch_us']:.1f} us (SOL {s['dispatch_sol_us']:.1f}), bound by {s['binding_link']} "
           f"({s['binding_tier']}); combine {s['combine_us']:.1f} us (SOL {s['combine_sol_us']:.1f}), bound by "
           f"{s['combine_binding_link']} ({s['combine_binding_tier']}); per MoE layer, {s['transport']}."
           + (f" The plan's curve, which scales the traffic counted at {COMM_PROBE_TOKENS:,} tokens per GPU in "
              f"proportion, gives {step[0]:.1f} and {step[1]:.1f} us at these tokens (a step of two micro-batches "
              "reads it at half the tokens, twice)." if step else ""))
    return Section(f"The cluster graph: {cluster.name}", GRAPH_TEXT.format(what="dispatch and combine (one panel each)"),
                   figure_html(svg, cap, "graph"))


def step_sections(p: Any, d: dict, what: str = "") -> list[Section]:
    """One plan's decode step by term and, with expert parallelism, its cluster graph (``d``: ``p.to_dict()``;
    ``what``: a clause after the system's name in the terms text, e.g. which row of a table)."""
    name = f"{d['system']} x{d['gpus']}"
    out = [Section(f"{name}: where the step goes",
                   TERMS_TEXT.format(what=name + what, overlap=OVERLAP_TEXT[p.decode.micro_batches]),
                   figure_html(figures.terms_svg(d["terms"], d["step_ms"], f"{name}: decode step by term"),
                               f"decode step {d['step_ms']:.2f} ms, {d['sol_ratio']:.2f}x its SOL, bound by "
                               f"{RESOURCE_WORDS.get(d['binding'], d['binding'])}", "terms"))]
    links = decode_links(p)
    if links is not None:
        step = tuple(1e6 * curve.at(links[1].tokens_per_gpu)[0] for curve in (p.ep.dispatch, p.ep.combine))
        out.append(graph_section(*links, f"one decode step's {batch_words(d)}", step))
    return out


def plan_sections(p: Any) -> list[Section]:
    """Summary, step terms, cluster graph and assumptions of one plan."""
    d = p.to_dict()
    name = f"{d['system']} x{d['gpus']}"
    out = [Section(f"{name}: the answer", f"The headline figures of {d['model']} on {name}, with their units.",
                   table_html(plan_rows(d), ["figure", "value"]))] + step_sections(p, d)
    out.append(Section(f"{name}: assumptions and calibration",
                       "What the numbers above assume, and for each term of the step the calibration file that set "
                       "its efficiency, with how that file was obtained.",
                       table_html(assumptions_rows(d), ["assumption", "value"]) + calibration_table(d["calibration"])))
    return out


def plan_page(plans: Sequence[Any], why: str = "", command: str = "") -> str:
    """``wideep plan --html``: one plan, or the default Hopper-versus-Blackwell comparison."""
    d0 = plans[0].to_dict()
    title = (f"{d0['model']} on " + " vs ".join(f"{p.system} x{p.gpus}" for p in plans) + ": one deployment planned")
    lead = ("How fast and at what price this deployment serves the model, what binds each part of its decode step, "
            "and how the expert-parallel all-to-all loads the cluster's links. " + why)
    return page(title, lead + as_sentence(plans_note(plans)), [s for p in plans for s in plan_sections(p)], command)


def as_sentence(note: str) -> str:
    """`` Note...``: a lower-case note appended to a paragraph as its own sentence ('' for none)."""
    return " " + note[0].upper() + note[1:] + "." if note else ""


def compare_page(rep: dict, model: str, command: str = "", plans: Sequence[Any] = ()) -> str:
    """``wideep compare --html``: the procurement rows, the interactivity curves, the cost ratio and, per
    system, the decode step and cluster graph of its first row's plan (``plans``: the rows' plans, in order)."""
    from wideep.plan.sweep import COLUMNS

    rows = rep["rows"]
    sections = [Section("The procurement table", "One row per system and configuration; units are in the headers. "
                        "tokens/s/GPU is decode throughput per GPU; $/Mtok output is the GPU-hour price over the "
                        "tokens a GPU serves in an hour." + as_sentence(rep.get("note", "")),
                        table_html([[r[k] for k, _ in COLUMNS] for r in rows], [h for _, h in COLUMNS]))]
    curves = rep.get("curves") or {}
    if any(curves.values()):
        sections.append(Section("Throughput against interactivity", SWEEP_TEXT,
                                figure_html(figures.pareto_svg(curves, f"{model}: decode batch sweep"),
                                            "one point per batch size that fits in HBM", "pareto")))
        price = {r["system"]: r["usd_per_gpu_hour"] for r in rows}
        cost = {s: [(r["tokens_per_s_per_user"], None if r[s] is None else
                     usd_per_mtok(price[s], r[s]["tokens_per_s_per_gpu"])) for r in rep["lead"]["rows"]]
                for s in curves}
        sections.append(Section("Cost per token against interactivity", COST_TEXT,
                                figure_html(figures.cost_svg(cost, f"{model}: $ per million output tokens"),
                                            "decode only, at each system's catalog GPU-hour price", "cost")))
    sections.append(Section("Assumptions", "Shared by every row.", table_html(
        [["placement", rep.get("placement")], ["replica rule", rule_words(rep.get("replica_rule", ""))],
         ["prices", ", ".join(f"{r['system']} ${r['usd_per_gpu_hour']}/GPU-hour" for r in rows)]],
        ["assumption", "value"])))
    for p in first_per_system(plans):
        d = p.to_dict()
        sections += step_sections(p, d, f" (its first row of the table: {d.get('layout', 'EP ' + str(d['ep']))}, "
                                        f"{batch_words(d)})")
    return page(f"{model}: " + " vs ".join(dict.fromkeys(r["system"] for r in rows)),
                "The procurement comparison: tokens per GPU, tokens per user and price per token per system.",
                sections, command)


def first_per_system(plans: Sequence[Any]) -> list[Any]:
    """The first plan of each system, in order."""
    first: dict = {}
    for p in plans:
        first.setdefault(p.system, p)
    return list(first.values())


def best_plan(spec: Any, system: str, best: dict) -> Any:
    """The decode plan behind a search point (same EP, batch, MTP, precision, transport and placement)."""
    from wideep.plan import plan
    from wideep.plan.search import ALLGATHER, as_launched

    transport = ALLGATHER if best.get("transport") == ALLGATHER else spec.transport
    return plan(as_launched(replace(spec, topology=system, ep=best["ep"], tp=best["tp"], mtp=best["mtp"],
                                    batch=best["batch"], dtype=best["dtype"], redundant=None, transport=transport,
                                    gpus=None if best["ep"] > 1 else best["tp"])))


def best_table(result: dict) -> str:
    keys = ["mode", "tp", "ep", "batch", "mtp", "dtype", "prefill_gpus", "decode_gpus", "usd_per_mtok",
            "tokens_per_s_per_gpu", "tokens_per_s_per_user", "ttft_ms", "tpot_ms", "binding"]
    heads = ["mode", "TP", "EP", "batch [seq/attention group]", "MTP", "dtype", "prefill GPUs", "decode GPUs",
             "$/Mtok (mix)",
             "tokens/s/GPU (fleet)", "tokens/s/user", "TTFT [ms]", "TPOT [ms]", "binds"]
    rows = [[f"{s} ({r['candidates']} fit)"] + ([r["best"][k] for k in keys] + [pools_words(r["best"])[2:-1] or "-"]
                                                if r["best"] else
                                                ["no configuration meets the targets"] + [None] * len(keys))
            for s, r in result.items()]
    return table_html(rows, ["system (configurations that fit)"] + heads + ["disaggregated pools"])


def search_cost_curves(result: dict, ratio: Sequence[dict]) -> dict:
    """{system: [(tokens/s/user, $/Mtok or None)]} from the cost-ratio rows, or a lone system's front."""
    if ratio:
        return {s: [(r["tokens_per_s_per_user"], r[s]["usd_per_mtok"] if r[s] else None) for r in ratio]
                for s in result}
    return {s: [(q["tokens_per_s_per_user"], q["usd_per_mtok"]) for q in r["pareto"]] for s, r in result.items()}


def targets_words(targets: Any) -> str:
    """``Targets`` in words: 'TPOT <= 20 ms (50 tokens/s per user), TTFT <= 1000 ms' or 'no targets given'."""
    words = []
    if targets.tpot_ms is not None:
        words.append(f"TPOT <= {targets.tpot_ms:g} ms ({1000 / targets.tpot_ms:.3g} tokens/s per user)")
    if targets.ttft_ms is not None:
        words.append(f"TTFT <= {targets.ttft_ms:g} ms")
    return ", ".join(words) or "no targets given: the cheapest configuration at any speed"


def search_page(result: dict, ratio: Sequence[dict], spec: Any, targets: Any, command: str = "") -> str:
    """``wideep search --html``: the cheapest configuration per system, fronts, cost ratio, the best's step."""
    title = f"{spec.model}, ISL {spec.isl} / OSL {spec.osl}: " + " vs ".join(result)
    fronts = {s: [(q["tokens_per_s_per_user"], q["tokens_per_s_per_gpu"]) for q in r["pareto"]]
              for s, r in result.items()}
    sections = [Section("The answer: cheapest configuration per system",
                        f"For each system, the cheapest configuration found that meets the targets ({targets_words(targets)}). "
                        "Price is per million tokens of the prompt/output mix; throughput counts the whole fleet, "
                        "prefill GPUs included; TTFT is time to first token, TPOT time per output token.",
                        best_table(result)),
                Section("Throughput against interactivity (Pareto fronts)", PARETO_TEXT,
                        figure_html(figures.pareto_svg(fronts, f"{spec.model} ISL {spec.isl}/OSL {spec.osl}"),
                                    "aggregated and disaggregated serving, every EP size, MTP and batch searched",
                                    "pareto")),
                Section("Cost per token against interactivity, and the cost ratio", COST_TEXT,
                        figure_html(figures.cost_svg(search_cost_curves(result, ratio), f"{spec.model}: $ per "
                                                     "million tokens (ISL/OSL mix)"), "step curves: the cheapest "
                                    "Pareto point giving at least that interactivity", "cost"))]
    for system, r in result.items():
        if r["best"]:
            sections += best_sections(spec, system, r)
    return page(title, "Which system serves this model cheapest at these prompt and output lengths, and how the "
                "answer changes with the interactivity each user is promised.", sections, command)


def best_sections(spec: Any, system: str, r: dict) -> list[Section]:
    """The best point's step terms and assumptions, and its launch flags."""
    p = best_plan(spec, system, r["best"])
    d = p.to_dict()
    layout = d.get("layout", f"EP {d['ep']}")
    out = step_sections(p, d, f"'s best configuration ({layout}, batch {d['batch']}, MTP {d['mtp']}, {d['dtype']})")
    out += [Section(f"{system}: assumptions and calibration", "The price and settings behind the best configuration, "
                   "and the calibration file that set each term's efficiency, with how it was obtained.",
                   table_html(assumptions_rows(d), ["assumption", "value"]) + calibration_table(d["calibration"]))]
    if r.get("deploy"):
        out.append(Section(f"{system}: how to launch it", "The engines' flags for the best configuration (check them "
                           "against your engine version).",
                           "".join(paragraphs(e) + pre(t) for e, t in r["deploy"].items())))
    return out
