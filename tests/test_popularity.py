"""``lognormal`` routing and ``auto``: a model's measured expert popularity, checked against a published figure
the fit did not use (and, where SGLang's statistics files are present, against them)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from wideep.core.errors import CatalogError
from wideep.plan.ep_group import busiest_share
from wideep.routing.stats import resolve_auto, synthetic_routing
from wideep.specs.model import load_model

R1 = load_model("deepseek-r1")
R1_FILE = Path(__file__).resolve().parents[1] / "models" / "deepseek-r1.toml"
FOLDER = Path(os.environ.get("WIDEEP_SGLANG_STATS", "/tmp/research/routing/sglang_ep_statistics"))


def busiest_block(load: np.ndarray, blocks: int) -> float:
    per = load.reshape(len(load), blocks, -1).sum(axis=2)
    return float((per.max(axis=1) / per.mean(axis=1)).mean())


def test_auto_names_the_models_measured_popularity_or_uniform():
    assert resolve_auto("auto", R1) == "lognormal:0.39,0.57"
    assert resolve_auto("auto", load_model("qwen3-30b-a3b")) == "uniform"  # nothing measured for it
    assert resolve_auto("auto", load_model("gpt-oss-20b")) == "lognormal:0,0.81"
    assert resolve_auto("zipf:1", R1) == "zipf:1"


def test_zero_spread_is_uniform_routing():
    load = synthetic_routing(R1, "lognormal:0,0", 16384, layers=4).load
    assert busiest_block(load, 8) < 1.03


def test_popularity_is_shared_by_every_seed():
    """A placement fitted to one sample is judged on another (plan's held-out sample): both must see the same
    popular experts, only other tokens."""
    a, b = (synthetic_routing(R1, "auto", 16384, seed=s, layers=2).load for s in (0, 1))
    assert not np.array_equal(a, b)
    assert min(np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)) > 0.95


@pytest.mark.parametrize("placement, redundant, published", [("contiguous", 0, 2.564), ("balanced", 32, 1.109)])
def test_trtllm_deepseek_r1_ep32_hottest_rank_held_out(placement, redundant, published):
    """TensorRT-LLM tech blog 4, Table 1 (DeepSeek-R1, EP32 on GB200, decode, machine translation, 1,024 selections
    per rank and iteration, i.e. 4,096 tokens a step): the hottest rank over the mean is 2.564 without EPLB and
    1.109 with it (9 slots per rank). Not used by the fit (SGLang's DeepSeek-V3 decode statistics): the plan's own
    busiest-GPU measurement gives 2.43 (-5%) and 1.09 (-2%) today; 15% allowed."""
    share = busiest_share(R1, "gb200-nvl72", 32, redundant, "auto", placement, 0, 4096)
    assert 32 * share == pytest.approx(published, rel=0.15)


def test_no_eplb_deployment_is_slower_on_measured_popularity():
    args = ["plan", "--model", "deepseek-r1", "--topology", "hgx-h200", "--ep", "8", "--batch", "128",
            "--redundant", "0", "--placement", "contiguous", "--json"]
    auto, uniform = (json.loads(run_cli(*args, "--routing", r).stdout) for r in ("auto", "uniform"))
    assert auto["expert_parallel"]["routing"] == "lognormal:0.39,0.57"
    # without EPLB the GPU holding the popular group takes ~1.8x the mean; decode at this batch still reads every
    # expert's weights either way, prefill's expert GEMMs scale with the busiest GPU's rows
    assert auto["expert_parallel"]["busiest_share"] > 1.6 * uniform["expert_parallel"]["busiest_share"]
    prefill = lambda p: p["prefill"]["breakdown_ms"]["routed_experts"]  # noqa: E731
    assert prefill(auto) > 1.6 * prefill(uniform)


@pytest.mark.parametrize("text, problem", [("group_sigma = 2.0\nexpert_sigma = 0.5", "routing.group_sigma: must be <= 1.5"),
                                           ("group_sigma = 0.4", "routing.expert_sigma: missing"),
                                           ("group_sigma = 0.4\nexpert_sigma = -1", "routing.expert_sigma: must be >= 0"),
                                           ("group_sigma = 0.4\nexpert_sigma = 0.5\nzipf = 1", "routing.zipf: unknown key")])
def test_bad_routing_table_names_file_and_field(tmp_path, text, problem):
    path = tmp_path / "m.toml"
    path.write_text(R1_FILE.read_text().split("[routing]")[0] + "[routing]\n" + text + "\n")
    with pytest.raises(CatalogError, match=problem.replace(".", r"\.")):
        load_model(str(path))
    result = run_cli("plan", "--model", str(path), "--topology", "hgx-h200", "--ep", "8")
    assert result.returncode == 2 and problem in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(len(list(FOLDER.glob("*.json"))) != 12, reason=f"SGLang's statistics files are not in {FOLDER}")
def test_busiest_blocks_against_sglang_decode_statistics():
    """Fitted to the EP8 block (1.95) and in-group spread; EP16/32/64 are held out: -11/-15/-15% today (the real
    statistics also cluster popular experts inside a group, which the model does not), 20% allowed."""
    spec = importlib.util.spec_from_file_location("routing_fit", Path(__file__).resolve().parents[1] / "benchmarks"
                                                  / "routing_fit.py")
    fit = importlib.util.module_from_spec(spec)
    sys.modules["routing_fit"] = fit
    spec.loader.exec_module(fit)
    from wideep.routing.files import load_routing
    real = np.concatenate([load_routing(f, load_model("deepseek-v3")).load for f in sorted(FOLDER.glob("decode*.json"))])
    synth = synthetic_routing(load_model("deepseek-v3"), "auto", 16384, layers=58).load
    assert busiest_block(synth, 8) == pytest.approx(busiest_block(real, 8), rel=0.02)
    for blocks in (16, 32, 64):
        assert busiest_block(synth, blocks) == pytest.approx(busiest_block(real, blocks), rel=0.20), blocks


def test_group_sets_drawn_one_by_one_match_the_enumerated_sets(monkeypatch):
    """Past GROUP_SETS_MAX a token's groups are drawn one by one; each group's share of selections agrees
    with the enumerated draw's within sampling noise (60,000 tokens: about 1% relative)."""
    from wideep.routing import stats

    group_w, expert_w = stats.lognormal_popularity(0, 256, 8, 0.39, 0.57)

    def group_shares(seed: int) -> np.ndarray:
        ids = stats.weighted_topk(np.random.default_rng(seed), 60_000, group_w, expert_w, 8, 4)
        assert (np.diff(ids, axis=1) > 0).all()  # distinct experts, sorted
        assert max(np.unique(row // 32).size for row in ids[:500]) <= 4  # within topk_group groups
        return np.bincount(ids.ravel() // 32, minlength=8) / ids.size

    enumerated = group_shares(1)
    monkeypatch.setattr(stats, "GROUP_SETS_MAX", 0)
    one_by_one = group_shares(2)
    assert np.abs(one_by_one / enumerated - 1).max() < 0.03
    assert enumerated.max() / enumerated.min() > 1.5  # the popularity is skewed, so the check can fail


GPT_OSS_COUNTS = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "gpt-oss-20b-expert-counts.csv"


@pytest.mark.parametrize("blocks", [4, 8, 16])
def test_gpt_oss_busiest_blocks_against_its_measured_routing(blocks):
    """gpt-oss-20b's expert_sigma is fitted to the spread of its measured expert loads (benchmarks/data/, 215,438
    generated tokens); the busiest of 4/8/16 contiguous expert blocks (EP4/8/16 without EPLB) is held out:
    +8/+9/+7% against the measured numbering today, 15% allowed."""
    from wideep.routing.files import load_routing

    model = load_model("gpt-oss-20b")
    real = load_routing(str(GPT_OSS_COUNTS), model).load
    synth = synthetic_routing(model, "auto", 16384).load
    cv = lambda x: float((x.std(axis=1) / x.mean(axis=1)).mean())  # noqa: E731
    assert cv(synth) == pytest.approx(cv(real), rel=0.02)  # the fit
    assert busiest_block(synth, blocks) == pytest.approx(busiest_block(real, blocks), rel=0.15)


def test_plan_on_a_statistics_file_uses_all_its_layers():
    """A file's layers differ in skew (gpt-oss-20b's first four: busiest of 8 blocks 1.37; all 24: 1.43), so the
    plan keeps every one: its busiest GPU at EP8 (contiguous, loads only) is the file's own mean figure."""
    from wideep.routing.files import load_routing

    real = load_routing(str(GPT_OSS_COUNTS), load_model("gpt-oss-20b")).load
    out = json.loads(run_cli("plan", "--model", "gpt-oss-20b", "--topology", "hgx-h200", "--ep", "8", "--redundant", "0",
                             "--placement", "contiguous", "--routing", str(GPT_OSS_COUNTS), "--json").stdout)
    assert 8 * out["expert_parallel"]["busiest_share"] == pytest.approx(busiest_block(real, 8), rel=0.005)
    assert "(24 MoE layers)" in out["calibration"]["experts_touched"]


def test_group_spread_needs_routing_groups(tmp_path):
    """A model without routing groups takes no group spread: in its file (one-line error naming the field) and in
    an explicit --routing lognormal:G,E (rather than ignoring G)."""
    from wideep.core.errors import InputError

    text = (Path(__file__).resolve().parents[1] / "models" / "gpt-oss-20b.toml").read_text()
    path = tmp_path / "m.toml"
    path.write_text(text.replace("group_sigma = 0.0", "group_sigma = 0.3"))
    with pytest.raises(CatalogError, match=r"routing\.group_sigma: must be 0"):
        load_model(str(path))
    with pytest.raises(InputError, match="needs G = 0"):
        synthetic_routing(load_model("gpt-oss-20b"), "lognormal:0.3,0.8", 64, layers=1)
    assert synthetic_routing(load_model("gpt-oss-20b"), "lognormal:0,8e-1", 64, layers=1).load.sum() == 64 * 4
