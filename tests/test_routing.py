"""Routing statistics: synthetic generators, loaders, and their bad-input errors."""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest

from conftest import run_cli
from wideep.core.errors import InputError
from wideep.specs.model import load_model
from wideep.routing.stats import RoutingStats, network, parse_spec, sample_tokens, sort_columns, synthetic_routing
from wideep.routing.files import load_routing, routing_from_spec

DSV3 = load_model("deepseek-v3")
MIXTRAL = load_model("mixtral-8x7b")


def test_network_sorts_every_small_width():
    rng = np.random.default_rng(0)
    for k in range(1, 11):
        a = rng.integers(0, 5, size=(200, k))
        cols = sort_columns([a[:, j].copy() for j in range(k)])
        assert np.array_equal(np.stack(cols, axis=1), np.sort(a, axis=1)), k
    assert len(network(8)) == 19  # Batcher's network for 8 keys


@pytest.mark.parametrize("spec", ["uniform", "zipf:1.0", "topics:4", "lognormal:0.39,0.57", "lognormal:1.5,1.5"])
def test_synthetic_shapes_distinct_and_group_limited(spec):
    s = synthetic_routing(DSV3, spec, 500, seed=1, layers=3)
    assert s.topk_ids.shape == (3, 500, 8) and s.load.shape == (3, 256)
    assert s.load.sum() == 3 * 500 * 8 and s.rows_sorted
    ids = s.topk_ids
    assert (np.diff(ids, axis=2) > 0).all()  # sorted and distinct within a token
    groups = ids // 32  # DeepSeek-V3: 8 groups of 32 experts, top-4 groups
    n_groups = (np.diff(groups, axis=2) != 0).sum(axis=2) + 1
    assert n_groups.max() <= 4


def test_seeded_and_different_seeds_differ():
    a = synthetic_routing(MIXTRAL, "uniform", 64, seed=3).topk_ids
    assert np.array_equal(a, synthetic_routing(MIXTRAL, "uniform", 64, seed=3).topk_ids)
    assert not np.array_equal(a, synthetic_routing(MIXTRAL, "uniform", 64, seed=4).topk_ids)
    assert a.shape == (MIXTRAL.moe_layers, 64, 2)


def test_zipf_is_skewed_and_topics_cluster_coactivation():
    uni = synthetic_routing(DSV3, "uniform", 4000, seed=0, layers=2)
    zipf = synthetic_routing(DSV3, "zipf:1.2", 4000, seed=0, layers=2)
    assert zipf.balancedness().mean() < 0.5 * uni.balancedness().mean()
    flat = load_model("qwen3-30b-a3b")  # no groups: co-activation comes from topics only
    gpus = lambda s: ((np.diff(s.topk_ids // 16, axis=2) != 0).sum(axis=2) + 1).mean()  # noqa: E731
    u = synthetic_routing(flat, "uniform", 4000, seed=0, layers=2)
    t = synthetic_routing(flat, "topics:8", 4000, seed=0, layers=2)
    assert t.balancedness().mean() > 0.6  # loads stay even
    assert gpus(t) < gpus(u)  # ... but each token's experts cluster: fewer distinct GPUs of 16 experts


@pytest.mark.parametrize("spec", ["zipf", "zipf:-1", "topics:0", "gauss", "topics:x", "lognormal:1", "lognormal:2,0.5",
                                  "lognormal:0.5,-0.1", "lognormal:1e9,0", "lognormal:.,0", "Auto"])
def test_bad_specs(spec):
    with pytest.raises(InputError, match="--routing"):
        parse_spec(spec)


def test_sample_tokens_resamples_when_short():
    s = synthetic_routing(MIXTRAL, "uniform", 10, seed=0, layers=1)
    assert sample_tokens(s, 4).shape == (1, 4, 2)
    big = sample_tokens(s, 25, seed=1)
    assert big.shape == (1, 25, 2) and set(map(tuple, big[0])) <= set(map(tuple, s.topk_ids[0]))
    with pytest.raises(InputError, match="loads only"):
        sample_tokens(RoutingStats(8, np.ones((1, 8)), None), 4)


def ids_for(model, tokens=6, seed=0):
    return synthetic_routing(model, "uniform", tokens, seed=seed).topk_ids


def test_npz_npy_csv_json(tmp_path):
    ids = ids_for(MIXTRAL)
    np.savez(tmp_path / "a.npz", topk_ids=ids)
    s = load_routing(tmp_path / "a.npz", MIXTRAL)
    assert np.array_equal(s.topk_ids, ids) and s.load.sum() == ids.size
    load = np.arange(32 * 8, dtype=float).reshape(32, 8)
    np.save(tmp_path / "b.npy", load)
    assert load_routing(tmp_path / "b.npy", MIXTRAL).topk_ids is None
    (tmp_path / "c.csv").write_text("e0,e1,e2,e3,e4,e5,e6,e7\n" + "\n".join(",".join(map(str, r)) for r in load))
    assert np.array_equal(load_routing(tmp_path / "c.csv", MIXTRAL).load, load)
    (tmp_path / "d.json").write_text(json.dumps({"logical_count": [load.tolist(), load.tolist()]}))
    assert np.array_equal(load_routing(tmp_path / "d.json", MIXTRAL).load, 2 * load)
    (tmp_path / "e.json").write_text(json.dumps({"topk_ids": ids.tolist()}))
    assert np.array_equal(routing_from_spec(str(tmp_path / "e.json"), MIXTRAL, 99).topk_ids, ids)


def test_unsorted_rows_are_sorted_on_load(tmp_path):
    ids = ids_for(MIXTRAL)[:, :, ::-1]
    np.save(tmp_path / "r.npy", ids)
    s = load_routing(tmp_path / "r.npy", MIXTRAL)
    assert s.rows_sorted and np.array_equal(s.topk_ids, np.sort(ids, axis=2))


def test_full_depth_dump_drops_dense_layers(tmp_path):
    """SGLang records every decoder layer; DeepSeek-V3's 3 dense layers hold no selection."""
    load = np.zeros((61, 256))
    load[3:] = 1.0
    np.save(tmp_path / "full.npy", load)
    assert load_routing(tmp_path / "full.npy", DSV3).load.shape == (58, 256)


@pytest.mark.parametrize("make, match", [
    (lambda: {"topk_ids": np.zeros((32, 4, 3), int)}, "top_k is 3"),
    (lambda: {"topk_ids": np.full((32, 4, 2), 8)}, "out of range"),
    (lambda: {"topk_ids": np.full((32, 4, 2), -3)}, "out of range"),
    (lambda: {"topk_ids": np.zeros((5, 4, 2), int)}, "5 layers"),
    (lambda: {"topk_ids": np.zeros((32, 4), int)}, "shape"),
    (lambda: {"topk_ids": np.zeros((32, 4, 2))}, "integers"),
    (lambda: {"load": -np.ones((32, 8))}, "negative count"),
    (lambda: {"load": np.ones((32, 7))}, "7 experts"),
    (lambda: {"load": np.full((32, 8), np.nan)}, "non-finite"),
    (lambda: {"other": np.ones(3)}, "expected arrays"),
])
def test_bad_npz(tmp_path, make, match):
    np.savez(tmp_path / "bad.npz", **make())
    with pytest.raises(InputError, match=match):
        load_routing(tmp_path / "bad.npz", MIXTRAL)


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(InputError, match="unknown statistics format"):
        load_routing(tmp_path / "x.txt", MIXTRAL)
    with pytest.raises(InputError, match="no such file"):
        load_routing(tmp_path / "nope.npz", MIXTRAL)
    with pytest.raises(InputError, match="TensorRT-LLM"):
        load_routing(tmp_path, MIXTRAL)


def write_safetensors(path, tensors):
    """Minimal safetensors writer (header JSON + raw little-endian data), as the format specifies."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": {"i": "I", "u": "U", "f": "F"}[arr.dtype.kind] + str(8 * arr.itemsize),
                        "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_trtllm_counts_and_raw_ids(tmp_path):
    (tmp_path / "meta_info.json").write_text(json.dumps({"num_experts": 8, "num_experts_per_token": 2}))
    for rank in range(2):
        write_safetensors(tmp_path / f"rank{rank}.safetensors",
                          {f"{it}_{layer}": np.full(8, rank + 1, np.int32) for it in (5, 6) for layer in range(32)})
    s = load_routing(tmp_path, MIXTRAL)
    assert s.topk_ids is None and np.array_equal(s.load, np.full((32, 8), 6.0))  # (1 + 2) x 2 iterations
    ids = ids_for(MIXTRAL, tokens=3)
    write_safetensors(tmp_path / "rank0_raw.safetensors",
                      {f"{it}_{layer}": ids[layer].astype(np.int32) for it in (5,) for layer in range(32)})
    assert np.array_equal(load_routing(tmp_path, MIXTRAL).topk_ids, ids)


def test_sglang_pt_without_torch_says_how_to_get_it(tmp_path, monkeypatch):
    (tmp_path / "dump.pt").write_bytes(b"\x80\x02")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(InputError, match=r"needs torch: pip install 'wideep\[torch\]'"):
        load_routing(tmp_path / "dump.pt", MIXTRAL)


def test_sglang_pt_with_torch(tmp_path):
    torch = pytest.importorskip("torch")
    ids = ids_for(DSV3, tokens=4)
    full = np.zeros((61, 4, 8), np.int32)
    full[3:] = ids
    torch.save({"records": [{"forward_pass_id": 0, "topk_ids_of_layer": torch.from_numpy(full)}]}, tmp_path / "d.pt")
    assert np.array_equal(load_routing(tmp_path / "d.pt", DSV3).topk_ids, ids)
    torch.save({"logical_count": torch.ones((2, 58, 256), dtype=torch.int32)}, tmp_path / "s.pt")
    assert load_routing(tmp_path / "s.pt", DSV3).load.sum() == 2 * 58 * 256


def test_cli_bad_routing_is_one_line_exit_2(tmp_path):
    r = run_cli("a2a", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--ep", "8", "--tokens", "4",
                "--routing", "zipf:oops")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--routing" in r.stderr
    np.save(tmp_path / "bad.npy", np.full((32, 4, 2), 99))
    r = run_cli("a2a", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--ep", "8", "--tokens", "4",
                "--routing", str(tmp_path / "bad.npy"))
    assert r.returncode == 2 and "out of range" in r.stderr and "Traceback" not in r.stderr


def test_zero_load_layer_and_repeated_expert_are_rejected(tmp_path):
    load = np.ones((32, 8))
    load[5] = 0.0
    np.savez(tmp_path / "z.npz", load=load)
    with pytest.raises(InputError, match="MoE layer 5 has no selections"):
        load_routing(tmp_path / "z.npz", MIXTRAL)
    (tmp_path / "zeros.json").write_text(json.dumps({"load": np.zeros((32, 8)).tolist()}))
    r = run_cli("plan", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--ep", "8",
                "--routing", str(tmp_path / "zeros.json"))
    assert r.returncode == 2 and "sum to 0" in r.stderr and "nan" not in r.stdout
    ids = ids_for(MIXTRAL)
    ids[4, 2] = [3, 3]
    np.savez(tmp_path / "dup.npz", topk_ids=ids)
    with pytest.raises(InputError, match="token 2 of MoE layer 4 selects expert 3 twice"):
        load_routing(tmp_path / "dup.npz", MIXTRAL)


def test_helpers_by_hand():
    from wideep.routing.stats import balancedness, per_layer_counts, token_ranks

    assert token_ranks(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    assert per_layer_counts(np.array([[[0, 1], [1, 1]], [[2, 2], [0, 2]]]), 3).tolist() == [[1, 3, 0], [1, 0, 3]]
    assert balancedness(np.array([[2.0, 2.0], [0.0, 2.0], [0.0, 0.0]])).tolist() == [1.0, 0.5, 1.0]


@pytest.mark.parametrize("call", [
    lambda: synthetic_routing(MIXTRAL, "uniform", 8, seed=-1),
    lambda: sample_tokens(synthetic_routing(MIXTRAL, "uniform", 4, layers=1), 8, seed=-3),
])
def test_negative_seed_names_the_option(call):
    with pytest.raises(InputError, match="--seed"):
        call()


@pytest.mark.parametrize("args", [
    ["a2a", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--ep", "8", "--tokens", "4", "--seed", "-1"],
    ["place", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--gpus", "8", "--routing", "uniform",
     "--seed", "-1"],
])
def test_cli_negative_seed_exit_2(args):
    r = run_cli(*args)
    assert r.returncode == 2 and "--seed" in r.stderr and "Traceback" not in r.stderr


def test_sample_size_limit():
    from wideep.routing.stats import MAX_SAMPLE_TOKENS

    with pytest.raises(InputError, match="--tokens: .*over the limit of 1,048,576"):
        synthetic_routing(MIXTRAL, "uniform", MAX_SAMPLE_TOKENS + 1, layers=1)
    small = synthetic_routing(MIXTRAL, "uniform", 4, layers=1)
    with pytest.raises(InputError, match="--tokens"):
        sample_tokens(small, MAX_SAMPLE_TOKENS + 1)
    r = run_cli("a2a", "--model", "mixtral-8x7b", "--topology", "hgx-h100", "--ep", "8", "--tokens", "200000")
    assert r.returncode == 2 and "--tokens" in r.stderr and "1,048,576" in r.stderr


def test_trtllm_raw_files_disagreeing_on_top_k(tmp_path):
    from wideep.core.errors import CatalogError

    (tmp_path / "meta_info.json").write_text(json.dumps({"num_experts": 8, "num_experts_per_token": 2}))
    write_safetensors(tmp_path / "rank0_raw.safetensors", {f"0_{layer}": np.zeros((3, 2), np.int32)
                                                           for layer in range(32)})
    write_safetensors(tmp_path / "rank1_raw.safetensors", {f"0_{layer}": np.zeros((3, 4), np.int32)
                                                           for layer in range(32)})
    with pytest.raises(CatalogError, match="top_k is 4, rank0_raw.safetensors records 2") as err:
        load_routing(tmp_path, MIXTRAL)
    assert str(tmp_path / "rank1_raw.safetensors") in str(err.value)
