"""The HTML report: every figure on the page, nothing that reaches outside it, and drawn by a real browser.

The browser tests run Debian's ``chromium`` headless (skipped when it is absent) on the pages themselves:
each figure alone must paint a picture, and the network log of loading the whole page must hold no request
the page made (a control page that does fetch shows the check can fail).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import escape
from pathlib import Path

import pytest

from conftest import run_cli

pytest.importorskip("matplotlib")

from wideep.plan import PlanSpec, plan  # noqa: E402
from wideep.plan.search import Targets, cost_ratio, search  # noqa: E402
from wideep.plan.studies import a2a_by_name, plan_placement  # noqa: E402
from wideep.plan.sweep import compare, compare_report  # noqa: E402
from wideep.report import cluster_pages, pages  # noqa: E402
from wideep.report.html import CSP  # noqa: E402
from wideep.specs.model import load_model  # noqa: E402
from wideep.specs.topology import load_cluster  # noqa: E402

MAX_PAGE_BYTES = 2_000_000  # the bound for a report of seven systems; each page here is smaller
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def built() -> dict[str, str]:
    """One page per kind, from small real runs."""
    spec = PlanSpec(model="deepseek-v3")
    result = search(spec, ["hgx-h200", "gb200-nvl72"], Targets(), "disagg", 8)
    m = load_model("deepseek-v3")
    cluster = load_cluster("hgx-h100", 16)
    study = plan_placement(m, cluster, 16, 16, 16, ["contiguous", "balanced", "global"], routing="zipf:1.2")
    stats = cluster_pages.place_statistics(None, "zipf:1.2", m, 16 * 16, 0)
    traffic = {"transport": "deepep-ll", "dtype": "fp8", "combine_dtype": "bf16", "seed": 0}
    res = a2a_by_name("deepseek-v3", "gb200-nvl72", 72, 72, 32, "nvlink-onesided")
    return {
        "search": pages.search_page(result, cost_ratio(result), spec, Targets(tpot_ms=50.0)),
        "plan": pages.plan_page([plan(PlanSpec(topology="hgx-h200", ep=16, gpus=16))]),
        "place": cluster_pages.place_page(study, "global", m, cluster, stats, traffic),
        "a2a": cluster_pages.a2a_page(res, load_cluster("gb200-nvl72", 72), "deepseek-v3", "uniform"),
        "compare": compare_page_of(PlanSpec(ep=8), ["hgx-h200", "gb200-nvl72"], [8, 64]),
    }


def compare_page_of(spec: PlanSpec, systems: list[str], batches: list[int]) -> str:
    """``wideep compare --html`` as the command builds it: the rows' plans made once, for the table and the page."""
    plans = compare(spec, systems, batches)
    return pages.compare_page(compare_report(spec, systems, batches, with_lead=True, plans=plans), spec.model,
                              plans=plans)


FIGURES = {"search": ["pareto", "cost", "terms", "graph"], "plan": ["terms", "graph"],
           "place": ["heatmap", "slots", "graph"], "a2a": ["graph"],
           "compare": ["pareto", "cost", "terms", "graph"]}


def figures_of(html: str) -> dict[str, list[str]]:
    """{data-figure name: [the figure elements]}."""
    out: dict[str, list[str]] = {}
    for m in re.finditer(r'<figure data-figure="([^"]+)">(.*?)</figure>', html, re.S):
        out.setdefault(m.group(1), []).append(m.group(2))
    return out


@pytest.mark.parametrize("kind", list(FIGURES))
def test_every_figure_is_on_the_page_as_inline_svg(built, kind):
    figs = figures_of(built[kind])
    assert set(FIGURES[kind]) <= set(figs)
    for name, elements in figs.items():
        for el in elements:
            svg = el.split("<figcaption>")[0].strip()
            assert svg.startswith("<svg") and svg.endswith("</svg>"), name
            assert svg.count("<path") + svg.count("<use") + svg.count("<image") > 10, name
    # each figure follows a paragraph that explains it
    for name in figs:
        before = built[kind].split(f'data-figure="{name}"')[0]
        assert len(before.rsplit('<p class="explain">', 1)[-1]) > 80


@pytest.mark.parametrize("kind", list(FIGURES))
def test_page_reaches_nothing_outside_itself(built, kind):
    html = built[kind]
    assert not EXTERNAL.search(html)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert f'content="{CSP}"' in html and "default-src 'none'" in CSP
    assert "@media print" in html
    assert len(html.encode()) < MAX_PAGE_BYTES
    assert re.findall(r'(?:src|href)="(?!#|data:)([^"]*)"', html) == []  # only fragments and data: URIs


def test_the_step_figure_names_each_term_and_its_binding(built):
    svg = figures_of(built["plan"])["terms"][0]
    d = plan(PlanSpec(topology="hgx-h200", ep=16, gpus=16)).to_dict()
    for t in d["terms"]:
        assert t["name"] in svg
        assert f"{t['ms'] / t['sol_ms']:.1f}x SOL ({t['binding']})" in svg
    assert escape(d["expert_parallel"]["binding_link"]) in built["plan"]


def test_compare_page_has_each_systems_step_and_graph_once(built):
    """Two systems, two batches each: one step figure and one cluster graph per system, of its first row."""
    html, figs = built["compare"], figures_of(built["compare"])
    assert len(figs["terms"]) == 2 and len(figs["graph"]) == 2
    for system, terms, graph in zip(["hgx-h200", "gb200-nvl72"], figs["terms"], figs["graph"]):
        p = plan(PlanSpec(ep=8, topology=system, batch=8))
        assert f"{system} x8: decode step by term" in terms
        assert f"decode step {p.to_dict()['step_ms']:.2f} ms" in terms
        assert f"bound by {escape(pages.decode_links(p)[1].binding_link)}" in graph.split("<figcaption>")[1]
    assert html.count("its first row of the table: attention TP1 x DP8, MoE EP8, 8 sequences/GPU)") == 2
    assert html.index("The procurement table") < html.index("decode step by term")


def test_search_page_tells_the_answer_and_the_assumptions(built):
    html = built["search"]
    for words in ("hgx-h200", "gb200-nvl72", "per GPU-hour", "calibration file", "fitted", "held out",
                  "TPOT &lt;= 50 ms", "Pareto front"):
        assert words in html, words


def test_html_without_matplotlib_is_one_line_exit_2(tmp_path):
    """Run in a Python where importing matplotlib fails: the option names the extra to install."""
    target = tmp_path / "r.html"
    code = ("import sys; sys.modules['matplotlib'] = None; sys.argv = ['wideep'] + sys.argv[1:]; "
            "from wideep.cli import main; main()")
    import sys

    r = subprocess.run([sys.executable, "-c", code, "a2a", "--model", "deepseek-v3", "--topology", "hgx-h200",
                        "--ep", "8", "--tokens", "8", "--html", str(target)], capture_output=True, text=True,
                       timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == "wideep: error: --html: HTML reports need matplotlib: pip install 'wideep[report]'"
    assert not target.exists()


def test_html_to_an_unwritable_path_fails_before_work(tmp_path):
    r = run_cli("a2a", "--model", "deepseek-v3", "--topology", "hgx-h200", "--ep", "8", "--tokens", "8",
                "--html", str(tmp_path / "missing" / "r.html"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--html" in r.stderr


def test_a2a_html_through_the_command_keeps_json_clean(tmp_path):
    target = tmp_path / "a2a.html"
    r = run_cli("a2a", "--model", "deepseek-v3", "--topology", "hgx-h200", "--gpus", "16", "--ep", "16",
                "--tokens", "16", "--html", str(target), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)  # nothing but JSON on stdout
    page = target.read_text()
    assert escape(data["binding_link"]) in page and "graph" in figures_of(page)


# --- in a real browser ------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium(tmp: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{page.stem}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def page_requests(tmp: Path, page: Path) -> list[str]:
    """URLs the page itself asked for while loading (the browser's own background requests left out)."""
    log = tmp / f"{page.stem}.netlog.json"
    chromium(tmp, page, f"--log-net-log={log}", "--dump-dom")
    data = json.loads(log.read_text())
    start = data["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in data["events"] if e["type"] == start
            and "file://" in e["params"].get("network_isolation_key", "")
            and not e["params"]["url"].startswith(("data:", "file:"))]


def inked_share(png: Path) -> float:
    """Share of pixels that are not white."""
    from matplotlib.image import imread

    img = imread(str(png))[..., :3]
    return float((img.min(axis=2) < 0.9).mean())


@needs_chromium
def test_the_network_check_sees_a_page_that_fetches(tmp_path):
    page = tmp_path / "control.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    assert page_requests(tmp_path, page) == ["http://127.0.0.1:9/x.png"]


@needs_chromium
@pytest.mark.parametrize("kind", ["search", "place"])
def test_browser_loads_the_page_without_any_request(built, tmp_path, kind):
    page = tmp_path / f"{kind}.html"
    page.write_text(built[kind])
    assert page_requests(tmp_path, page) == []


@needs_chromium
@pytest.mark.parametrize("kind", ["search", "place", "a2a"])
def test_browser_draws_every_figure(built, tmp_path, kind):
    """Each figure alone on a page with the report's head: the screenshot must show a picture."""
    head = built[kind].split("<body>")[0]
    for name, elements in figures_of(built[kind]).items():
        for i, svg in enumerate(elements):
            page = tmp_path / f"{kind}-{name}-{i}.html"
            page.write_text(f'{head}<body><figure data-figure="{name}">{svg}</figure></body></html>')
            png = tmp_path / f"{page.stem}.png"
            r = chromium(tmp_path, page, f"--screenshot={png}", "--window-size=1100,900")
            assert png.exists(), r.stderr[-500:]
            assert inked_share(png) > 0.005, f"{kind} figure {name} drew nothing"


@needs_chromium
def test_browser_screenshot_of_an_emptied_figure_is_blank(built, tmp_path):
    """Control: the same figure with its drawing taken out leaves the screenshot white, so the ink counted
    above comes from the drawing, not from the page around it."""
    head = built["a2a"].split("<body>")[0]
    svg = figures_of(built["a2a"])["graph"][0].split("<figcaption>")[0]
    empty = re.sub(r"(<svg[^>]*>).*(</svg>)", r"\1\2", svg, flags=re.S)
    page = tmp_path / "empty.html"
    page.write_text(f'{head}<body><figure data-figure="graph">{empty}</figure></body></html>')
    png = tmp_path / "empty.png"
    chromium(tmp_path, page, f"--screenshot={png}", "--window-size=1100,900")
    assert inked_share(png) < 0.001


def test_place_html_adds_the_references_to_the_page_not_to_the_output(tmp_path):
    """--html places contiguous and EPLB too, for the before/after figures; stdout keeps the one algorithm."""
    target = tmp_path / "place.html"
    args = ["place", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--gpus", "8", "--routing", "zipf:1.2",
            "--tokens", "32", "--algorithm", "global", "--json"]
    plain = run_cli(*args)
    r = run_cli(*args, "--html", str(target))
    assert r.returncode == 0, r.stderr
    with_page, without = json.loads(r.stdout), json.loads(plain.stdout)
    assert with_page["algorithm"] == "global"
    assert {k: v for k, v in with_page.items() if k != "runtime_s"} == {k: v for k, v in without.items()
                                                                        if k != "runtime_s"}
    page = target.read_text()
    assert {"heatmap", "slots", "graph"} <= set(figures_of(page))
    assert "contiguous (before)" in page and "balanced (EPLB)" in page


def test_calibration_provenance_names_aiconfigurator_tables():
    """A calibration table read from AIConfigurator is labelled so, whether the whole file came from it (the
    Blackwell files) or one table (the H200 file's [attention]); the H200 file's own measurements are not."""
    from wideep.perf.roofline import ORIGIN_WORDS
    from wideep.report.pages import validation

    aic, measured = ORIGIN_WORDS["aic"], ORIGIN_WORDS["measured"]
    assert validation("h200-sxm.toml [attention]") == aic
    assert validation("b200.toml [grouped_gemm]") == aic
    assert validation("h200-sxm.toml [gemm_shape]") == measured
    # what is neither: the all-reduce model, a count on the routing sample, a file the user gave
    assert "fitted on one measured series" in validation("collectives/allreduce.toml")
    assert "nothing fitted" in validation("counted on a held-out uniform routing sample (4 MoE layers, 1 steps)")
    assert "nothing fitted" in validation("estimate: slots x (1 - exp(-copies / slots))")
    assert validation("/tmp/my-cal.toml [gemm]") == ORIGIN_WORDS["given"]


def test_the_step_text_says_whether_micro_batches_overlap():
    from wideep.plan import PlanSpec, plan
    from wideep.report.pages import step_sections

    for overlap, words in (("none", "One micro-batch: nothing overlaps"), ("tbo", "Two micro-batches overlap")):
        p = plan(PlanSpec(topology="hgx-h100", overlap=overlap))
        assert words in step_sections(p, p.to_dict())[0].explain


def test_a_pareto_figure_with_no_point_says_so_without_a_warning():
    import warnings

    from wideep.report.figures import pareto_svg

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = pareto_svg({"hgx-h100": []}, "nothing fits")
    assert "no configuration fits in HBM" in page


def test_pages_name_the_routing_and_transport_as_resolved():
    from wideep.plan import PlanSpec, plan
    from wideep.report.cluster_pages import routing_words
    from wideep.report.pages import assumptions_rows

    assert routing_words("auto", "deepseek-v3") == "auto: lognormal:0.39,0.57"
    assert routing_words("uniform", "deepseek-v3") == "uniform"
    rows = dict(assumptions_rows(plan(PlanSpec(topology="hgx-h200", ep=8, tp=8, batch=1)).to_dict()))
    assert rows["transport"].startswith("none: the attention group spans the EP group")
