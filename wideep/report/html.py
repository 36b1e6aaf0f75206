"""One self-contained HTML page: headings, short explanations, tables and inline SVG figures.

The page refers to nothing outside itself: styles are inline, figures are ``<svg>`` elements (a raster
inside one is a ``data:`` URI), and a Content-Security-Policy forbids every fetch, so it opens the same
from a ``file://`` URL, a mail attachment or an air-gapped laptop. A print stylesheet keeps each figure
on one page.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any, Sequence

from wideep import __version__
from wideep.core.fileio import write_text_atomic
from wideep.report.tables import fmt

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src 'none'; connect-src 'none'"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1200px; margin: 1.5em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.8em; }
p.lead { color: #444; } p.explain { max-width: 62em; }
div.table { overflow-x: auto; } table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; } th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.8em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f6f6f6; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
footer { margin-top: 3em; font-size: 0.8em; color: #666; }
@media print {
  body { max-width: none; margin: 0; font-size: 10pt; }
  section, figure, table { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
  pre { white-space: pre-wrap; } div.table { overflow: visible; } table { font-size: 7.5pt; }
}
"""


@dataclass(frozen=True)
class Section:
    """One part of the page: a heading, a paragraph saying what it shows and how to read it, then content
    (HTML: tables, figures)."""

    heading: str
    explain: str
    body: str


def table_html(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """An HTML table; numbers formatted as the text tables do (:func:`wideep.report.tables.fmt`), right-aligned."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>\n" for row in rows)
    return f'<div class="table"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table></div>'


def cell(value: Any) -> str:
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="num">{escape(fmt(value))}</td>' if is_num else f"<td>{escape(fmt(value))}</td>"


def figure_html(svg: str, caption: str, name: str) -> str:
    """A figure (inline SVG) with its caption; ``name`` marks it for tests (``data-figure``)."""
    return f'<figure data-figure="{escape(name)}">\n{svg}\n<figcaption>{escape(caption)}</figcaption></figure>'


def paragraphs(*texts: str) -> str:
    return "".join(f"<p>{escape(t)}</p>" for t in texts if t)


def pre(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"


def page(title: str, lead: str, sections: Sequence[Section], command: str = "") -> str:
    """The whole document as text."""
    parts = [f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
             f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
             f"<h1>{escape(title)}</h1>\n<p class=\"lead\">{escape(lead)}</p>\n"]
    for s in sections:
        parts.append(f'<section>\n<h2>{escape(s.heading)}</h2>\n<p class="explain">{escape(s.explain)}</p>\n'
                     f"{s.body}\n</section>\n")
    made = f"Made by wideep {__version__}" + (f" with: {command}" if command else "")
    parts.append(f"<footer>{escape(made)}. Every figure is computed by wideep's model, not measured; the "
                 "assumptions and the calibration behind each number are listed on this page.</footer>\n"
                 "</body>\n</html>\n")
    return "".join(parts)


def write_page(path: str, html: str) -> None:
    """Write the page atomically (``--html``)."""
    write_text_atomic(path, html, "--html")
