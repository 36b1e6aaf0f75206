"""``--calibration trtllm``: every GPU on AIConfigurator's TensorRT-LLM kernel tables (a like-for-like comparison)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from wideep.core.errors import InputError
from wideep.perf.roofline import load_calibration
from wideep.plan import PlanSpec, compare_topologies, plan
from wideep.plan.comparison import plans_note

KERNEL_TERMS = ("attn_core", "attn_proj", "shared_experts", "routed_experts")


def kernel_files(p) -> set[str]:
    return {p.calibration[t].split(" [")[0] for t in KERNEL_TERMS}


@pytest.mark.parametrize("topology,file", [("hgx-h200", "trtllm/h200-sxm.toml"), ("hgx-h100", "trtllm/h100-sxm.toml"),
                                           ("hgx-b200", "b200.toml")])
def test_hopper_reads_the_set_and_blackwell_its_own_aic_file(topology, file):
    assert kernel_files(plan(PlanSpec(topology=topology, ep=8, batch=32, calibration="trtllm"))) == {file}


def test_the_set_replaces_the_gpus_own_file_rather_than_overlaying_it():
    """H200's measured file holds a [memory_kernel] curve; under trtllm the non-GEMM kernels fall back to the
    default floors, as on Blackwell, instead of mixing PyTorch's measurements into TensorRT-LLM's."""
    shipped, trtllm = load_calibration("h200-sxm"), load_calibration("h200-sxm", "trtllm")
    assert shipped.memory_bytes and not trtllm.memory_bytes
    assert "h200-sxm.toml" not in trtllm.source.replace("trtllm/h200-sxm.toml", "")


def test_one_kernel_source_leaves_no_note_in_a_comparison():
    topologies = ["hgx-h100", "hgx-h200", "gb200-nvl72"]
    mixed = compare_topologies(PlanSpec(ep=8, batch=32), topologies)
    alike = compare_topologies(PlanSpec(ep=8, batch=32, calibration="trtllm"), topologies)
    assert plans_note(mixed.plans) and plans_note(alike.plans) == ""


def test_a_gpu_without_the_set_is_one_line():
    with pytest.raises(InputError) as exc:
        load_calibration("h800-sxm", "trtllm")
    assert exc.value.source == "--calibration" and "h800-sxm" in str(exc.value) and "h200-sxm" in str(exc.value)
    r = run_cli("plan", "--topology", "dgx-h800", "--ep", "8", "--calibration", "trtllm")
    assert r.returncode == 2 and "--calibration" in r.stderr and r.stderr.count("\n") == 1


def test_search_with_a_missing_set_or_file_is_an_error_not_an_empty_search(tmp_path):
    for value, words in (("trtllm", "no trtllm kernel tables for h800-sxm"), (str(tmp_path / "no.toml"), "no.toml")):
        r = run_cli("search", "--topology", "hgx-h200", "--topology", "dgx-h800", "--gpus", "8", "--calibration", value)
        assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_file_named_like_the_set_is_not_read_silently(tmp_path):
    (tmp_path / "trtllm").write_text("[overlap]\nhidden_fraction = 0.5\n")
    r = run_cli("plan", "--topology", "hgx-h200", "--ep", "8", "--calibration", "trtllm", cwd=tmp_path)
    assert r.returncode == 2 and "give ./trtllm" in r.stderr
    r = run_cli("plan", "--topology", "hgx-h200", "--ep", "8", "--calibration", "./trtllm", "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["calibration"]["overlap"] == f"{tmp_path / 'trtllm'} [overlap]"
