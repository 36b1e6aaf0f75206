"""Launch flags for a search point: SGLang, vLLM and TensorRT-LLM (documented options; check your version).

The layout is attention data-parallel over the EP group (``dp = ep``, ``tp = 1`` per attention replica)
with expert parallelism for the MoE layers, DeepEP low-latency kernels for decode and normal kernels for
prefill, two-batch overlap, and MTP where the point uses it. Sources: SGLang "Expert Parallelism" and
server-argument docs (``--moe-a2a-backend deepep``, ``--deepep-mode``, ``--enable-dp-attention``,
``--ep-num-redundant-experts``, ``--init-expert-location``, ``--enable-two-batch-overlap``,
``--disaggregation-mode``); vLLM "Expert Parallel Deployment" (``--data-parallel-size``,
``--enable-expert-parallel``, ``--all2all-backend``, ``--enable-eplb``); TensorRT-LLM wide-EP examples
(``enable_attention_dp``, ``moe_config.backend: WIDEEP``, ``load_balancer.num_slots``).
"""

from __future__ import annotations

import json


def sglang(point: dict, model_path: str, redundant: int, placement_file: str | None = None) -> str:
    ep, mtp = point["ep"], point["mtp"]
    mode = "low_latency" if point["mode"] == "disagg" else "auto"
    args = [f"python -m sglang.launch_server --model-path {model_path}", f"--tp {ep} --dp {ep} --enable-dp-attention",
            f"--moe-a2a-backend deepep --deepep-mode {mode}", f"--ep-num-redundant-experts {redundant}",
            "--enable-two-batch-overlap", f"--cuda-graph-max-bs {point['batch']}"]
    if placement_file:
        args.append(f"--init-expert-location {placement_file}")
    if mtp:
        args.append(f"--speculative-algorithm EAGLE --speculative-num-steps {mtp} --speculative-eagle-topk 1 "
                    f"--speculative-num-draft-tokens {mtp + 1}")
    if point["mode"] == "disagg":
        args.append("--disaggregation-mode decode   # prefill pool: same with --disaggregation-mode prefill "
                    "--deepep-mode normal")
    return " \\\n  ".join(args)


def vllm(point: dict, model_path: str, redundant: int) -> str:
    eplb = json.dumps({"num_redundant_experts": redundant})
    args = [f"vllm serve {model_path}", f"--tensor-parallel-size 1 --data-parallel-size {point['ep']}",
            "--enable-expert-parallel", "--all2all-backend deepep_low_latency",
            f"--enable-eplb --eplb-config '{eplb}'", f"--max-num-seqs {point['batch']}"]
    if point["mtp"]:
        spec = json.dumps({"method": "deepseek_mtp", "num_speculative_tokens": point["mtp"]})
        args.append(f"--speculative-config '{spec}'")
    return " \\\n  ".join(args)


def trtllm(point: dict, n_experts: int, redundant: int) -> str:
    lines = [f"tensor_parallel_size: {point['ep']}", f"moe_expert_parallel_size: {point['ep']}",
             "enable_attention_dp: true", f"max_batch_size: {point['batch']}", "moe_config:",
             "  backend: WIDEEP", "  load_balancer:", f"    num_slots: {n_experts + redundant}"]
    if point["mtp"]:
        lines += ["speculative_config:", "  decoding_type: MTP", f"  num_nextn_predict_layers: {point['mtp']}"]
    return "\n".join(lines)


def deploy(point: dict, model_path: str, n_experts: int, redundant: int, placement_file: str | None = None) -> dict:
    """{"sglang": command, "vllm": command, "trtllm": extra-options YAML} for one point."""
    return {"sglang": sglang(point, model_path, redundant, placement_file), "vllm": vllm(point, model_path, redundant),
            "trtllm": trtllm(point, n_experts, redundant)}
