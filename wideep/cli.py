"""The ``wideep`` command: parse options, call one library function, render. No arithmetic here."""

from __future__ import annotations

import functools
import importlib
import inspect
import shlex
import sys
from typing import Any, Callable, List, Optional

import typer

from wideep import __version__
from wideep.core.errors import InputError, WideEPError
from wideep.core.fileio import check_writable
from wideep.plan.spec import PlanSpec


class LazyModule:
    """A module imported on its first attribute access (``report.table`` below loads wideep.report.tables)."""

    def __init__(self, name: str):
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.name), attr)


report = LazyModule("wideep.report.tables")
catalog = LazyModule("wideep.core.catalog")
units = LazyModule("wideep.core.units")
progress = LazyModule("wideep.core.progress")

# Everything else (the catalogs and models, and numpy, scipy and networkx behind the rest) loads inside the
# commands that use it, so ``wideep --help`` and option errors answer at once. ``rich_markup_mode=None``:
# click's plain help, which shows a flag as a flag (rich renders ``--json <bool>``) and needs no rich import.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Plan MoE inference with wide expert parallelism over cluster graphs.")


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"wideep {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Plan MoE inference with wide expert parallelism over cluster graphs."""
models_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The model catalog.")
topologies_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The GPU and system catalogs.")
app.add_typer(models_app, name="models")
app.add_typer(topologies_app, name="topologies")

JSON = typer.Option(False, "--json", help="Machine-readable JSON on stdout, nothing else there.")

CALIBRATION_HELP = ("Calibration TOML laid over the catalog's, or trtllm: every GPU on NVIDIA AIConfigurator's "
                    "TensorRT-LLM kernel tables (like for like across GPUs).")

HTML = typer.Option(None, "--html", help="Also write a self-contained HTML report with figures (needs 'wideep[report]').")


def html_start(path: Optional[str]) -> None:
    """Before any work: the --html path is writable and matplotlib is installed (one-line errors)."""
    if path is not None:
        check_writable(path, "--html")
        from wideep.report.figures import matplotlib_module
        matplotlib_module()


def html_write(path: Optional[str], build: Callable[[str], str]) -> str:
    """Write ``build(command line)`` to the --html path; the line to print (empty without --html)."""
    if path is None:
        return ""
    from wideep.report.html import write_page
    write_page(path, build("wideep " + shlex.join(sys.argv[1:])))
    return f"\nwrote {path}"


def out(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    """Print ``data`` as JSON or the human text ``text()``."""
    typer.echo(report.to_json(data) if as_json else text())


@models_app.command("list")
def models_list(as_json: bool = JSON) -> None:
    """List the catalog models with their size and expert layout."""
    from wideep.specs.model import load_model

    rows = [load_model(m).summary() for m in catalog.list_ids("models")]
    cols = ["id", "architecture", "attention", "routed_experts", "top_k", "total_params_B", "active_params_B"]
    out(as_json, rows, lambda: report.table([[r[c] for c in cols] for r in rows],
                                            ["id", "architecture", "attn", "experts", "top-k", "total B", "active B"]))


@models_app.command("show")
def models_show(model: str = typer.Argument(..., help="Catalog id, model TOML or HF config.json."),
                context: int = typer.Option(4096, help="Context (tokens) for KV per token and FLOPs per token."),
                as_json: bool = JSON) -> None:
    """Show one model: shapes, parameter counts (derived vs published), bytes per expert, KV and FLOPs per token."""
    from wideep.specs.model import load_model

    s = load_model(model).summary(context)
    out(as_json, s, lambda: report.table(flatten(s), ["field", "value"]))


@topologies_app.command("list")
def topologies_list(as_json: bool = JSON) -> None:
    """List the systems (topologies) and the GPUs they are built from."""
    from wideep.specs.hardware import load_system

    rows = [load_system(s).summary() for s in catalog.list_ids("systems")]
    gpus = catalog.list_ids("gpus")
    out(as_json, {"systems": rows, "gpus": gpus}, lambda: report.table(
        [list(r.values()) for r in rows], ["id", "name", "gpu", "GPUs/domain", "NVLink GB/s", "NIC Gb/s"])
        + "\n\nGPUs: " + ", ".join(gpus))


@topologies_app.command("show")
def topologies_show(topology: str = typer.Argument(..., help="System id (hgx-h100) or a topology TOML."),
                    gpus: Optional[int] = typer.Option(None, help="GPUs in the cluster (default: one domain)."),
                    as_json: bool = JSON) -> None:
    """Build the cluster graph and show its domains, per-tier bandwidth, bisection and hop counts.

    A GPU id (h100-sxm) shows that GPU's datasheet figures instead.
    """
    from wideep.specs.hardware import load_gpu
    from wideep.specs.topology import load_cluster

    is_gpu = topology in catalog.list_ids("gpus")
    if is_gpu and gpus is not None:
        raise InputError(f"{topology} is a GPU; --gpus applies to systems", "--gpus")
    s = load_gpu(topology).summary() if is_gpu else load_cluster(topology, gpus).summary()
    out(as_json, s, lambda: report.table(flatten(s), ["field", "value"]))


KV_HELP = ("KV cache layout: bf16, fp8 (the engines' fp8: fp8_ds_mla for sparse MLA, else fp8_e4m3), fp8_e4m3 "
           "(one scale per tensor; MLA 576 B/token/layer), fp8_ds_mla (FlashMLA: 656 B) or nvfp4.")


@app.command()
def kv(model: List[str] = typer.Option(..., "--model", help="Model id or file; repeat to compare."),
       context: int = typer.Option(131072, help="Context length, tokens."),
       kv_dtype: str = typer.Option("bf16", help=KV_HELP),
       as_json: bool = JSON) -> None:
    """KV-cache bytes per token and per sequence; several --model options give one comparison table."""
    from wideep.specs.model import kv_usage, load_model

    units.kv_format(kv_dtype, "--kv-dtype")
    rows = [kv_usage(load_model(m), context, kv_dtype) for m in model]
    cols = ["model", "attention", "kv_bytes_per_token", "kv_GB_total", "kv_GiB_total"]
    out(as_json, rows[0] if len(rows) == 1 else rows, lambda: f"KV cache at {context:,} tokens, {kv_dtype}\n"
        + report.table([[r[c] for c in cols] for r in rows], ["model", "attn", "B/token", "GB", "GiB"]))


SPEC = PlanSpec()  # defaults of every plan option

ROUTING_HELP = ("auto (the model's measured expert popularity, models/<id>.toml [routing]; uniform without one), "
                "uniform, zipf:S, topics:K, lognormal:G,E or a statistics file.")
RULE_HELP = ("Which copy of a replicated expert a token uses: sglang (default: SGLang's static dispatch, own GPU, "
             "else own node, else a fixed fair pick per GPU), vllm (any copy, by token hash), trtllm (round robin over "
             "every copy) or nearest (own GPU, else own NVLink domain, else any).")


@app.command("place")
def place_cmd(model: str = typer.Option(..., "--model", help="Model id or file."),
              topology: str = typer.Option(..., "--topology", help="System id or topology file."),
              gpus: int = typer.Option(..., "--gpus", help="GPUs in the cluster."),
              ep: Optional[int] = typer.Option(None, "--ep", help="EP size (default: --gpus)."),
              redundant: int = typer.Option(0, "--redundant", help="Redundant expert slots per layer."),
              stats: Optional[List[str]] = typer.Option(
                  None, "--stats", help="Routing statistics file or folder; repeat for several (merged; with "
                                        "--compare the first half places and the rest is held out)."),
              routing: Optional[str] = typer.Option(None, "--routing", help=ROUTING_HELP),
              algorithm: str = typer.Option("topology", "--algorithm",
                                            help="contiguous, balanced (EPLB hierarchical), global (EPLB global), "
                                                 "topology (fewer cross-node copies) or auto (per layer the least "
                                                 "predicted MoE layer time)."),
              compare: bool = typer.Option(False, "--compare",
                                           help="Run every algorithm side by side, in sample and held out, and "
                                                "name the best by predicted MoE layer time."),
              tokens: int = typer.Option(128, "--tokens", help="Tokens per GPU in the step measured."),
              replica_rule: str = typer.Option(SPEC.replica_rule, "--replica-rule", help=RULE_HELP),
              transport: str = typer.Option("deepep-normal", "--transport", help="Transport for the a2a time."),
              dtype: str = typer.Option("fp8", "--dtype", help="Dispatch dtype."),
              combine_dtype: str = typer.Option("bf16", "--combine-dtype", help="Combine dtype."),
              weights_dtype: str = typer.Option(SPEC.dtype, "--weights-dtype",
                                                help="Routed-expert weights the predicted layer time assumes "
                                                     "(plan --dtype): bf16, fp8, nvfp4, mxfp4 or int4."),
              calibration: Optional[str] = typer.Option(None, "--calibration", help=CALIBRATION_HELP),
              out_path: Optional[str] = typer.Option(None, "--out", help="Write the placement to this file."),
              fmt: Optional[str] = typer.Option(None, "--format",
                                                help="Format of --out: sglang (default), vllm, trtllm or json."),
              seed: int = typer.Option(0, "--seed", help="Seed of synthetic routing."),
              html: Optional[str] = HTML,
              as_json: bool = JSON) -> None:
    """Place experts (contiguous, EPLB balanced or global, or topology-aware) and measure the placement."""
    if fmt is not None and out_path is None:
        raise InputError("sets the format of the file --out writes; give --out FILE too", "--format")
    check_writable(out_path, "--out")
    html_start(html)
    from wideep.placement.files import FORMATS, write_placement
    from wideep.placement.placers import ALGORITHMS
    from wideep.plan.studies import plan_placement
    from wideep.specs.model import load_model
    from wideep.specs.topology import load_cluster

    fmt = fmt or FORMATS[0]
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})", "--format")
    m, cluster = load_model(model), load_cluster(topology, gpus)
    algorithms = list(ALGORITHMS) if compare else [algorithm]
    if html is not None:  # the page shows the chosen placement before (contiguous) and after, against EPLB
        algorithms = list(dict.fromkeys(["contiguous", "balanced", *algorithms]))
    study = plan_placement(m, cluster, gpus if ep is None else ep, redundant, tokens, algorithms, stats, routing,
                           transport, dtype, combine_dtype, seed, replica_rule, held_out=compare,
                           write=algorithm if out_path is not None else None, weights_dtype=weights_dtype,
                           calibration=calibration)
    rows = study.rows()
    # one algorithm is the best of itself, whatever references the page placed beside it
    shown = rows if compare else [r | {"best": True} for r in rows if r["algorithm"] == algorithm]
    wrote = None
    if out_path is not None and study.written is not None:
        write_placement(out_path, study.written[0], fmt, m, study.written[1].summary())
        wrote = f"wrote {out_path} ({fmt}, {algorithm}" + (", placed on all the statistics)" if compare else ")")
    note = html_write(html, lambda cmd: importlib.import_module("wideep.report.cluster_pages").place_report(
        study, algorithm, m, cluster, stats, routing, dict(transport=transport, dtype=dtype,
                                                           combine_dtype=combine_dtype, seed=seed), cmd))
    out(as_json, shown if compare else shown[0],
        lambda: report.place_text(study.header, shown, study.split, wrote) + note)


PLAN_DEFAULT_HELP = "Default: compare DeepSeek-V3 EP32 on 4x hgx-h100 and one gb200-nvl72 rack."


def plan_spec(topology: Optional[str], **options: Any) -> Any:
    """Options -> PlanSpec (no arithmetic)."""
    return PlanSpec(topology=topology or "hgx-h100", **options)



#: The PlanSpec options ``plan`` and ``compare`` share: name -> (type, option), in --help order.
PLAN_OPTIONS: dict[str, tuple[Any, Any]] = dict(
    model=(str, typer.Option(SPEC.model, "--model", help="Model id or file.")),
    gpus=(Optional[int],
          typer.Option(None, "--gpus", help="GPUs in the deployment (a multiple of --ep; default --ep).")),
    ep=(Optional[int], typer.Option(None, "--ep", help="EP group size (default 32; a dense model has none: 1). Below --tp: MoE tensor parallelism, the experts over --ep ranks of the attention group, each split --tp/--ep ways (TensorRT-LLM's moe_expert_parallel_size).")),
    tp=(int, typer.Option(SPEC.tp, "--tp", help="Attention tensor parallelism: GPUs per attention group, inside one NVLink domain (1: data-parallel attention).")),
    batch=(int, typer.Option(SPEC.batch, "--batch", help="Decode batch: sequences per GPU (per attention group with --tp).")),
    context=(Optional[int], typer.Option(None, "--context",
                                         help="Decode: mean cached tokens per sequence (default: ISL + OSL/2).")),
    dtype=(str, typer.Option(SPEC.dtype, "--dtype", help="Routed-expert weights: bf16, fp8, nvfp4 (Blackwell only), "
                             "mxfp4 (4.25 bits; weight-only bf16 math on Hopper) or int4 (4.5 bits, weight-only); "
                             "other GEMMs too unless nvfp4 (then fp8), mxfp4 or int4 (then bf16).")),
    attn_dtype=(Optional[str],
                typer.Option(None, "--attn-dtype", help="Attention projections, dense and shared FFNs (default: --dtype, fp8 when --dtype nvfp4).")),
    kv_dtype=(str, typer.Option(SPEC.kv_dtype, "--kv-dtype", help=KV_HELP)),
    dispatch_dtype=(str, typer.Option(SPEC.dispatch_dtype, "--dispatch-dtype", help="Dispatch payload dtype.")),
    combine_dtype=(str, typer.Option(SPEC.combine_dtype, "--combine-dtype", help="Combine payload dtype.")),
    overlap=(str, typer.Option(SPEC.overlap, "--overlap", help="tbo (two micro-batches), none, or auto (the faster; none on the all-gather).")),
    mtp=(int, typer.Option(SPEC.mtp, "--mtp", help="MTP draft tokens per step (speculative decoding), 0 to 8.")),
    acceptance=(float, typer.Option(SPEC.acceptance, "--acceptance", help="Acceptance rate of each draft token.")),
    redundant=(Optional[int],
               typer.Option(None, "--redundant", help="Redundant expert slots (default: fewest that divide; none under MoE tensor parallelism).")),
    routing=(str, typer.Option(SPEC.routing, "--routing", help=ROUTING_HELP)),
    placement=(str, typer.Option(SPEC.placement, "--placement", help="contiguous, balanced, global, topology or "
                                 "auto (per MoE layer the least predicted layer time).")),
    replica_rule=(str, typer.Option(SPEC.replica_rule, "--replica-rule", help=RULE_HELP)),
    transport=(Optional[str],
               typer.Option(None, "--transport", help="Default deepep-ll (decode), deepep-normal (prefill).")),
    prefill_tokens=(int, typer.Option(SPEC.prefill_tokens, "--prefill-tokens", help="Prefill: prompt tokens per GPU (per attention group with --tp) per step.")),
    cache_hit=(float, typer.Option(SPEC.cache_hit, "--cache-hit", help="Prefill: prefix-cache hit rate, 0 to <1.")),
    isl=(int, typer.Option(SPEC.isl, "--isl", help="Prompt tokens per request (prefill length, mixed price).")),
    osl=(int, typer.Option(SPEC.osl, "--osl", help="Output tokens per request (mixed price).")),
    price_per_gpu_hour=(Optional[float],
                        typer.Option(None, "--price-per-gpu-hour", help="$/GPU-hour (default: catalog).")),
    price_scenario=(Optional[str], typer.Option(None, "--price-scenario", help="Catalog price scenario name.")),
    calibration=(Optional[str], typer.Option(None, "--calibration", help=CALIBRATION_HELP)),
    seed=(int, typer.Option(SPEC.seed, "--seed", help="Seed of synthetic routing.")),
)


def plan_options(*layout: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the shared PLAN_OPTIONS; it receives their values as one dict, ``options``.

    ``layout`` orders the leading options in --help: a name the command declares itself is its own
    parameter, any other a PLAN_OPTIONS entry. The remaining PLAN_OPTIONS follow in table order, then the
    command's remaining parameters (``--json``).
    """
    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        own = {n: p for n, p in inspect.signature(fn).parameters.items() if n != "options"}
        names = [*layout, *(n for n in PLAN_OPTIONS if n not in layout), *(n for n in own if n not in layout)]
        shared = [n for n in names if n not in own]

        def param(n: str) -> inspect.Parameter:
            if n in own:
                return own[n].replace(kind=inspect.Parameter.KEYWORD_ONLY)
            kind, option = PLAN_OPTIONS[n]
            return inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)

        @functools.wraps(fn)
        def command(**values: Any) -> None:
            fn(options={n: values.pop(n) for n in shared}, **values)

        command.__signature__ = inspect.Signature([param(n) for n in names])  # type: ignore[attr-defined]
        return command
    return wrap


@app.command("plan")
@plan_options("model", "topology", "gpus", "ep", "batch", "context")
def plan_cmd(options: dict,
             topology: Optional[str] = typer.Option(None, "--topology", help="System id or file. " + PLAN_DEFAULT_HELP),
             html: Optional[str] = HTML,
             as_json: bool = JSON) -> None:
    """Step time, memory fit and $/Mtok of one deployment; without --topology, Hopper vs Blackwell."""
    spec = plan_spec(topology, **options)  # checks the sizes before the modules behind a plan load
    html_start(html)
    from wideep.plan import compare_topologies, plan

    if topology is None:
        both = compare_topologies(spec)
        cmp = both.to_dict()
        note = html_write(html, lambda c: pages().plan_page(both.plans, both.why, c))
        out(as_json, cmp, lambda: report.comparison_text(cmp) + note)
        return
    p = plan(spec)
    d = p.to_dict()
    note = html_write(html, lambda c: pages().plan_page([p], "", c))
    out(as_json, d, lambda: report.plan_text(d) + note)


def pages() -> Any:
    """The HTML page builders (loaded with --html only)."""
    return importlib.import_module("wideep.report.pages")


@app.command("compare")
@plan_options("topology", "batch", "interactivity", "csv", "xlsx", "svg", "sweep", "model", "gpus", "ep", "context")
def compare_cmd(options: dict,
                topology: List[str] = typer.Option(..., "--topology", help="System id or file; repeat."),
                batch: Optional[List[int]] = typer.Option(None, "--batch", help="Decode batch per GPU; repeat."),
                interactivity: Optional[float] = typer.Option(
                    None, "--interactivity", help="Tokens/s per user: per system, the largest batch giving it."),
                csv: Optional[str] = typer.Option(None, "--csv", help="Write the rows to this CSV file."),
                xlsx: Optional[str] = typer.Option(None, "--xlsx", help="Write the rows to this XLSX file (openpyxl)."),
                svg: Optional[str] = typer.Option(None, "--svg", help="Draw tokens/s/GPU vs tokens/s/user (implies --sweep)."),
                sweep: bool = typer.Option(False, "--sweep", help="Also: who leads at every interactivity."),
                html: Optional[str] = HTML,
                as_json: bool = JSON) -> None:
    """The procurement report: one row per system and batch, stable columns with units; CSV/XLSX."""
    for path, option in ((csv, "--csv"), (xlsx, "--xlsx"), (svg, "--svg")):
        check_writable(path, option)
    html_start(html)
    spec = plan_spec(None, batch=(batch or [SPEC.batch])[0], **options)
    from wideep.plan.sweep import COLUMNS, compare, compare_report

    if xlsx is not None:
        report.xlsx_module()  # before anything is written
    plans = compare(spec, topology, batch, interactivity)
    rep = compare_report(spec, topology, batch, interactivity, sweep or svg is not None or html is not None, plans)
    if svg is not None:
        report.write_curves_svg(svg, rep["curves"], f"{spec.model} decode, EP {rep['rows'][0]['ep']}, "
                                f"context {spec.decode_context:,}")
    if csv is not None:
        report.write_csv(csv, rep["rows"], COLUMNS)
    if xlsx is not None:
        report.write_xlsx(xlsx, rep["rows"], COLUMNS)
    note = html_write(html, lambda c: pages().compare_page(rep, spec.model, c, plans))
    out(as_json, rep, lambda: report.compare_text(rep, COLUMNS)
        + "".join(f"\nwrote {f}" for f in (csv, xlsx, svg) if f is not None) + note)


@app.command("search")
def search_cmd(topology: List[str] = typer.Option(..., "--topology", help="System id or file; repeat."),
               model: str = typer.Option(SPEC.model, "--model", help="Model id or file."),
               isl: int = typer.Option(SPEC.isl, "--isl", help="Prompt tokens per request."),
               osl: int = typer.Option(SPEC.osl, "--osl", help="Output tokens per request."),
               tpot_ms: Optional[float] = typer.Option(None, "--tpot-ms", help="Target time per output token, ms."),
               interactivity: Optional[float] = typer.Option(
                   None, "--interactivity", help="Target tokens/s per user (= 1000 / TPOT ms)."),
               ttft_ms: Optional[float] = typer.Option(None, "--ttft-ms", help="Target time to first token, ms."),
               mode: str = typer.Option("both", "--mode", help="agg, disagg or both."),
               gpus: Optional[int] = typer.Option(None, "--gpus", help="At most this many GPUs per EP group."),
               dtype: Optional[List[str]] = typer.Option(
                   None, "--dtype", help="Routed-expert precision, or SYSTEM=DTYPE per system; repeat."),
               csv: Optional[str] = typer.Option(None, "--csv", help="Write every Pareto point to this CSV file."),
               xlsx: Optional[str] = typer.Option(None, "--xlsx", help="The same rows as XLSX (openpyxl)."),
               svg: Optional[str] = typer.Option(None, "--svg", help="Draw each system's Pareto front."),
               calibration: Optional[str] = typer.Option(None, "--calibration", help=CALIBRATION_HELP),
               balanced_prompts: bool = typer.Option(
                   False, "--balanced-prompts", help="Aggregated serving: the engine holds prompts back until every "
                   "attention group has one (TensorRT-LLM's attention_dp_config.enable_balance)."),
               html: Optional[str] = HTML,
               as_json: bool = JSON) -> None:
    """Cheapest configuration per system meeting TPOT/TTFT targets at ISL/OSL, and its Pareto front."""
    from wideep.plan.comparison import calibration_note
    from wideep.plan.search import COLUMNS as SEARCH_COLUMNS, Targets, cost_ratio, rows, search

    if tpot_ms is not None and interactivity is not None:
        raise InputError("give --tpot-ms or --interactivity, not both", "--interactivity")
    if interactivity is not None and not interactivity > 0:
        raise InputError(f"must be > 0, got {interactivity}", "--interactivity")
    targets = Targets(1000.0 / interactivity if interactivity else tpot_ms, ttft_ms)
    for path, option in ((csv, "--csv"), (xlsx, "--xlsx"), (svg, "--svg")):
        check_writable(path, option)
    html_start(html)
    if xlsx is not None:
        report.xlsx_module()  # before anything is written
    default_dtype, per_system = split_dtypes(dtype or [], topology)
    spec = PlanSpec(model=model, isl=isl, osl=osl, dtype=default_dtype, calibration=calibration,
                    balanced_prompts=balanced_prompts)
    result = search(spec, topology, targets, mode, gpus, per_system)
    add_deploy(result, model)
    if svg is not None:  # first: the one output that can still fail (nothing to draw)
        report.write_curves_svg(svg, {t: [[q["tokens_per_s_per_user"], q["tokens_per_s_per_gpu"]] for q in r["pareto"]]
                                      for t, r in result.items()}, f"{model} ISL {isl}/OSL {osl}: Pareto fronts",
                                "no candidate fits in HBM on any system")
    if csv is not None:
        report.write_csv(csv, rows(result), SEARCH_COLUMNS)
    if xlsx is not None:
        report.write_xlsx(xlsx, rows(result), SEARCH_COLUMNS, sheet="search")
    ratio = cost_ratio(result) if len(result) > 1 else []
    origins = calibration_note({system: r["calibration"] for system, r in result.items()})
    note = html_write(html, lambda c: pages().search_page(result, ratio, spec, targets, c))
    out(as_json, result | ({"cost_ratio": ratio} if ratio else {}) | ({"note": origins} if origins else {}),
        lambda: report.search_text(result, SEARCH_COLUMNS, ratio, origins)
        + "".join(f"\nwrote {f}" for f in (csv, xlsx, svg) if f is not None) + note)


def add_deploy(result: dict, model_id: str) -> None:
    """Each system's best point gets the engines' launch flags (``deploy``)."""
    from wideep.plan import default_redundant
    from wideep.report.deploy import deploy
    from wideep.specs.model import load_model

    m = load_model(model_id)
    for r in result.values():
        if r["best"]:
            best = r["best"]
            r["deploy"] = deploy(best, f"<{m.name} checkpoint>", m.n_experts,
                                 default_redundant(m.n_experts, best["ep"]),
                                 prefill_redundant=default_redundant(m.n_experts, best["prefill_ep"] or 1))


def split_dtypes(values: list[str], topologies: list[str]) -> tuple[str, dict[str, str]]:
    """--dtype values -> (default dtype, {system: dtype}); SYSTEM=DTYPE names a system of --topology."""
    default, per_system = SPEC.dtype, {}
    for v in values:
        if "=" in v:
            system, _, name = v.partition("=")
            if system not in topologies:
                raise InputError(f"{system!r} is not one of the --topology systems", "--dtype")
            per_system[system] = name
        else:
            default = v
    return default, per_system


@app.command("calibrate")
def calibrate_cmd(gpu: str = typer.Option("h200-sxm", "--gpu", help="GPU catalog id whose datasheet peaks the fit divides by."),
                  model: str = typer.Option("deepseek-v3", "--model", help="Model whose kernel shapes are measured; with --from-aic, 'all' reads every catalog model's shapes."),
                  out_file: Optional[str] = typer.Option(None, "--out", help="Calibration TOML to write (default: print it)."),
                  raw: Optional[str] = typer.Option(None, "--raw", help="Also write the raw measurements (JSON, seconds)."),
                  from_raw: Optional[str] = typer.Option(None, "--from-raw", help="Fit a raw JSON record instead of measuring (no GPU needed)."),
                  from_aic: Optional[str] = typer.Option(None, "--from-aic", help="Read NVIDIA AIConfigurator's kernel tables instead: 'auto' (the installed aiconfigurator-core) or its systems/data folder."),
                  aic_engine: str = typer.Option("trtllm", "--aic-engine", help="Whose AIConfigurator tables to read: trtllm (1.3.0rc20), sglang (0.5.14) or vllm (0.24.0)."),
                  as_json: bool = JSON) -> None:
    """Measure HBM, the model's GEMM shapes (bf16, fp8), grouped expert GEMMs and a fused MoE kernel (Triton) on this GPU; write a calibration file.

    Needs PyTorch with a CUDA GPU (pip install 'wideep\\[torch]') unless --from-raw or --from-aic is given.
    """
    from wideep.calibrate import calibrate

    if from_raw is not None and from_aic is not None:
        raise InputError("give --from-raw or --from-aic, not both", "--from-aic")
    check_writable(out_file, "--out")
    check_writable(raw, "--raw")
    command = "wideep calibrate " + shlex.join(sys.argv[2:])
    summary = calibrate(gpu, model, out_file, raw, from_raw, command, from_aic, aic_engine)
    out(as_json, summary, lambda: summary["toml"] or f"wrote {out_file}: {summary['gemm_shapes']} GEMM shapes, "
        f"{summary['grouped_gemms']} grouped GEMMs")


@app.command("a2a")
def a2a_cmd(model: str = typer.Option(..., "--model", help="Model id or file."),
            topology: str = typer.Option(..., "--topology", help="System id or topology file."),
            gpus: Optional[int] = typer.Option(None, "--gpus", help="GPUs in the cluster (default: --ep)."),
            ep: Optional[int] = typer.Option(None, "--ep", help="EP group size: the first EP ranks (default: --gpus)."),
            tokens: int = typer.Option(..., "--tokens", help="Tokens per GPU per step."),
            transport: str = typer.Option("deepep-ll", "--transport",
                                          help="deepep-ll, deepep-normal, nccl, nccl-allgather, nvlink-onesided or a TOML file."),
            dtype: str = typer.Option("fp8", "--dtype", help="Dispatch dtype: bf16, fp8 or nvfp4."),
            combine_dtype: str = typer.Option("bf16", "--combine-dtype", help="Combine dtype."),
            routing: str = typer.Option("auto", "--routing", help=ROUTING_HELP),
            placement: Optional[str] = typer.Option(None, "--placement", help="phy2log JSON (SGLang) or .npy."),
            replica_rule: str = typer.Option(SPEC.replica_rule, "--replica-rule", help=RULE_HELP),
            seed: int = typer.Option(0, "--seed", help="Seed of synthetic routing and resampling."),
            html: Optional[str] = HTML,
            as_json: bool = JSON) -> None:
    """Dispatch and combine time of one MoE layer over the cluster graph, with the binding link and SOL."""
    html_start(html)
    from wideep.plan.studies import a2a_by_name
    from wideep.specs.topology import load_cluster

    res = a2a_by_name(model, topology, gpus, ep, tokens, transport, dtype, combine_dtype, routing, placement,
                      seed, replica_rule)
    s = res.summary()
    note = html_write(html, lambda c: importlib.import_module("wideep.report.cluster_pages").a2a_page(
        res, load_cluster(topology, gpus if gpus is not None else ep), model, routing, c))
    out(as_json, s, lambda: report.a2a_text(s) + note)


def flatten(d: dict, prefix: str = "") -> list[list[Any]]:
    """Nested dict -> [[dotted.key, value], ...] for a two-column table."""
    rows: list[list[Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows += flatten(v, f"{prefix}{k}.")
        else:
            rows.append([prefix + k, v])
    return rows


def main() -> None:
    """Entry point: bad input prints one line on stderr and exits 2; never a traceback for it."""
    if sys.stderr.isatty():
        progress.listen(progress.terminal_bar(sys.stderr))
    try:
        code = app(standalone_mode=False)
    except WideEPError as exc:
        fail(str(exc))
    except MemoryError:  # the size checks refuse what they can foresee; this is the net under them
        fail("out of memory: the request is larger than this machine holds; ask for fewer GPUs, tokens or layers")
    except Exception as exc:  # the option parser's errors, from click or from typer's own copy of it
        kind = {c.__name__ for c in type(exc).__mro__}
        if "Abort" in kind:
            sys.exit(130)
        if "NoArgsIsHelpError" in kind:  # `wideep`, `wideep models`: a command group with nothing after it
            typer.echo(exc.ctx.get_help())  # type: ignore[attr-defined]
            sys.exit(0)
        if "ClickException" not in kind:
            raise
        fail(" ".join(exc.format_message().split()) or type(exc).__name__)  # type: ignore[attr-defined]
    sys.exit(code if isinstance(code, int) else 0)


def fail(message: str) -> None:
    """One line on stderr, exit code 2: how every kind of bad input ends."""
    typer.echo(f"wideep: error: {message}", err=True)
    sys.exit(2)
