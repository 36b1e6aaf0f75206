"""Pictures without a plotting dependency: a line chart written as SVG text.

Used for the throughput-interactivity curves of ``wideep compare --svg``: tokens/s per GPU against tokens/s
per user, one line per system, the chart inference benchmarks publish.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

WIDTH, HEIGHT = 720, 460
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 80, 180, 40, 60
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi].

    >>> nice_ticks(0, 97)
    [0, 20, 40, 60, 80, 100]
    """
    span = max(hi - lo, 1e-12)
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if step * m >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


def line_chart(series: dict[str, Sequence[tuple[float, float]]], title: str, x_label: str, y_label: str) -> str:
    """An SVG document with one marked line per series; points are (x, y) in data units."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        raise ValueError("no points to draw")
    xt = nice_ticks(0.0, max(x for x, _ in points))
    yt = nice_ticks(0.0, max(y for _, y in points))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def sx(x: float) -> float:
        return MARGIN_LEFT + plot_w * (x - xt[0]) / (xt[-1] - xt[0])

    def sy(y: float) -> float:
        return MARGIN_TOP + plot_h * (1 - (y - yt[0]) / (yt[-1] - yt[0]))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{WIDTH / 2 - MARGIN_RIGHT / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']
    for x in xt:
        out.append(f'<line x1="{sx(x):.1f}" y1="{MARGIN_TOP}" x2="{sx(x):.1f}" y2="{MARGIN_TOP + plot_h}" stroke="#eee"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{MARGIN_TOP + plot_h + 18}" text-anchor="middle">{x:g}</text>')
    for y in yt:
        out.append(f'<line x1="{MARGIN_LEFT}" y1="{sy(y):.1f}" x2="{MARGIN_LEFT + plot_w}" y2="{sy(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{MARGIN_LEFT - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:,.0f}</text>')
    out.append(f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{MARGIN_LEFT + plot_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(20 {MARGIN_TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(y_label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(pts))
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>' for x, y in pts]
        ly = MARGIN_TOP + 10 + 20 * i
        out.append(f'<line x1="{WIDTH - MARGIN_RIGHT + 12}" y1="{ly}" x2="{WIDTH - MARGIN_RIGHT + 32}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{WIDTH - MARGIN_RIGHT + 38}" y="{ly + 4}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
