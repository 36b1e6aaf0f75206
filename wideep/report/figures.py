"""Charts of the HTML report, drawn with matplotlib (the optional ``report`` extra) as inline SVG text.

Every function returns one ``<svg>`` element as a string, with text kept as text (``svg.fonttype`` none:
small, searchable, and drawn in the page's own font) and nothing that refers outside the document. One
colour per system, in the order the systems are given, is shared by every chart of a page.
"""

from __future__ import annotations

import functools
import io
import re
from typing import Any, Callable, Sequence

from wideep.core.errors import InputError
from wideep.report.svg import COLOURS

#: Colour of each binding resource (the names :mod:`wideep.perf.step` gives).
RESOURCE_COLOURS = {"hbm": "#1f77b4", "flops": "#ff7f0e", "nvlink": "#2ca02c", "nic": "#d62728",
                    "latency": "#9467bd", "sms": "#8c564b"}
RC = {"svg.fonttype": "none", "svg.hashsalt": "wideep", "font.family": "sans-serif", "font.size": 9,
      "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": "#e5e5e5"}


def matplotlib_module() -> Any:
    """matplotlib, the optional dependency of ``--html``; missing, a one-line error naming the extra."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401  (the object-oriented API: no pyplot, no backend)
    except ImportError:
        raise InputError("HTML reports need matplotlib: pip install 'wideep[report]'", "--html") from None
    return matplotlib


def styled(draw: Callable[..., Any]) -> Callable[..., str]:
    """Run a drawing function inside the report's matplotlib style; it returns a figure, we return its SVG."""
    @functools.wraps(draw)
    def run(*args: Any, **kw: Any) -> str:
        with matplotlib_module().rc_context(RC):
            return to_svg(draw(*args, **kw))
    return run


def figure(width_in: float, height_in: float, rows: int = 1, cols: int = 1, **kw: Any) -> tuple[Any, Any]:
    """A Figure and its axes as a (rows, cols) array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def to_svg(fig: Any) -> str:
    """The figure as one inline ``<svg>`` element: no XML prolog, doctype or RDF metadata."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)


def colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


@styled
def pareto_svg(fronts: dict[str, Sequence[Sequence[float]]], title: str) -> Any:
    """Tokens/s per GPU (log) against tokens/s per user, one marked line per system.

    ``fronts`` = {system: [(tokens/s/user, tokens/s/GPU), ...]}.
    """
    fig, ax = figure(7.5, 4.2)
    ax = ax[0, 0]
    for i, (name, pts) in enumerate(fronts.items()):
        pts = sorted(pts)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3.5, lw=1.6, color=colour(i), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("tokens/s per user (interactivity): higher is a faster reply")
    ax.set_ylabel("output tokens/s per GPU (throughput)")
    ax.set_title(title, fontsize=10)
    if any(fronts.values()):
        ax.legend(fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no configuration fits in HBM", transform=ax.transAxes, ha="center", color="#666")
    return fig


@styled
def cost_svg(curves: dict[str, Sequence[Sequence[float]]], title: str) -> Any:
    """$/Mtok against tokens/s per user per system (top) and each system's cost over the first's (bottom).

    ``curves`` = {system: [(tokens/s/user, $/Mtok or None), ...]} on the same interactivity levels.
    """
    fig, axes = figure(7.5, 5.6, 2, 1, sharex=True, height_ratios=[3, 2])
    top, bottom = axes[0, 0], axes[1, 0]
    names = list(curves)
    for i, name in enumerate(names):
        pts = [(x, y) for x, y in curves[name] if y is not None]
        top.step([p[0] for p in pts], [p[1] for p in pts], where="post", lw=1.6, color=colour(i), label=name)
    top.set_yscale("log")
    top.set_ylabel("$ per million tokens")
    top.set_title(title, fontsize=10)
    top.legend(fontsize=8, frameon=False)
    base = dict(curves[names[0]])
    for i, name in enumerate(names[1:], start=1):
        pts = [(x, y / base[x]) for x, y in curves[name] if y is not None and base.get(x)]
        bottom.step([p[0] for p in pts], [p[1] for p in pts], where="post", lw=1.6, color=colour(i),
                    label=f"{name} / {names[0]}")
        for x, r in (pts[:1] + pts[-1:]) if pts else []:  # the ratio where the comparison starts and ends
            words = f"{r:.2g}x" + (f" ({1 / r:.0f}x cheaper)" if r < 0.5 else "")
            bottom.annotate(words, (x, r), xytext=(4, 4), textcoords="offset points", fontsize=7.5, color=colour(i))
    bottom.axhline(1.0, color="#555", lw=0.8, ls="--")
    bottom.set_yscale("log")
    bottom.set_ylabel(f"cost ratio to {names[0]}")
    bottom.set_xlabel("tokens/s per user (interactivity)")
    if len(names) > 1:
        bottom.legend(fontsize=8, frameon=False)
    return fig


@styled
def terms_svg(terms: Sequence[dict], step_ms: float, title: str) -> Any:
    """Each step term: its time (bar, coloured by the resource that binds it) over its SOL (black tick).

    ``terms`` are :meth:`wideep.perf.workload.StepResult.to_dict` terms: name, ms, sol_ms, binding.
    """
    fig, ax = figure(7.5, 0.5 + 0.32 * len(terms))
    ax = ax[0, 0]
    names = [t["name"] for t in terms][::-1]
    ms = [t["ms"] for t in terms][::-1]
    sol = [t["sol_ms"] for t in terms][::-1]
    bind = [t["binding"] for t in terms][::-1]
    ys = range(len(names))
    ax.barh(ys, ms, color=[RESOURCE_COLOURS.get(b, "#888") for b in bind], height=0.6)
    ax.barh(ys, sol, color="none", edgecolor="black", hatch="///", lw=0.6, height=0.6)
    for y, m, s, b in zip(ys, ms, sol, bind):
        ax.text(m, y, f" {m:.2f} ms, {m / s:.1f}x SOL ({b})" if s else f" {m:.2f} ms", va="center", fontsize=7.5)
    ax.set_yticks(list(ys), names)
    ax.set_xlim(0, max(ms) * 1.45)
    ax.set_xlabel(f"ms per decode step (the step is {step_ms:.2f} ms; terms overlap, so they add to more)")
    ax.set_title(title, fontsize=10)
    from matplotlib.patches import Patch

    used = list(dict.fromkeys(bind))
    ax.legend([Patch(color=RESOURCE_COLOURS.get(b, "#888")) for b in used] + [Patch(fc="none", hatch="///")],
              [f"bound by {b}" for b in used] + ["speed of light"], fontsize=7, frameon=False, loc="lower right")
    ax.grid(axis="y", visible=False)
    return fig


@styled
def heatmap_svg(panels: Sequence[tuple[str, Any]], domain_size: int, title: str) -> Any:
    """GPU load per MoE layer for several placements side by side.

    ``panels`` = [(name, load (layers, gpus) as a multiple of the layer's mean)]; rows are layers, columns GPUs,
    white lines between NVLink domains of ``domain_size`` GPUs.
    """
    layers, gpus = panels[0][1].shape
    fig, axes = figure(min(2.2 + 2.6 * len(panels) * max(gpus, 8) / 32, 11), 1.6 + 0.05 * layers, 1, len(panels),
                       sharey=True)
    hi = max(1.5, max(float(p[1].max()) for p in panels))
    image = None
    for ax, (name, load) in zip(axes[0], panels):
        image = ax.imshow(load, aspect="auto", cmap="RdYlBu_r", vmin=0.5, vmax=hi, interpolation="nearest")
        for b in range(domain_size, gpus, domain_size):
            ax.axvline(b - 0.5, color="white", lw=1.5)
        ax.set_title(f"{name}\nbusiest GPU {float(load.max(axis=1).mean()):.2f}x the mean", fontsize=8.5)
        ax.set_xlabel("GPU (EP rank)")
        ax.grid(False)
    axes[0, 0].set_ylabel("MoE layer")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="GPU load / mean load of the layer")
    fig.suptitle(title, fontsize=10)
    return fig


@styled
def slots_svg(panels: Sequence[tuple[str, Any, Any]], layer: int) -> Any:
    """One layer's slots by GPU under several placements: each cell a resident expert, coloured by its share of
    the layer's selections per copy; cells of an expert with several copies are outlined.

    ``panels`` = [(name, share, copies)], the two arrays of shape (gpus, slots_per_gpu).
    """
    gpus, spg = panels[0][1].shape
    fig, axes = figure(min(2.0 + 0.22 * gpus, 11), 0.9 + len(panels) * (0.5 + 0.16 * spg), len(panels), 1,
                       sharex=True)
    hi = max(float(p[1].max()) for p in panels) * 100
    image = None
    for ax, (name, share, copies) in zip(axes[:, 0], panels):
        image = ax.imshow(share.T * 100, aspect="auto", cmap="viridis", vmin=0, vmax=hi, interpolation="nearest")
        ys, xs = (copies.T > 1).nonzero()
        ax.scatter(xs, ys, s=16, facecolors="none", edgecolors="white", lw=0.9, marker="s")
        ax.set_ylabel("slot")
        ax.set_title(f"{name}: busiest GPU holds {100 * float(share.sum(axis=1).max()):.1f}% of the selections "
                     f"(even: {100 / gpus:.1f}%)", fontsize=8.5)
        ax.grid(False)
    axes[-1, 0].set_xlabel("GPU (EP rank)")
    fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.8, label="% of the layer's selections per copy")
    fig.suptitle(f"MoE layer {layer}: one cell per resident expert; white square: an expert with several copies",
                 fontsize=9.5)
    return fig
