"""Disaggregated replicas of whole instances (xPyD), by hand."""

from __future__ import annotations

import pytest

from wideep.plan.disagg import MAX_INSTANCES, PrefillInstance, best_replica, counts

# one 8-GPU prefill instance takes 8 x 10,000 prompt tokens/s: at ISL = OSL it feeds 80,000 output tokens/s
WIDE = PrefillInstance(tp=1, ep=8, gpus=8, tokens_per_s_per_gpu=10_000.0, ttft_s=0.8)
NARROW = PrefillInstance(tp=8, ep=8, gpus=8, tokens_per_s_per_gpu=5_000.0, ttft_s=0.2)


def test_rates_that_match_exactly_take_the_smallest_replica():
    """Decode 8 GPUs x 2,500 = 20,000 output tokens/s: 1 prefill feeds 4 decode instances exactly."""
    r = best_replica(8, 2_500.0, [WIDE], isl=1024, osl=1024)
    assert (r.prefill_instances, r.decode_instances) == (1, 4)
    assert r.gpus == 40 and r.tokens_per_s_per_gpu == pytest.approx(80_000 / 40)


def test_a_slow_decode_group_still_pays_for_a_whole_prefill_instance():
    """10 output tokens/s per GPU: even 16 decode instances leave the prefill instance mostly idle."""
    r = best_replica(8, 10.0, [WIDE], isl=1024, osl=1024)
    assert (r.prefill_instances, r.decode_instances) == (1, MAX_INSTANCES)
    assert r.tokens_per_s_per_gpu == pytest.approx(16 * 8 * 10 / (8 + 128))


def test_the_counts_closest_to_the_rate_match_win():
    """Decode 8 x 3,000 = 24,000 output tokens/s per instance against 80,000 per prefill instance: 3 prefill
    for 10 decode match exactly (240,000 each way); every other count leaves a pool partly idle."""
    best = best_replica(8, 3_000.0, [WIDE], isl=1024, osl=1024)
    assert (best.prefill_instances, best.decode_instances) == (3, 10)
    assert best.output_tokens_per_s == 240_000 and best.tokens_per_s_per_gpu == pytest.approx(240_000 / 104)


@pytest.mark.parametrize("decode_rate,prefill_rate,prefill_gpus", [
    (24_000.0, 80_000.0, 8), (1_000.0, 7_000.0, 16), (50_000.0, 9_000.0, 8), (3.0, 90_000.0, 72),
    (33_333.0, 33_334.0, 8)])
def test_counts_agree_with_every_pair_tried(decode_rate, prefill_rate, prefill_gpus):
    """The two prefill counts around the rate match per decode count find the best of all 16 x 16 pairs."""
    pairs = [(x, y) for x in range(1, MAX_INSTANCES + 1) for y in range(1, MAX_INSTANCES + 1)]
    per_gpu = {(x, y): min(y * decode_rate, x * prefill_rate) / (x * prefill_gpus + y * 8) for x, y in pairs}
    x, y, out = counts(8, decode_rate, prefill_gpus, prefill_rate)
    assert out / (x * prefill_gpus + y * 8) == pytest.approx(max(per_gpu.values()), rel=1e-9)


def test_longer_prompts_need_more_prefill():
    short = best_replica(8, 2_500.0, [WIDE], isl=1024, osl=1024)
    long = best_replica(8, 2_500.0, [WIDE], isl=4096, osl=1024)
    assert long.prefill_instances / long.decode_instances > short.prefill_instances / short.decode_instances


def test_a_ttft_target_picks_the_prefill_layout_that_meets_it():
    assert best_replica(8, 2_500.0, [WIDE, NARROW], 1024, 1024).prefill is WIDE  # more prompt tokens per GPU
    assert best_replica(8, 2_500.0, [WIDE, NARROW], 1024, 1024, ttft_s_max=0.5).prefill is NARROW
    assert best_replica(8, 2_500.0, [WIDE, NARROW], 1024, 1024, ttft_s_max=0.01).prefill is WIDE  # none meets


def test_when_decode_binds_the_shorter_ttft_wins_the_tie():
    """At 10 tokens/s per GPU both layouts feed more than 16 decode instances take: same replica, NARROW's TTFT."""
    assert best_replica(8, 10.0, [WIDE, NARROW], 1024, 1024).prefill is NARROW


def test_sglang_launches_the_prefill_instances_of_a_disaggregated_point():
    """Decode tp 1 ep 32 with MTP, its prefill instances tp 1 ep 8: two launch commands, each with its own layout,
    DeepEP mode and disaggregation role; the prefill keeps the MTP flags and drops the decode CUDA-graph size."""
    from wideep.report.deploy import deploy

    point = {"mode": "disagg", "tp": 1, "ep": 32, "dp": 32, "batch": 64, "mtp": 1, "prefill_tp": 1, "prefill_ep": 8,
             "prefill_instances": 3, "decode_instances": 2}
    decode, prefill = deploy(point, "<model>", 256, 32, prefill_redundant=8)["sglang"].split("\n# with ")
    assert "--tp 32 --dp 32" in decode and "low_latency" in decode and "--disaggregation-mode decode" in decode
    assert prefill.startswith("2 decode instance(s) as above and 3 prefill instance(s)")
    assert "--tp 8 --dp 8" in prefill and "--deepep-mode normal" in prefill and "--ep-num-redundant-experts 8" in prefill
    assert "--disaggregation-mode prefill" in prefill and "--speculative-num-steps 1" in prefill
    assert "--cuda-graph-max-bs" not in prefill


def test_vllm_launches_both_pools_with_the_nixl_connector():
    from wideep.report.deploy import deploy

    point = {"mode": "disagg", "tp": 1, "ep": 16, "dp": 16, "batch": 128, "mtp": 0, "prefill_tp": 1, "prefill_ep": 8,
             "prefill_instances": 1, "decode_instances": 2}
    decode, prefill = deploy(point, "<model>", 256, 16, prefill_redundant=8)["vllm"].split("\n# with ")
    assert "--data-parallel-size 16" in decode and "deepep_low_latency" in decode and "NixlConnector" in decode
    assert "--data-parallel-size 8" in prefill and "deepep_high_throughput" in prefill and "NixlConnector" in prefill
    assert "--max-num-seqs" not in prefill


def test_trtllm_gives_the_context_servers_their_own_options():
    from wideep.report.deploy import deploy

    point = {"mode": "disagg", "tp": 1, "ep": 16, "dp": 16, "batch": 128, "mtp": 1, "prefill_tp": 8, "prefill_ep": 8,
             "prefill_instances": 1, "decode_instances": 2}
    generation, context = deploy(point, "<model>", 256, 16, prefill_redundant=8)["trtllm"].split("\n# generation ")
    assert "max_batch_size: 128" in generation and "cache_transceiver_config" in generation
    assert "disable_overlap_scheduler" not in generation
    assert "tensor_parallel_size: 8" in context and "max_batch_size" not in context
    assert "backend: CUTLASS" in context and "num_slots" not in context  # attention TP8 over EP8: no all-to-all
    assert "backend: WIDEEP" in generation and "num_slots: 272" in generation
    assert "disable_overlap_scheduler: true" in context and "num_nextn_predict_layers: 1" in context


def test_all_gather_points_launch_without_deepep():
    """A point on the all-gather: SGLang's data-parallel attention gathers for the experts (no DeepEP, no
    two-batch overlap), vLLM's allgather_reducescatter backend, TensorRT-LLM's CUTLASS MoE without WIDEEP."""
    from wideep.report.deploy import deploy

    point = {"mode": "agg", "tp": 1, "ep": 8, "dp": 8, "batch": 256, "mtp": 0, "transport": "nccl-allgather"}
    texts = deploy(point, "<model>", 256, 8)
    assert "--ep-size 8" in texts["sglang"] and "deepep" not in texts["sglang"]
    assert "--enable-two-batch-overlap" not in texts["sglang"]
    assert "--all2all-backend allgather_reducescatter" in texts["vllm"]
    assert "backend: CUTLASS" in texts["trtllm"] and "WIDEEP" not in texts["trtllm"]


def test_a_disaggregated_point_launches_each_pool_on_its_own_transport():
    """Decode on the all-gather, prefill on DeepEP normal: each pool's flags follow its own transport."""
    from wideep.report.deploy import deploy

    point = {"mode": "disagg", "tp": 1, "ep": 8, "dp": 8, "batch": 256, "mtp": 0, "prefill_tp": 1, "prefill_ep": 8,
             "prefill_instances": 1, "decode_instances": 2, "transport": "nccl-allgather",
             "prefill_transport": "deepep-normal"}
    decode, prefill = deploy(point, "<model>", 256, 8, prefill_redundant=8)["vllm"].split("\n# with ")
    assert "allgather_reducescatter" in decode and "--enable-eplb" not in decode
    assert "deepep_high_throughput" in prefill and "--enable-eplb" in prefill


def test_balanced_prompts_launch_tensorrt_llm_with_its_balance():
    from wideep.report.deploy import deploy

    point = {"mode": "agg", "tp": 1, "ep": 8, "dp": 8, "batch": 256, "mtp": 0, "balanced_prompts": True}
    assert "attention_dp_config:\n  enable_balance: true" in deploy(point, "<model>", 256, 8)["trtllm"]
    assert "enable_balance" not in deploy(point | {"balanced_prompts": False}, "<model>", 256, 8)["trtllm"]


def test_attention_tp_over_the_ep_group_launches_no_all_to_all():
    """tp == ep: every rank holds every token after the attention all-reduce, as the plan has it: no DeepEP,
    no all-to-all backend, no WIDEEP."""
    from wideep.report.deploy import deploy

    texts = deploy({"mode": "agg", "tp": 4, "ep": 4, "dp": 1, "batch": 64, "mtp": 0}, "<model>", 128, 0)
    assert "--tp 4 --ep-size 4" in texts["sglang"] and "deepep" not in texts["sglang"]
    assert "--enable-expert-parallel" in texts["vllm"] and "--all2all-backend" not in texts["vllm"]
    assert "backend: CUTLASS" in texts["trtllm"] and "WIDEEP" not in texts["trtllm"]
