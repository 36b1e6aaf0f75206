"""Save InferenceX's disaggregated GB200 decode points (benchmarks/data/inferencex_gb200_disagg_points.csv).

Reads one result file of an InferenceX benchmark run (``agg_bmk.json``: the records its public API serves) and
the sweep configuration that run used (``.github/configs/nvidia-master.yaml`` of InferenceX at that commit),
keeps the Dynamo + TensorRT-LLM DeepSeek-R1 points without speculative decoding, and adds each point's decode
batch cap (``DECODE_MAX_BATCH_SIZE``: a decode rank runs at most that many sequences; the sweeps set the
concurrency a little above it, so the rest wait). Needs PyYAML (not a wideep dependency).

    python benchmarks/extract_inferencex_disagg.py RUN/agg_bmk.json nvidia-master.yaml --run 20356790608
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "inferencex_gb200_disagg_points.csv"
CONFIG_KEY = "dsr1-fp4-gb200-dynamo-trt"
COLUMNS = ["run", "gpu", "engine", "image", "dtype", "isl", "osl", "concurrency", "decode_workers", "decode_tp",
           "decode_ep", "dp_attention", "decode_gpus", "decode_max_batch", "prefill_workers", "prefill_gpus",
           "tpot_ms_mean", "ttft_ms_mean", "output_tok_s_per_gpu"]


def batch_caps(config_path: str) -> dict[tuple, int]:
    """(isl, osl, decode workers, decode TP, decode EP, attention DP, prefill workers) -> DECODE_MAX_BATCH_SIZE of
    the sweep's non-MTP entries."""
    import yaml

    caps = {}
    for seq in yaml.safe_load(Path(config_path).read_text())[CONFIG_KEY]["seq-len-configs"]:
        for space in seq["search-space"]:
            if space.get("spec-decoding", "none") != "none":
                continue
            dec = space["decode"]
            settings = dict(s.split("=", 1) for s in dec.get("additional-settings", []))
            key = (seq["isl"], seq["osl"], dec["num-worker"], dec["tp"], dec["ep"], bool(dec["dp-attn"]),
                   space["prefill"]["num-worker"])
            caps[key] = int(settings["DECODE_MAX_BATCH_SIZE"])
    return caps


def rows(results_path: str, config_path: str, run: str) -> list[dict]:
    caps = batch_caps(config_path)
    out = []
    for r in json.loads(Path(results_path).read_text()):
        if r["framework"] != "dynamo-trt" or r["spec_decoding"] != "none":
            continue
        dp = r["decode_dp_attention"] == "true"
        key = (r["isl"], r["osl"], r["decode_num_workers"], r["decode_tp"], r["decode_ep"], dp, r["prefill_num_workers"])
        out.append({"run": run, "gpu": r["hw"], "engine": r["framework"], "image": r["image"].replace("#", "/"),
                    "dtype": "nvfp4", "isl": r["isl"], "osl": r["osl"], "concurrency": r["conc"],
                    "decode_workers": r["decode_num_workers"], "decode_tp": r["decode_tp"], "decode_ep": r["decode_ep"],
                    "dp_attention": int(dp), "decode_gpus": r["num_decode_gpu"], "decode_max_batch": caps[key],
                    "prefill_workers": r["prefill_num_workers"], "prefill_gpus": r["num_prefill_gpu"],
                    "tpot_ms_mean": round(1000 * r["mean_tpot"], 3), "ttft_ms_mean": round(1000 * r["mean_ttft"], 1),
                    "output_tok_s_per_gpu": round(r["output_tput_per_gpu"], 1)})
    return sorted(out, key=lambda d: (d["isl"], d["dp_attention"], d["decode_ep"], d["concurrency"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="agg_bmk.json of one InferenceX run")
    ap.add_argument("config", help="InferenceX's .github/configs/nvidia-master.yaml at the run's commit")
    ap.add_argument("--run", required=True, help="the run's id, written in each row")
    args = ap.parse_args()
    found = rows(args.results, args.config, args.run)
    with OUT.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(found)
    print(f"{len(found)} points -> {OUT}")


if __name__ == "__main__":
    main()
