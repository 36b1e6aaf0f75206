"""The cluster graph as a picture: every link coloured by how long dispatch or combine keeps it busy.

Catalog clusters (:func:`wideep.specs.topology.build_cluster`) are laid out as the hardware looks: an NVLink
domain of up to 16 GPUs as a ring of GPUs around its NVSwitch node (an HGX board), a larger one as a rack of
4-GPU trays above and below a bar of NVSwitch trays (an NVL72 rack: 10 trays, the switch trays, 8 trays);
below the domains a row of NICs, one per GPU, then the rail leaf switches, then the spines. A custom graph
gets a spring layout. A link's colour is its busy time (bytes over its bandwidth, the busier direction) as
a share of the busiest link's; the binding link is drawn thick and labelled.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from wideep.report.figures import figure, styled
from wideep.specs.topology import Cluster

RING_MAX = 16  # a domain of at most this many GPUs is drawn as a ring around its switch
TRAY = 4  # GPUs per compute tray of a rack-scale domain
CELL_W = 3.2  # width of one domain's cell, layout units
KIND_STYLE = {"gpu": ("#4c72b0", "o", 26), "switch": ("#55a868", "s", 40), "nic": ("#c44e52", "D", 14)}


def rack_positions(gpus: list[str], cx: float) -> dict[str, tuple[float, float]]:
    """4-GPU trays in rows: the first 10/18 of the trays above the switch bar (y 0), the rest below."""
    trays = math.ceil(len(gpus) / TRAY)
    above = round(trays * 10 / 18)
    pos = {}
    for i, n in enumerate(gpus):
        t, k = divmod(i, TRAY)
        row_y = (above - t) * 0.16 + 0.15 if t < above else -(t - above + 1) * 0.16 - 0.15
        pos[n] = (cx - 1.2 + 2.4 * (k + 0.5) / TRAY, row_y)
    return pos


def ring_positions(gpus: list[str], cx: float) -> dict[str, tuple[float, float]]:
    """GPUs evenly on a circle of radius 1 around (cx, 0), the first at the top."""
    n = len(gpus)
    return {g: (cx + math.sin(2 * math.pi * i / n), math.cos(2 * math.pi * i / n)) for i, g in enumerate(gpus)}


def catalog_layout(cluster: Cluster) -> dict[str, tuple[float, float]]:
    """Positions of a catalog cluster's nodes (module docstring)."""
    g = cluster.graph
    pos: dict[str, tuple[float, float]] = {}
    domains = [[n for r, n in enumerate(cluster.gpu_nodes) if cluster.domain_of[r] == d]
               for d in range(cluster.n_domains)]
    for d, gpus in enumerate(domains):
        cx = d * CELL_W
        pos[f"nvsw{d}"] = (cx, 0.0)
        ring = len(gpus) <= RING_MAX
        pos.update(ring_positions(gpus, cx) if ring else rack_positions(gpus, cx))
        nics = [f"nic{n[3:]}" for n in gpus if f"nic{n[3:]}" in g]
        if ring:  # each NIC just outside its GPU
            pos.update({f"nic{n[3:]}": (cx + 1.45 * (pos[n][0] - cx), 1.45 * pos[n][1]) for n in gpus
                        if f"nic{n[3:]}" in g})
        else:
            pos.update({nic: (cx - 1.4 + 2.8 * (i + 0.5) / len(nics), -2.2) for i, nic in enumerate(nics)})
    width = max(cluster.n_domains - 1, 0) * CELL_W
    for y, prefix in ((-3.6, "leaf"), (-5.0, "spine")):
        row = sorted((n for n in g if n.startswith(prefix)), key=lambda n: [float(x) for x in n[len(prefix):].split(".")])
        pos.update({n: (-1.2 + (width + 2.4) * (i + 0.5) / len(row), y) for i, n in enumerate(row)})
    return pos


def layout(cluster: Cluster) -> tuple[dict[str, tuple[float, float]], bool]:
    """(positions, drawn as racks?) for every node: the hardware layout when the names are the catalog's."""
    names = set(cluster.graph)
    if {f"gpu{r}" for r in range(cluster.n_gpus)} <= names and "nvsw0" in names and cluster.system is not None:
        pos = catalog_layout(cluster)
        if set(pos) == names:
            return pos, True
    import networkx as nx

    return {n: tuple(p) for n, p in nx.spring_layout(cluster.graph.to_undirected(), seed=0).items()}, False


def link_busy(cluster: Cluster, link_bytes: np.ndarray) -> dict[frozenset, float]:
    """Busy seconds of each undirected link (the busier direction), from bytes per directed edge."""
    busy = np.asarray(link_bytes) / cluster.edge_bw_Bps
    out: dict[frozenset, float] = {}
    for (u, v), b in zip(cluster.edges, busy):
        key = frozenset((u, v))
        out[key] = max(out.get(key, 0.0), float(b))
    return out


def endpoints(u: str, v: str, pos: dict, racks: set[str]) -> tuple[tuple[float, float], tuple[float, float]]:
    """A link's two ends; a link to a rack's switch bar ends straight below/above the GPU."""
    a, b = pos[u], pos[v]
    if v in racks:
        b = (a[0], b[1])
    if u in racks:
        a = (b[0], a[1])
    return a, b


def draw_phase(ax: Any, cluster: Cluster, pos: dict, racks: set[str], busy: dict, binding: str, phase: str) -> Any:
    """One panel: links coloured by busy time, the binding link thick and labelled, nodes on top.

    In a rack (``racks``: its switch nodes) each GPU's one NVLink link is drawn as the GPU's square, coloured.
    """
    from matplotlib.collections import LineCollection

    peak = max(busy.values(), default=0.0) or 1.0
    in_rack = {k: next(iter(k - racks)) for k in busy if k & racks}
    keys = sorted((k for k in busy if k not in in_rack), key=lambda k: busy[k])  # busiest drawn last, on top
    segs = [endpoints(*sorted(k), pos, racks) for k in keys]
    lines = LineCollection(segs, array=np.array([busy[k] / peak for k in keys]), cmap="plasma_r", clim=(0, 1),
                           linewidths=1.2)
    ax.add_collection(lines)
    tray = list(in_rack.items())
    ax.scatter([pos[g][0] for _, g in tray], [pos[g][1] for _, g in tray], s=34, marker="s", zorder=4, lw=0,
               c=[busy[k] / peak for k, _ in tray], cmap="plasma_r", vmin=0, vmax=1)
    u, _, v = binding.partition("->")
    if {u, v} & racks:
        gpu = (u if v in racks else v)
        ax.scatter([pos[gpu][0]], [pos[gpu][1]], s=80, marker="s", facecolors="none", edgecolors="black", lw=2,
                   zorder=5)
        ax.annotate(f"binding link {binding}", xy=pos[gpu], xytext=(10, 10), textcoords="offset points",
                    fontsize=8, fontweight="bold", bbox={"fc": "white", "ec": "black", "lw": 0.6, "alpha": 0.9})
    elif u in pos and v in pos:
        a, b = endpoints(u, v, pos, racks)
        ax.plot([a[0], b[0]], [a[1], b[1]], color="black", lw=3.2, solid_capstyle="round")
        ax.annotate(f"binding link {binding}", xy=((a[0] + b[0]) / 2, (a[1] + b[1]) / 2), xytext=(8, -14),
                    textcoords="offset points", fontsize=8, fontweight="bold",
                    bbox={"fc": "white", "ec": "black", "lw": 0.6, "alpha": 0.9})
    rack_domains = {int(n[4:]) for n in racks}
    for kind, (col, marker, size) in KIND_STYLE.items():
        nodes = [n for n, d in cluster.graph.nodes(data=True) if d["kind"] == kind and n not in racks
                 and not (kind == "gpu" and d.get("domain") in rack_domains)]
        ax.scatter([pos[n][0] for n in nodes], [pos[n][1] for n in nodes], s=size, c=col, marker=marker,
                   zorder=3, label={"gpu": "GPU", "switch": "switch", "nic": "NIC"}[kind], lw=0)
    for n in racks:
        x, y = pos[n]
        ax.add_patch(rect(x - 1.35, y - 0.1, 2.7, 0.2))
    ax.set_title(f"{phase}: link busy time as a share of the busiest link's", fontsize=9)
    ax.set_axis_off()
    ax.set_aspect("equal", adjustable="datalim")
    return lines


def rect(x: float, y: float, w: float, h: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fc="#55a868", ec="none", zorder=3)


def annotate_rows(ax: Any, pos: dict, graph: Any) -> None:
    """Row labels at the left: NVLink domains, NICs, leaf and spine switches."""
    x0 = min(p[0] for p in pos.values()) - 0.3
    rows = ((0.0, "NVLink\ndomain\n(NVSwitch)", "nvsw"), (-2.2, "NICs", "nic"), (-3.6, "leaf\nswitches", "leaf"),
            (-5.0, "spine\nswitches", "spine"))
    for y, text, prefix in rows:
        if any(n.startswith(prefix) and abs(pos[n][1] - y) < 1e-9 for n in graph):
            ax.text(x0, y, text, ha="right", va="center", fontsize=8, color="#444")


@styled
def graph_svg(cluster: Cluster, link_bytes: dict, binding: dict, title: str) -> Any:
    """Two panels (dispatch, combine; stacked, or side by side for a tall graph) of the cluster graph.

    ``link_bytes`` = {phase: bytes per edge of ``cluster.edges``}, ``binding`` = {phase: "u->v"}.
    """
    pos, hardware = layout(cluster)
    racks = {f"nvsw{d}" for d in range(cluster.n_domains)
             if hardware and np.sum(cluster.domain_of == d) > RING_MAX}
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    span_x, span_y = max(xs) - min(xs) + 2.5, max(ys) - min(ys) + 0.6
    tall = cluster.n_domains == 1 or span_y > span_x  # one domain: the two panels side by side
    width = min(11.0, max(7.0, 1.3 * span_x * (2 if tall else 1)))
    panel_h = min(max(width / (2 if tall else 1) * span_y / span_x, 2.2), 4.5)
    fig, axes = figure(width, panel_h * (1 if tall else 2) + 1.0, 1 if tall else 2, 2 if tall else 1)
    panels = axes.reshape(-1)
    lines = None
    for ax, phase in zip(panels, ("dispatch", "combine")):
        lines = draw_phase(ax, cluster, pos, racks, link_busy(cluster, link_bytes[phase]), binding[phase], phase)
        if hardware:
            annotate_rows(ax, pos, cluster.graph)
    panels[0].legend(loc="upper right", fontsize=7, frameon=False, markerscale=0.8)
    fig.colorbar(lines, ax=panels.tolist(), shrink=0.6, label="busy time / busiest link's")
    fig.suptitle(title, fontsize=10)
    return fig
