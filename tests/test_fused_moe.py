"""The fused MoE kernel's row plan and routing (numpy; the kernel itself runs only on a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from wideep.calibrate.fused_moe import block_layout, rank_tokens, routing, weight_copies
from wideep.perf.kernels import GemmShape


def test_routing_picks_distinct_experts_uniformly():
    ids = routing(4096, 256, 8, np.random.default_rng(0))
    assert ids.shape == (4096, 8) and all(len(set(row)) == 8 for row in ids[:64])
    counts = np.bincount(ids.ravel(), minlength=256)
    assert counts.mean() == 128 and counts.std() < 20  # binomial: sd ~11


def test_layout_groups_a_ranks_copies_by_expert_in_padded_blocks():
    ids = np.array([[3, 0], [1, 0], [0, 2]])  # copies 0..5; the rank holds experts 0 and 1
    rows, experts, kept, touched = block_layout(ids, 2, 4)
    sentinel = ids.size
    assert rows.tolist() == [1, 3, 4, sentinel, 2, sentinel, sentinel, sentinel] and experts.tolist() == [0, 1]
    assert (kept, touched) == (4, 2)


def test_a_rank_with_no_copies_plans_no_block():
    rows, experts, kept, touched = block_layout(np.array([[5, 6]]), 2, 16)
    assert rows.size == experts.size == kept == touched == 0


@pytest.mark.parametrize("copies, local, tokens", [(1, 256, 1), (64, 256, 8), (1, 32, 1), (16, 32, 16), (4, 2, 64)])
def test_tokens_give_the_rank_about_the_copies_asked(copies, local, tokens):
    assert rank_tokens(copies, 256, 8, local) == tokens


def test_weight_copies_keep_the_fewest_token_point_out_of_l2_within_the_budget():
    tp8 = GemmShape("routed_experts.gate_up/tp8", 512, 7168, "routed_experts", True)
    assert weight_copies(tp8, 256, "fp8", 8, 256 * 2**20) == 10  # 8 experts x 3.7 MB per copy
    assert weight_copies(tp8, 256, "fp8", 8, 256 * 2**20, budget_bytes=2e9) == 2  # 0.94 GB per copy
    whole = GemmShape("routed_experts.gate_up", 4096, 7168, "routed_experts", True)
    assert weight_copies(whole, 32, "bf16", 8, 256 * 2**20) == 1  # 8 experts already hold 470 MB
