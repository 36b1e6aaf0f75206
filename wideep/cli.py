"""The ``wideep`` command: parse options, call one library function, render. No arithmetic here."""

from __future__ import annotations

import sys
from typing import Any, Callable, List, Optional

import click
import typer

from . import catalog, report, units
from .errors import InputError, WideEPError
from .hardware import load_gpu
from .model import kv_usage, load_model
from .topology import load_cluster

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Plan MoE inference with wide expert parallelism over cluster graphs.")
models_app = typer.Typer(no_args_is_help=True, help="The model catalog.")
topologies_app = typer.Typer(no_args_is_help=True, help="The GPU and system catalogs.")
app.add_typer(models_app, name="models")
app.add_typer(topologies_app, name="topologies")

JSON = typer.Option(False, "--json", help="Machine-readable JSON on stdout, nothing else there.")


def out(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    """Print ``data`` as JSON or the human text ``text()``."""
    typer.echo(report.to_json(data) if as_json else text())


@models_app.command("list")
def models_list(as_json: bool = JSON) -> None:
    """List the catalog models with their size and expert layout."""
    rows = [load_model(m).summary() for m in catalog.list_ids("models")]
    cols = ["id", "architecture", "attention", "routed_experts", "top_k", "total_params_B", "active_params_B"]
    out(as_json, rows, lambda: report.table([[r[c] for c in cols] for r in rows],
                                            ["id", "architecture", "attn", "experts", "top-k", "total B", "active B"]))


@models_app.command("show")
def models_show(model: str = typer.Argument(..., help="Catalog id, model TOML or HF config.json."),
                context: int = typer.Option(4096, help="Context (tokens) for KV per token and FLOPs per token."),
                as_json: bool = JSON) -> None:
    """Show one model: shapes, parameter counts (derived vs published), bytes per expert, KV and FLOPs per token."""
    if context <= 0:
        raise InputError(f"must be > 0, got {context}", "--context")
    s = load_model(model).summary(context)
    out(as_json, s, lambda: report.table(flatten(s), ["field", "value"]))


@topologies_app.command("list")
def topologies_list(as_json: bool = JSON) -> None:
    """List the systems (topologies) and the GPUs they are built from."""
    from .hardware import load_system

    systems = [load_system(s) for s in catalog.list_ids("systems")]
    rows = [{"id": s.id, "name": s.name, "gpu": s.gpu.id, "gpus_per_domain": s.scale_up.gpus_per_domain,
             "nvlink_GBps": s.scale_up.bw_Bps / units.GBps, "nic_Gbps": s.scale_out.per_gpu_Bps / units.Gbps}
            for s in systems]
    gpus = [load_gpu(g) for g in catalog.list_ids("gpus")]
    out(as_json, {"systems": rows, "gpus": [g.id for g in gpus]}, lambda: report.table(
        [list(r.values()) for r in rows], ["id", "name", "gpu", "GPUs/domain", "NVLink GB/s", "NIC Gb/s"])
        + "\n\nGPUs: " + ", ".join(g.id for g in gpus))


@topologies_app.command("show")
def topologies_show(topology: str = typer.Argument(..., help="System id (hgx-h100) or a topology TOML."),
                    gpus: Optional[int] = typer.Option(None, help="GPUs in the cluster (default: one domain)."),
                    as_json: bool = JSON) -> None:
    """Build the cluster graph and show its domains, per-tier bandwidth, bisection and hop counts.

    A GPU id (h100-sxm) shows that GPU's datasheet figures instead.
    """
    is_gpu = topology in catalog.list_ids("gpus")
    s = load_gpu(topology).summary() if is_gpu else load_cluster(topology, gpus).summary()
    out(as_json, s, lambda: report.table(flatten(s), ["field", "value"]))


@app.command()
def kv(model: List[str] = typer.Option(..., "--model", help="Model id or file; repeat to compare."),
       context: int = typer.Option(131072, help="Context length, tokens."),
       kv_dtype: str = typer.Option("bf16", help="KV cache dtype: bf16, fp8 or nvfp4."),
       as_json: bool = JSON) -> None:
    """KV-cache bytes per token and per sequence; several --model options give one comparison table."""
    if context <= 0:
        raise InputError(f"must be > 0, got {context}", "--context")
    dt = units.dtype(kv_dtype, "--kv-dtype")
    rows = [kv_usage(load_model(m), context, dt) for m in model]
    cols = ["model", "attention", "kv_bytes_per_token", "kv_GB_total", "kv_GiB_total"]
    out(as_json, rows[0] if len(rows) == 1 else rows, lambda: f"KV cache at {context:,} tokens, {dt.name}\n"
        + report.table([[r[c] for c in cols] for r in rows], ["model", "attn", "B/token", "GB", "GiB"]))


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
    try:
        code = app(standalone_mode=False)
    except WideEPError as exc:
        typer.echo(f"wideep: error: {exc}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
