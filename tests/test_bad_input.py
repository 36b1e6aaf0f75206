"""Bad input: one line naming the file, the field and the problem, exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
GPU = (ROOT / "topologies" / "gpus" / "h100-sxm.toml").read_text()
SYSTEM = (ROOT / "topologies" / "systems" / "hgx-h100.toml").read_text()


def assert_one_line_error(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""


def system_with_gpu(tmp_path: Path, gpu_text: str) -> Path:
    """A copy of hgx-h100 whose gpu field points at a GPU file written from ``gpu_text``."""
    gpu = tmp_path / "gpu.toml"
    gpu.write_text(gpu_text)
    system = tmp_path / "system.toml"
    system.write_text(SYSTEM.replace('gpu = "h100-sxm"', f'gpu = "{gpu}"', 1))
    return system


@pytest.mark.parametrize("edit,field,problem", [
    (lambda t: 'hbm_speed = 3\n' + t, "hbm_speed", "unknown key"),
    (lambda t: t.replace("tdp_W = 700", ""), "tdp_W", "missing required field"),
    (lambda t: t.replace("hbm_TBps = 3.35", 'hbm_TBps = "fast"'), "hbm_TBps", "expected float"),
    (lambda t: t.replace("hbm_TBps = 3.35", "hbm_TBps = -3.35"), "hbm_TBps", "must be > 0"),
    (lambda t: t.replace("hbm_TBps = 3.35", "hbm_TBps = 0"), "hbm_TBps", "must be > 0"),
    (lambda t: t.replace("hbm_TBps = 3.35", "hbm_TBps = nan"), "hbm_TBps", "must be finite"),
    (lambda t: t.replace("hbm_TBps = 3.35", "hbm_TBps = inf"), "hbm_TBps", "must be finite"),
    (lambda t: t.replace('name = "', 'name = ', 1), None, "malformed TOML"),
])
def test_bad_gpu_file(tmp_path, edit, field, problem):
    system = system_with_gpu(tmp_path, edit(GPU))
    needles = [str(tmp_path / "gpu.toml"), problem] + ([field] if field else [])
    assert_one_line_error(run_cli("topologies", "show", str(system)), *needles)


def test_unknown_gpu_reference(tmp_path):
    system = tmp_path / "system.toml"
    system.write_text(SYSTEM.replace('gpu = "h100-sxm"', 'gpu = "h100-sxn"', 1))
    assert_one_line_error(run_cli("topologies", "show", str(system)), str(system), "gpu", "h100-sxm")


def test_negative_system_field(tmp_path):
    system = tmp_path / "system.toml"
    system.write_text(SYSTEM.replace("gpus_per_domain = 8", "gpus_per_domain = -8", 1))
    assert_one_line_error(run_cli("topologies", "show", str(system)), "scale_up.gpus_per_domain", "must be > 0")


def test_unreachable_custom_topology(tmp_path):
    text = (ROOT / "examples" / "two-boxes.toml").read_text()
    cut = text[: text.rindex("[[edges]]")]  # drop the link between the boxes
    path = tmp_path / "islands.toml"
    path.write_text(cut)
    assert_one_line_error(run_cli("topologies", "show", str(path)), str(path), "edges", "cannot reach")


def test_custom_topology_edge_to_unknown_node(tmp_path):
    text = (ROOT / "examples" / "two-boxes.toml").read_text().replace('dst = "box1/switch"', 'dst = "box9/switch"')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert_one_line_error(run_cli("topologies", "show", str(path)), "edges[4].dst", "unknown node")


def test_malformed_config_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"architectures": ["MixtralForCausalLM"],')
    assert_one_line_error(run_cli("models", "show", str(path)), str(path), "malformed JSON")


def test_config_json_missing_field(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"architectures": ["MixtralForCausalLM"], "hidden_size": 4096}))
    assert_one_line_error(run_cli("models", "show", str(path)), str(path), "num_hidden_layers", "missing")


def test_config_json_unsupported_architecture(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"architectures": ["BertModel"]}))
    assert_one_line_error(run_cli("models", "show", str(path)), "architectures", "unsupported architecture")


def test_unknown_model_suggests_closest():
    assert_one_line_error(run_cli("kv", "--model", "deepseek-v4"), "--model", "deepseek-v3")


def test_unknown_topology_suggests_closest():
    assert_one_line_error(run_cli("topologies", "show", "gb200-nvl36"), "--topology", "gb200-nvl72")


def test_negative_context():
    assert_one_line_error(run_cli("kv", "--model", "deepseek-v3", "--context", "-5"), "--context", "must be > 0")


def test_missing_file():
    assert_one_line_error(run_cli("models", "show", "no/such/config.json"), "no such file")


def test_gpus_not_whole_domains():
    assert_one_line_error(run_cli("topologies", "show", "hgx-h100", "--gpus", "12"), "--gpus", "multiple")


def test_system_faster_than_its_gpu(tmp_path):
    system = tmp_path / "system.toml"
    system.write_text(SYSTEM.replace("bw_GBps = 450", "bw_GBps = 900", 1))
    assert_one_line_error(run_cli("topologies", "show", str(system)), "scale_up.bw_GBps", "exceeds the NVLink bandwidth")


@pytest.mark.parametrize("args,needle", [
    (["kv"], "--model"),
    (["topologies", "show", "hgx-h100", "--gpus", "abc"], "--gpus"),
    (["plan", "--topology", "hgx-h100", "--batch", "nan"], "--batch"),
    (["models", "nope"], "nope"),
    (["kv", "--model", "deepseek-v3", "--batch", "0"], "--batch"),
])
def test_option_parser_errors_are_one_line(args, needle):
    assert_one_line_error(run_cli(*args), needle)


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("wideep ")


@pytest.mark.parametrize("args,needle", [
    (["a2a", "--model", "deepseek-v3", "--topology", "hgx-h100", "--ep", "8", "--tokens", "8", "--routing",
      "topics:99999999999999999999"], "topics:K needs"),
    (["a2a", "--model", "deepseek-v3", "--topology", "hgx-h100", "--ep", "8", "--tokens", "8", "--routing",
      "topics:1.5"], "integer K"),
    (["plan", "--topology", "hgx-h100", "--price-per-gpu-hour", "2", "--price-scenario", "semianalysis-tco"],
     "not both"),
    (["plan", "--topology", "hgx-h100", "--kv-dtype", "nvfp4"], "--kv-dtype"),
    (["compare", "--topology", "hgx-h100", "--csv", ""], "needs a file name"),
])
def test_more_bad_options(args, needle):
    assert_one_line_error(run_cli(*args), needle)


def test_huge_expert_id_in_a_placement_file(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"physical_to_logical_map": [[2**70] + list(range(1, 288))] * 58}))
    r = run_cli("a2a", "--model", "deepseek-v3", "--topology", "hgx-h100", "--gpus", "32", "--ep", "32",
                "--tokens", "8", "--placement", str(path))
    assert_one_line_error(r, str(path), "out of range")


def test_missing_xlsx_dependency_writes_nothing(tmp_path):
    try:
        import openpyxl  # noqa: F401
        pytest.skip("openpyxl is installed")
    except ImportError:
        pass
    r = run_cli("compare", "--topology", "hgx-h100", "--csv", str(tmp_path / "a.csv"), "--xlsx", str(tmp_path / "a.xlsx"))
    assert_one_line_error(r, "--xlsx", "openpyxl")
    assert list(tmp_path.iterdir()) == []
