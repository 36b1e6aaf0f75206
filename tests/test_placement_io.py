"""Engine placement files: writers, the --placement reader, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wideep.core.errors import CatalogError, InputError
from wideep.specs.model import load_model
from wideep.placement.table import Placement
from wideep.placement.files import load_placement, read_placement_table, render, write_placement
from wideep.specs.topology import load_cluster


@pytest.fixture
def setup():
    model = load_model("deepseek-v3")
    cluster = load_cluster("hgx-h100", 32)
    table = np.tile(np.arange(288) % 256, (model.moe_layers, 1))
    return model, cluster, Placement(table, 256, 32, np.arange(32) // 8, "contiguous")


@pytest.mark.parametrize("fmt, suffix", [("sglang", "json"), ("vllm", "json"), ("trtllm", "yaml"), ("json", "json")])
def test_round_trip(tmp_path, setup, fmt, suffix):
    model, cluster, p = setup
    path = tmp_path / f"p.{suffix}"
    write_placement(path, p, fmt, model, {"algorithm": "contiguous"})
    back = load_placement(path, model, cluster, 32)
    assert np.array_equal(back.phy2log, p.phy2log) and back.slots_per_gpu == 9


def test_trtllm_layout(setup):
    model, _, p = setup
    text = render(p, "trtllm", model)
    lines = text.splitlines()
    assert lines[0] == "num_slots: 288" and lines[1] == "initial_global_assignments:"
    assert lines[2].startswith("  3: [0, 1, 2,")  # DeepSeek-V3: first 3 layers dense, MoE from layer 3
    assert lines[-2].startswith("  60: [") and lines[-1] == "layer_updates_per_iter: 0"


def test_sglang_layout(setup):
    model, _, p = setup
    data = json.loads(render(p, "sglang", model))
    assert list(data) == ["physical_to_logical_map"] and len(data["physical_to_logical_map"]) == 58


@pytest.mark.parametrize("text, suffix, problem", [
    ('{"x": 1}', "json", "physical_to_logical_map: missing required field"),
    ('{"physical_to_logical_map": [[0, 1], [0]]}', "json", "different slot counts"),
    ('{"physical_to_logical_map": [[0, true]]}', "json", "entries must be integers"),
    ("{oops", "json", "malformed JSON"),
    ("num_slots: 4\ninitial_global_assignments:\n  3: [0, 1, x, 0]\n", "yaml", "line 3"),
    ("num_slots: 5\ninitial_global_assignments:\n  3: [0, 1, 1, 0]\n", "yaml", "num_slots"),
    ("bogus line\n", "yaml", "unexpected line"),
])
def test_bad_files(tmp_path, text, suffix, problem):
    path = tmp_path / f"bad.{suffix}"
    path.write_text(text)
    with pytest.raises(CatalogError) as err:
        read_placement_table(path)
    assert problem in str(err.value) and str(path) in str(err.value)


def test_wrong_shape_for_model(tmp_path, setup):
    model, cluster, p = setup
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"physical_to_logical_map": p.phy2log[:2].tolist()}))
    with pytest.raises(InputError, match="has 2 layers, the model has 58"):
        load_placement(path, model, cluster, 32)
    path.write_text(json.dumps({"physical_to_logical_map": p.phy2log.tolist()}))
    with pytest.raises(InputError, match="do not divide over EP size 7"):
        load_placement(path, model, load_cluster("hgx-h100", 8), 7)


def test_unknown_format(setup):
    model, _, p = setup
    with pytest.raises(InputError, match="--format"):
        render(p, "onnx", model)


def test_trtllm_layer_keys_follow_the_models_moe_layers():
    """Llama-4 Maverick interleaves MoE layers (1, 3, ..., 47); DeepSeek-V3's start after 3 dense ones."""
    from wideep.specs.model import load_model
    from wideep.placement.table import Placement
    from wideep.placement.files import render

    for model_id, first, second in (("llama-4-maverick", 1, 3), ("deepseek-v3", 3, 4)):
        m = load_model(model_id)
        table = np.tile(np.arange(m.n_experts), (m.moe_layers, 1))
        text = render(Placement(table, m.n_experts, 1, np.array([0])), "trtllm", m)
        keys = [int(line.split(":")[0]) for line in text.splitlines() if line.startswith("  ")]
        assert keys[:2] == [first, second] and len(keys) == m.moe_layers
