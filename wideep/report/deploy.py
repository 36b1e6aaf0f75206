"""Launch flags for a search point: SGLang, vLLM and TensorRT-LLM (documented options; check your version).

The layout: attention tensor-parallel over ``tp`` GPUs with ``dp = ep / tp`` attention groups (data-parallel
attention when ``dp`` > 1), expert parallelism over the EP group for the MoE layers, DeepEP low-latency
kernels for decode and normal kernels for prefill, two-batch overlap and redundant experts, and MTP where the
point uses it; a point on the all-gather (``transport`` nccl-allgather) runs without DeepEP, two-batch overlap
or redundant experts (SGLang's data-parallel attention gathering for ``--ep-size``, vLLM's
``allgather_reducescatter``, TensorRT-LLM's CUTLASS MoE without WIDEEP); a dense model runs tensor-parallel
alone. With ``ep`` below ``tp`` the MoE layers run inside the attention group,
experts over ``ep`` ranks and split ``tp / ep`` ways (SGLang ``--ep-size``, TensorRT-LLM
``moe_expert_parallel_size`` and ``moe_tensor_parallel_size``; vLLM has no such mix). Sources: SGLang "Expert Parallelism" and server-argument docs
(``--tp``, ``--dp`` with ``--enable-dp-attention``: attention TP = tp / dp; ``--moe-a2a-backend deepep``,
``--deepep-mode``, ``--ep-num-redundant-experts``, ``--init-expert-location``, ``--enable-two-batch-overlap``,
``--disaggregation-mode``); vLLM "Expert Parallel Deployment" (``--tensor-parallel-size``,
``--data-parallel-size``, EP = TP x DP with ``--enable-expert-parallel``, ``--all2all-backend``,
``--enable-eplb``; disaggregated pools: ``--kv-transfer-config`` with its NixlConnector, "NixlConnector Usage
Guide"); TensorRT-LLM wide-EP examples (``enable_attention_dp``, ``moe_config.backend: WIDEEP``,
``load_balancer.num_slots``) and disaggregated-serving README (``trtllm-serve disaggregated``: context and
generation servers with ``cache_transceiver_config``, context servers with ``disable_overlap_scheduler``).
"""

from __future__ import annotations

import json

from wideep.plan.search import ALLGATHER


def sglang(point: dict, model_path: str, redundant: int, placement_file: str | None = None) -> str:
    tp, ep, dp, mtp = point["tp"], point["ep"], point["dp"], point["mtp"]
    args = [f"python -m sglang.launch_server --model-path {model_path}"]
    if ep <= 1:  # dense, or every expert split over the TP group: tensor parallelism alone
        args.append(f"--tp {tp}")
    elif ep <= tp:  # attention TP over the EP group (MoE TP below it: tp / ep GPUs per expert): no all-to-all
        args.append(f"--tp {tp} --ep-size {ep}")
    else:
        mode = {"disagg": "low_latency", "prefill": "normal"}.get(point["mode"], "auto")
        args.append(f"--tp {ep} --dp {dp} --enable-dp-attention" if dp > 1 else f"--tp {ep}")
        if gathers(point):  # no DeepEP: the data-parallel attention groups gather their tokens for the experts
            args.append(f"--ep-size {ep}")
        else:
            args += [f"--moe-a2a-backend deepep --deepep-mode {mode}", f"--ep-num-redundant-experts {redundant}",
                     "--enable-two-batch-overlap"]
            if placement_file:
                args.append(f"--init-expert-location {placement_file}")
    if point["mode"] != "prefill":  # decode steps run under CUDA graphs up to the batch
        args.append(f"--cuda-graph-max-bs {point['batch']}")
    if mtp:
        args.append(f"--speculative-algorithm EAGLE --speculative-num-steps {mtp} --speculative-eagle-topk 1 "
                    f"--speculative-num-draft-tokens {mtp + 1}")
    if point["mode"] in ("disagg", "prefill"):
        args.append(f"--disaggregation-mode {'decode' if point['mode'] == 'disagg' else 'prefill'}")
    return " \\\n  ".join(args)


def prefill_point(point: dict) -> dict:
    """The prefill instance of a ``disagg`` point, as a point of mode ``prefill`` (its MTP too: SGLang's prefill
    server runs the draft model that the decode server's first step reads)."""
    tp, ep = point["prefill_tp"], point["prefill_ep"]
    return {"tp": tp, "ep": ep, "dp": max(tp, ep) // tp, "batch": None, "mtp": point["mtp"], "mode": "prefill",
            "transport": point.get("prefill_transport", "")}


def gathers(point: dict) -> bool:
    """Whether the point's MoE layers move tokens by NCCL all-gather / reduce-scatter instead of DeepEP (experts
    in order then, no redundant copies)."""
    return point.get("transport") == ALLGATHER


def vllm(point: dict, model_path: str, redundant: int) -> str:
    args = [f"vllm serve {model_path}", f"--tensor-parallel-size {point['tp']} --data-parallel-size {point['dp']}"]
    if point["tp"] == point["ep"] > 1:  # attention TP over the EP group: every rank holds every token
        args.append("--enable-expert-parallel")
    elif point["tp"] < point["ep"] and gathers(point):
        args += ["--enable-expert-parallel", "--all2all-backend allgather_reducescatter"]
    elif point["tp"] < point["ep"]:
        eplb = json.dumps({"num_redundant_experts": redundant})
        backend = "deepep_high_throughput" if point["mode"] == "prefill" else "deepep_low_latency"
        args += ["--enable-expert-parallel", f"--all2all-backend {backend}", f"--enable-eplb --eplb-config '{eplb}'"]
    if point["mode"] != "prefill":
        args.append(f"--max-num-seqs {point['batch']}")
    if point["mode"] in ("disagg", "prefill"):  # vLLM's NIXL connector moves the prompt's KV between the pools
        args.append("--kv-transfer-config '" + json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"}) + "'")
    if point["mtp"]:
        spec = json.dumps({"method": "deepseek_mtp", "num_speculative_tokens": point["mtp"]})
        args.append(f"--speculative-config '{spec}'")
    note = (f"\n# MoE EP{point['ep']} x TP{point['tp'] // point['ep']} has no vLLM equivalent: this runs every "
            "expert split over the TP group" if 1 < point["ep"] < point["tp"] else "")
    return " \\\n  ".join(args) + note


def trtllm(point: dict, n_experts: int, redundant: int) -> str:
    tp, ep, dp = point["tp"], point["ep"], point["dp"]
    batch = [] if point["batch"] is None else [f"max_batch_size: {point['batch']}"]
    if ep < tp and n_experts:  # MoE tensor parallelism (ep 1: every expert split over the whole group)
        lines = [f"tensor_parallel_size: {tp}", f"moe_expert_parallel_size: {ep}",
                 f"moe_tensor_parallel_size: {tp // ep}", "enable_attention_dp: false", *batch]
    elif ep <= 1:
        lines = [f"tensor_parallel_size: {tp}", *batch]
    else:
        lines = [f"tensor_parallel_size: {ep}", f"moe_expert_parallel_size: {ep}",
                 f"enable_attention_dp: {'true' if tp == 1 else 'false'}"
                 + ("" if tp in (1, ep) else f"   # attention TP{tp} x DP{dp} has no TensorRT-LLM equivalent: "
                                                "it runs attention data-parallel or TP over all ranks"),
                 *batch, "moe_config:"]
        lines += (["  backend: CUTLASS   # attention TP over the EP group: no all-to-all"] if tp == ep else
                  ["  backend: CUTLASS   # NCCL all-gather / reduce-scatter around the experts, no load balancer"]
                  if gathers(point) else
                  ["  backend: WIDEEP", "  load_balancer:", f"    num_slots: {n_experts + redundant}"])
    if point.get("balanced_prompts"):  # what the plan assumed (attention DP, aggregated: PlanSpec.balances_prompts)
        lines += ["attention_dp_config:", "  enable_balance: true"]
    if point["mode"] in ("disagg", "prefill"):  # a worker of `trtllm-serve disaggregated`
        lines += ["cache_transceiver_config:", "  backend: DEFAULT"]
    if point["mode"] == "prefill":  # context servers run without the overlap scheduler
        lines.append("disable_overlap_scheduler: true")
    return "\n".join(lines) + mtp_yaml(point["mtp"])


def mtp_yaml(mtp: int) -> str:
    """TensorRT-LLM's speculative_config lines for ``mtp`` MTP layers ("" without MTP)."""
    return f"\nspeculative_config:\n  decoding_type: MTP\n  num_nextn_predict_layers: {mtp}" if mtp else ""


def deploy(point: dict, model_path: str, n_experts: int, redundant: int, placement_file: str | None = None,
           prefill_redundant: int = 0) -> dict:
    """{"sglang": command, "vllm": command, "trtllm": extra-options YAML} for one point; a ``disagg`` point's
    texts also launch its prefill instances (``prefill_redundant`` redundant experts each; TensorRT-LLM: the
    context servers' extra options beside the generation servers')."""
    sglang_text, vllm_text = sglang(point, model_path, redundant, placement_file), vllm(point, model_path, redundant)
    trtllm_text = trtllm(point, n_experts, redundant)
    if point["mode"] == "disagg":
        pools = (f"\n# with {point['decode_instances']} decode instance(s) as above and "
                 f"{point['prefill_instances']} prefill instance(s) of:\n")
        sglang_text += pools + sglang(prefill_point(point), model_path, prefill_redundant)
        vllm_text += pools + vllm(prefill_point(point), model_path, prefill_redundant)
        trtllm_text += (f"\n# generation servers ({point['decode_instances']}) as above; context servers "
                        f"({point['prefill_instances']}):\n" + trtllm(prefill_point(point), n_experts, prefill_redundant))
    return {"sglang": sglang_text, "vllm": vllm_text, "trtllm": trtllm_text}
