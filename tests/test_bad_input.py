"""Bad input: one line naming the file, the field and the problem, exit code 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, run_process

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


# ------------------------------------------------------------------ hardening: every reader, every size


def run_quick(*args: str) -> subprocess.CompletedProcess:
    """``wideep ARGS`` that must refuse at once, in a process of its own: a hang fails the test after a minute."""
    return run_process(*args, timeout=60)


A2A = ["a2a", "--model", "deepseek-v3", "--topology", "hgx-h100", "--ep", "8", "--tokens", "8"]


def deep_json(depth: int, key: str) -> str:
    return json.dumps({key: 0}).replace("0", "[" * depth + "]" * depth)


@pytest.mark.parametrize("name, text, args", [
    ("stats.json", deep_json(1000, "load"), lambda p: [*A2A, "--routing", p]),
    ("placement.json", deep_json(1000, "physical_to_logical_map"), lambda p: [*A2A, "--placement", p]),
    ("config.json", deep_json(1000, "architectures"), lambda p: ["models", "show", p]),
    ("model.toml", 'name = "m"\nx = ' + "[" * 500 + "]" * 500 + "\n", lambda p: ["models", "show", p]),
    ("topology.toml", "x = " + "{a = " * 500 + "1" + "}" * 500 + "\n", lambda p: ["topologies", "show", p]),
    ("calibration.toml", "[gemm]\nx = " + "[" * 500 + "]" * 500 + "\n",
     lambda p: ["plan", "--topology", "hgx-h100", "--calibration", p]),
])
def test_deeply_nested_files(tmp_path, name, text, args):
    path = tmp_path / name
    path.write_text(text)
    assert_one_line_error(run_quick(*args(str(path))), str(path), "nested too deeply")


@pytest.mark.parametrize("save", [
    lambda p: np.save(p / "s.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
    lambda p: np.savez(p / "s.npz", load=np.array([{"a": 1}], dtype=object)),
])
def test_object_arrays_get_our_own_message(tmp_path, save):
    save(tmp_path)
    path = next(tmp_path.iterdir())
    r = run_quick(*A2A, "--routing", str(path))
    assert_one_line_error(r, str(path), "Python objects")
    assert "allow_pickle" not in r.stderr


def test_object_array_placement(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.array([[None]], dtype=object), allow_pickle=True)
    r = run_quick(*A2A, "--placement", str(path))
    assert_one_line_error(r, str(path), "Python objects")


@pytest.mark.parametrize("option, value, limit", [
    ("--mtp", "99999999999999999999", "between 0 and 8"),
    ("--mtp", "9", "between 0 and 8"),
    ("--batch", "1" + "0" * 400, "between 1 and 1,048,576"),
    ("--context", "100000000000000000", "between 1 and 16,777,216"),
    ("--prefill-tokens", "100000000000000000", "between 1 and 16,777,216"),
    ("--isl", "100000000000000000", "between 1 and 16,777,216"),
    ("--acceptance", "nan", "[0, 1]"),
])
def test_counts_that_drive_loops_are_bounded(option, value, limit):
    for command in ("plan", "compare"):
        assert_one_line_error(run_quick(command, "--topology", "hgx-h100", option, value), option, limit)


def test_kv_context_is_bounded():
    assert_one_line_error(run_quick("kv", "--model", "deepseek-v3", "--context", "9" * 30), "--context", "16,777,216")


def test_placement_too_large_is_refused_up_front():
    r = run_quick("place", "--model", "deepseek-v3", "--topology", "hgx-h100", "--gpus", "1024", "--redundant",
                  "768", "--routing", "topics:8", "--tokens", "256")
    assert_one_line_error(r, "--tokens", "limit")


def test_loads_whose_sum_overflows(tmp_path):
    path = tmp_path / "huge.npy"
    np.save(path, np.full((58, 256), 1e308))
    assert_one_line_error(run_quick(*A2A, "--routing", str(path)), str(path), "load", "largest float")


@pytest.mark.parametrize("edit, field, problem", [
    (lambda t: t + '\n[[edges]]\nsrc = "box0/gpu0"\ndst = "box0/gpu0"\nbw_GBps = 1\nlatency_us = 0\ntier = "nvlink"\n',
     "edges[", "to itself"),
    (lambda t: t + "\n" + t[t.index("[[edges]]"):].split("\n\n")[0] + "\n", "edges[", "duplicate link"),
])
def test_custom_topology_self_loop_and_duplicate_edge(tmp_path, edit, field, problem):
    path = tmp_path / "t.toml"
    path.write_text(edit((ROOT / "examples" / "two-boxes.toml").read_text()))
    assert_one_line_error(run_quick("topologies", "show", str(path)), str(path), field, problem)


def test_ep_on_a_dense_model_is_an_error():
    assert_one_line_error(run_quick("plan", "--model", "llama-3.1-70b", "--topology", "hgx-h100", "--ep", "8"),
                          "--ep", "dense")
    r = run_quick("plan", "--model", "llama-3.1-70b", "--topology", "hgx-h100", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ep"] == 1


def test_format_without_out(tmp_path):
    r = run_quick("place", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--gpus", "8", "--routing",
                  "uniform", "--format", "vllm")
    assert_one_line_error(r, "--format", "--out")


@pytest.mark.parametrize("args", [[], ["models"], ["topologies"]])
def test_a_group_alone_prints_its_help(args):
    r = run_quick(*args)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("Usage: wideep") and "Commands:" in r.stdout


def test_flags_render_as_flags():
    r = run_quick("kv", "--help")
    assert r.returncode == 0
    assert "<bool>" not in r.stdout
    assert any(line.split()[:1] == ["--json"] and "Machine-readable" in line for line in r.stdout.splitlines())


def test_help_imports_no_heavy_module():
    code = "import sys, wideep.cli; print(sorted(m for m in ('numpy', 'scipy', 'networkx') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_unwritable_output_fails_first_and_writes_nothing(tmp_path):
    r = run_quick("compare", "--topology", "hgx-h100", "--svg", str(tmp_path / "a.svg"), "--csv",
                  str(tmp_path / "no" / "a.csv"))
    assert_one_line_error(r, "--csv", "no folder")
    assert list(tmp_path.iterdir()) == []
    r = run_quick("place", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--gpus", "8", "--routing",
                  "uniform", "--out", str(tmp_path))
    assert_one_line_error(r, "--out", "is a folder")


@pytest.mark.parametrize("args", [
    lambda d: ["plan", "--topology", "hgx-h200", "--calibration", d],
    lambda d: ["plan", "--topology", d + "/"],
    lambda d: [*A2A, "--placement", d],
])
def test_a_folder_where_a_file_belongs_is_named_a_folder(tmp_path, args):
    folder = tmp_path / "cal"
    folder.mkdir()
    assert_one_line_error(run_quick(*args(str(folder))), "is a folder, not a file")


def test_a_file_that_is_not_numpy_is_named_so_not_called_pickled(tmp_path):
    path = tmp_path / "stats.npz"
    path.write_bytes(b"not a zip archive")
    assert_one_line_error(run_quick(*A2A, "--routing", str(path)), "stats.npz: is not a numpy file (.npy or .npz)")
