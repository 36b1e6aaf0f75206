"""Renderers: plain-text tables for people, JSON for scripts, CSV for spreadsheets."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Iterable, Sequence

from wideep.report import svg
from wideep.core import units
from wideep.core.fileio import write_atomic, write_text_atomic
from wideep.core.errors import InputError


def fmt(value: Any) -> str:
    """A cell: floats with three significant figures at most after the point, big ones with separators."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return "-" if value is None else str(value)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """Align ``rows`` under ``headers``; numbers right-aligned.

    >>> print(table([["a", 1.5]], ["name", "x"]))
    name    x
    ----  ---
    a     1.5
    """
    cells = [[fmt(v) for v in row] for row in rows]
    raw = [list(row) for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in raw if r[i] is not None)
               and any(r[i] is not None for r in raw) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table: the header, its rule, one line per row (cells as ``str`` gives them)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in r) + " |" for r in rows])


def to_json(obj: Any) -> str:
    """JSON text with numpy scalars and arrays converted."""
    return json.dumps(obj, indent=2, default=_plain)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --- plan / compare renderers ---------------------------------------------------------------------------

def write_csv(path: str, rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> None:
    """Write ``rows`` (dicts) under the headers of ``columns`` [(key, header with units), ...] as CSV."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow([h for _, h in columns])
    w.writerows([[_cell(r.get(k)) for k, _ in columns] for r in rows])
    write_text_atomic(path, buf.getvalue(), "--csv")


def xlsx_module() -> Any:
    """openpyxl, the optional dependency of XLSX output; missing, a one-line error on ``--xlsx``."""
    try:
        import openpyxl
    except ImportError:
        raise InputError("XLSX output needs openpyxl: pip install 'wideep[xlsx]' (or use --csv)", "--xlsx") from None
    return openpyxl


def write_xlsx(path: str, rows: Sequence[dict], columns: Sequence[tuple[str, str]], sheet: str = "wideep") -> None:
    """Write the same table as :func:`write_csv` to an XLSX workbook (needs the optional openpyxl)."""
    wb = xlsx_module().Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append([h for _, h in columns])
    for r in rows:
        ws.append([_cell(r.get(k)) for k, _ in columns])
    write_atomic(path, lambda tmp: wb.save(tmp), "--xlsx")


def write_curves_svg(path: str, curves: dict[str, list[list[float]]], title: str,
                     empty: str = "no batch of the sweep fits in HBM on any system") -> None:
    """Tokens/s per GPU against tokens/s per user, one line per system, as an SVG picture; ``empty`` says why
    there would be nothing to draw."""
    if not any(curves.values()):
        raise InputError(f"nothing to draw: {empty}", "--svg")
    chart = svg.line_chart({name: [(u, g) for u, g in pts] for name, pts in curves.items() if pts}, title,
                           "tokens/s per user (interactivity)", "tokens/s per GPU (throughput)")
    write_text_atomic(path, chart, "--svg")


def _cell(value: Any) -> Any:
    """Spreadsheet cell: numbers stay numbers (numpy scalars converted), None becomes empty."""
    if value is None:
        return ""
    return value.item() if hasattr(value, "item") else value


def by_source(calibration: dict) -> dict[str, list[str]]:
    """{source: [terms]} from {term: source}, in first-seen order."""
    out: dict[str, list[str]] = {}
    for term, src in calibration.items():
        out.setdefault(src, []).append(term)
    return out


def parallel_words(d: dict) -> str:
    """``EP 32, batch 64/GPU``; with attention TP, the layout and the batch per attention group."""
    if d.get("tp", 1) <= 1:
        return f"EP {d['ep']}, batch {d['batch']}/GPU"
    return f"{d['layout']}, batch {d['batch']}/attention group"


def plan_text(d: dict) -> str:
    """Human rendering of one plan's dict (:meth:`wideep.plan.Plan.to_dict`)."""
    head = (f"{d['model']} on {d['system']} x{d['gpus']} ({d['gpu']}), {parallel_words(d)}, "
            f"context {d['context']:,}, {d['dtype']}, overlap {d['overlap']}, MTP {d['mtp']}, "
            f"placement {d['placement']}, replica rule {d['replica_rule']}")
    terms = table([[t["name"], t["ms"], t["sol_ms"], t["binding"], 100 * t["ms"] / d["step_ms"]] for t in d["terms"]],
                  ["term", "ms", "SOL ms", "binds", "% of step"])
    m = d["memory"]
    lines = [head, "", terms, "",
             f"decode step {d['step_ms']:.2f} ms ({d['sol_ratio']:.2f}x SOL), bound by {d['binding']}; "
             f"{d['tokens_per_s_per_gpu']:,.0f} tokens/s/GPU, {fmt(d['tokens_per_s_per_user'])} tokens/s/user",
             f"prefill ({d['prefill']['micro_batches']} micro-batches) {d['prefill']['step_ms']:.1f} ms per chunk, "
             f"{d['prefill']['tokens_per_s_per_gpu']:,.0f} prompt tokens/s/GPU, bound by {d['prefill']['binding']}",
             f"cost at ${d['usd_per_gpu_hour']:.2f}/GPU-hour ({d['cost']['price_scenario']}): "
             f"${d['usd_per_mtok_output']:.3f}/Mtok output, ${d['usd_per_mtok_input']:.3f}/Mtok input, "
             f"${d['usd_per_mtok_mix']:.3f}/Mtok at ISL {d['cost']['isl']}/OSL {d['cost']['osl']}; "
             f"fleet (prefill GPUs included) {d['tokens_per_s_per_MW']:,.0f} output tokens/s per MW, {d['joules_per_token']:.2f} J/output token",
             f"memory per GPU: weights {m['weights_GB']:.1f} GB + KV {m['kv_GB']:.1f} GB + workspace "
             f"{m['workspace_GB']:.1f} GB = {m['total_GB']:.1f} of {m['usable_GB']:.0f} GB "
             f"({'fits' if m['fits'] else 'DOES NOT FIT'}); max batch {m['max_batch']:,} at this context, "
             f"max context {m['max_context']:,} at this batch"]
    if d.get("calibration"):
        lines.append("calibration: " + "; ".join(f"{src} ({', '.join(terms)})"
                                                 for src, terms in by_source(d["calibration"]).items()))
    return "\n".join(lines)


def comparison_text(d: dict) -> str:
    """Side-by-side table of plans (:meth:`wideep.plan.Comparison.to_dict`) and the reason they differ."""
    plans = d["plans"]
    keys = [("tokens_per_s_per_gpu", "tokens/s/GPU"), ("tokens_per_s_per_user", "tokens/s/user"),
            ("step_ms", "step ms"), ("sol_ratio", "x SOL"), ("binding", "binding"),
            ("usd_per_mtok_output", "$/Mtok out"), ("usd_per_mtok_input", "$/Mtok in"),
            ("tokens_per_s_per_MW", "tokens/s per MW")]
    rows = [[h] + [p[k] for p in plans] for k, h in keys]
    rows += [[f"{name} ms"] + [p["breakdown_ms"].get(name, 0.0) for p in plans]
             for name in dict.fromkeys(n for p in plans for n in p["breakdown_ms"])]
    rows.append(["memory GB"] + [f"{p['memory']['total_GB']:.0f}/{p['memory']['usable_GB']:.0f}" for p in plans])
    p0 = plans[0]
    head = (f"{p0['model']}, {parallel_words(p0)}, context {p0['context']:,}, {p0['dtype']}, "
            f"placement {p0['placement']}, replica rule {p0['replica_rule']}")
    return "\n".join([head, "", table(rows, [""] + [f"{p['system']} x{p['gpus']}" for p in plans]), "", d["why"]]
                     + ([d["note"]] if d.get("note") else []))


def compare_text(rep: dict, columns: Sequence[tuple[str, str]]) -> str:
    """The procurement rows as a table and, when present, who leads at each interactivity."""
    text = table([[r[k] for k, _ in columns] for r in rep["rows"]], [h for _, h in columns])
    if "replica_rule" in rep:
        text += f"\nplacement {rep['placement']}, replica rule {rep['replica_rule']}"
    if rep.get("note"):
        text += "\n" + rep["note"]
    lead = rep.get("lead")
    if lead:
        systems = [k for k in lead["rows"][0] if k not in ("tokens_per_s_per_user", "leader")] if lead["rows"] else []
        rows = [[r["tokens_per_s_per_user"]] + [None if r[s] is None else r[s]["tokens_per_s_per_gpu"] for s in systems]
                + [r["leader"]] for r in lead["rows"]]
        verdict = (f"{lead['ahead_everywhere']} leads at every interactivity covered" if lead["ahead_everywhere"]
                   else "no system leads at every interactivity" if lead["rows"]
                   else "no batch of the sweep fits in HBM on any system")
        text += ("\n\nbest tokens/s/GPU at >= each tokens/s/user (batch sweep):\n"
                 + table(rows, ["tokens/s/user"] + systems + ["leader"]) + "\n" + verdict)
    return text


def a2a_text(s: dict) -> str:
    """``wideep a2a``: one row per phase (times per MoE layer, GB per tier) with its binding link."""
    rows = [[p, s[f"{p}_us"], s[f"{p}_sol_us"], s[f"{p}_latency_us"], s[f"{p}_logical_GBps"],
             s["bytes_by_tier"][p]["nvlink"] / units.GB, s["bytes_by_tier"][p]["scale_out"] / units.GB,
             s["binding_link" if p == "dispatch" else "combine_binding_link"]] for p in ("dispatch", "combine")]
    return (f"{s['transport']}, EP{s['ep_size']}, {s['tokens_per_gpu']} tokens/GPU, replica rule {s['replica_rule']} "
            f"(times per MoE layer, mean over layers)\n"
            + table(rows, ["phase", "us", "SOL us", "fixed us", "GB/s per GPU", "NVLink GB", "scale-out GB",
                           "binding link"]))


# --- placement ----------------------------------------------------------------------------------------

PLACE_COLS = [("algorithm", "algorithm"), ("layer_ms", "layer ms"), ("experts_ms", "experts ms"),
              ("balancedness_mean", "bal mean"), ("balancedness_min", "bal min"),
              ("busiest_gpu_selections", "busiest GPU"), ("cross_domain_copies_per_token", "x-domain/tok"),
              ("cross_gpu_copies_per_token", "x-GPU/tok"), ("dispatch_us", "dispatch us"),
              ("combine_us", "combine us"), ("time_over_sol", "x SOL"), ("runtime_s", "runtime s")]
#: Held-out columns, each placed right after its in-sample column.
HELD_OUT_COLS = {"layer_ms": "layer ms HO", "balancedness_mean": "bal mean HO", "balancedness_min": "bal min HO",
                 "cross_domain_copies_per_token": "x-domain/tok HO"}
VERSUS_WORDS = {"layer_ms": "layer ms", "cross_domain_copies_per_token": "x-domain/tok", "balancedness_mean": "bal mean",
                "balancedness_min": "bal min"}


def place_text(header: dict, rows: list[dict], split: str | None = None, wrote: str | None = None) -> str:
    """``wideep place``: a title line, one row per algorithm (held-out columns beside in-sample ones when the
    statistics were split), how they were split, each algorithm against ``balanced``, the file written."""
    from wideep.slots import RULE_WORDS  # numpy: loaded by the place command only

    h = header
    title = (f"{h['model']} on {h['cluster']}, EP {h['ep_size']}, {h['slots']} slots ({h['redundant']} redundant), "
             f"{h['tokens_per_gpu']} tokens/GPU, replica rule {h['replica_rule']} ({RULE_WORDS[h['replica_rule']]})")
    cols = []
    for key, head in PLACE_COLS:
        cols.append((key, head, False))
        if split is not None and key in HELD_OUT_COLS:
            cols.append((key, HELD_OUT_COLS[key], True))

    def cell(r: dict, key: str, held: bool) -> Any:
        return (r.get("held_out") or {}).get(key) if held else r[key]

    lines = [title, table([[cell(r, k, ho) for k, _, ho in cols] for r in rows], [c for _, c, _ in cols])]
    if len(rows) > 1:
        best = next(r for r in rows if r.get("best"))
        held = (best.get("held_out") or {}).get("layer_ms")
        fastest_held = min((r["held_out"]["layer_ms"] for r in rows if r.get("held_out")), default=None)
        lines.append(f"best by predicted MoE layer time (busiest GPU: routed experts + dispatch + combine): "
                     f"{best['algorithm']}, {best['layer_ms']:.3f} ms in sample"
                     + ("" if held is None else f", {held:.3f} ms held out"
                        + (" (also the fastest held out)" if held <= fastest_held + 1e-12 else
                           f" (fastest held out: {fastest_held:.3f} ms)")))
    if split is not None:
        lines.append(f"HO = held out: {split}")
        for r in rows:
            vs = r.get("vs_balanced")
            if vs:
                lines.append(f"{r['algorithm']} vs balanced: " + "; ".join(
                    f"{VERSUS_WORDS[k]} {100 * v['in_sample']:+.1f}% in sample"
                    + ("" if v["held_out"] is None else f", {100 * v['held_out']:+.1f}% held out")
                    + f": {v['verdict']}" for k, v in vs.items()))
    if wrote:
        lines.append(wrote)
    return "\n".join(lines)


def pools_words(point: dict) -> str:
    """' (2 prefill instances of tp 1 ep 8 for 5 decode instances)' for a disaggregated point, else ''."""
    if point["mode"] != "disagg":
        return ""
    return (f" ({point['prefill_instances']} prefill instance(s) of tp {point['prefill_tp']} ep {point['prefill_ep']}"
            f" for {point['decode_instances']} decode instance(s))")


def search_text(result: dict, columns: Sequence[tuple[str, str]], ratio: Sequence[dict] = (), note: str = "") -> str:
    """Per system: the best configuration under the targets, then its Pareto front; then the cost ratio and
    ``note`` (:func:`wideep.plan.comparison.calibration_note`)."""
    keys = [k for k, _ in columns if k not in ("system", "best")]
    parts = []
    for system, r in result.items():
        best = r["best"]
        moe_tp = f" (MoE TP{best['moe_tp']})" if best and best.get("moe_tp", 1) > 1 else ""
        head = (f"{system}: best under the targets: {best['mode']} tp {best['tp']} ep {best['ep']}{moe_tp} batch "
                f"{best['batch']} mtp {best['mtp']} {best['dtype']}{pools_words(best)}, "
                f"${best['usd_per_mtok']:.3f}/Mtok, "
                f"{fmt(best['tokens_per_s_per_gpu'])} tokens/s/GPU, {fmt(best['tokens_per_s_per_user'])} tokens/s/user, "
                f"TTFT {fmt(best['ttft_ms'])} ms, TPOT {fmt(best['tpot_ms'])} ms, bound by {best['binding']}"
                if best else f"{system}: no configuration meets the targets ({r['candidates']} candidates fit)")
        front = table([[q[k] for k in keys] for q in r["pareto"]], [h for k, h in columns if k in keys])
        launch = "".join(f"\n{engine}:\n{text}" for engine, text in r.get("deploy", {}).items())
        parts.append(head + "\nPareto front:\n" + front + ("\n\nlaunch (best):" + launch if launch else ""))
    if ratio:
        first, others = list(result)[0], list(result)[1:]
        cells = [[r["tokens_per_s_per_user"]] + [c for t in result for c in
                 ((r[t]["usd_per_mtok"], r[t]["binding"]) if r[t] else ("-", "-"))]
                 + [r["ratio"][t] if r["ratio"][t] is not None else "-" for t in others] for r in ratio]
        heads = (["tokens/s/user"] + [h for t in result for h in (f"{t} $/Mtok", f"{t} binds")]
                 + [f"{t} / {first}" for t in others])
        parts.append("cost ratio by interactivity (cheapest point giving at least that many tokens/s/user):\n"
                     + table(cells, heads))
    return "\n\n".join(parts + ([note] if note else []))
