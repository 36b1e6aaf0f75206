"""The catalog and KV commands through the installed ``wideep`` command."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, run_process


def test_kv_json_reproduces_deepseek_figures():
    r = run_cli("kv", "--model", "deepseek-v3", "--context", "131072", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert {"model", "context_tokens", "kv_dtype", "kv_bytes_per_token", "kv_bytes_total"} <= data.keys()
    assert data["kv_bytes_per_token"] == 70272
    assert data["kv_bytes_total"] / 2**30 == pytest.approx(8.58, abs=0.005)


def test_kv_compares_mla_and_gqa_in_one_table():
    r = run_cli("kv", "--model", "deepseek-v3", "--model", "llama-3.1-70b", "--model", "llama-3.1-405b")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    gib = {line.split()[0]: float(line.split()[-1]) for line in lines if line.startswith(("deepseek", "llama"))}
    assert gib == pytest.approx({"deepseek-v3": 8.58, "llama-3.1-70b": 40.0, "llama-3.1-405b": 63.0}, abs=0.01)


def test_topologies_show_gb200_json():
    data = json.loads(run_cli("topologies", "show", "gb200-nvl72", "--json").stdout)
    assert data["gpus"] == 72 and data["domains"] == 1
    assert data["injection_GBps"]["nvlink"] == 900


def test_two_racks_are_joined_by_the_scale_out_fabric():
    data = json.loads(run_cli("topologies", "show", "gb200-nvl72", "--gpus", "144", "--json").stdout)
    assert data["domains"] == 2 and data["injection_GBps"]["scale_out"] == 50


@pytest.mark.parametrize("args", [["models", "list"], ["topologies", "list"], ["models", "show", "kimi-k2"]])
def test_json_output_is_only_json(args):
    r = run_cli(*args, "--json")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)


def test_models_list_names_every_catalog_model():
    out = run_cli("models", "list").stdout
    for name in ("deepseek-v3", "kimi-k2", "qwen3-235b-a22b", "mixtral-8x7b", "gpt-oss-120b", "llama-3.1-405b"):
        assert name in out


def test_works_from_any_directory(tmp_path):
    r = run_process("topologies", "show", "hgx-h100", "--gpus", "32", "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["domains"] == 4


def test_the_installed_command_behaves_as_in_process():
    """The other tests run wideep's entry point in the test process; the installed console script, in a
    process of its own, gives the same output, the same one-line error with exit code 2, and clean --json."""
    args = ("plan", "--topology", "hgx-h200", "--ep", "8", "--batch", "16")
    alone, here = run_process(*args), run_cli(*args)
    assert alone.returncode == here.returncode == 0 and alone.stdout == here.stdout and alone.stderr == ""
    bad = run_process("plan", "--batch", "0")
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr == run_cli("plan", "--batch", "0").stderr
    assert bad.stderr.startswith("wideep: error: --batch:") and bad.stderr.count("\n") == 1
    piped = run_process("a2a", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--ep", "8", "--tokens", "64", "--json")
    assert piped.returncode == 0 and piped.stderr == "" and json.loads(piped.stdout)["ep_size"] == 8
