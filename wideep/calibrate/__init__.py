"""``wideep calibrate``: measure a GPU's kernels (optional ``torch`` extra) and fit a calibration file.

:mod:`~wideep.calibrate.measure` needs PyTorch and a CUDA GPU; :mod:`~wideep.calibrate.fit` and this
module run anywhere, so a raw record measured elsewhere (``--raw``) can be fitted again (``--from-raw``).
"""

from __future__ import annotations

import json
import sys

from wideep.calibrate.fit import fit, measured_header, read_record, to_toml
from wideep.core.errors import InputError
from wideep.core.fileio import write_text_atomic
from wideep.perf.kernels import CALIBRATED_TP, gemm_shapes
from wideep.specs.hardware import load_gpu
from wideep.specs.model import load_model


def measure_here(model_id: str) -> dict:
    """The raw record of this machine's GPU 0 for the kernels of ``model_id``."""
    try:
        import torch
    except ImportError:
        raise InputError("needs PyTorch (pip install 'wideep[torch]') to measure; "
                         "--from-raw fits a record measured elsewhere", "calibrate") from None
    if not torch.cuda.is_available():
        raise InputError("PyTorch sees no CUDA GPU on this machine; --from-raw fits a record measured elsewhere",
                         "calibrate")
    from wideep.calibrate.measure import measure

    model = load_model(model_id)
    return measure(gemm_shapes(model, CALIBRATED_TP), model.hidden, model.n_experts, model.top_k,
                   log=lambda msg: print(msg, file=sys.stderr, flush=True))


def aic_models(model_id: str) -> list:
    """``model_id``'s model, or with ``all`` every catalog model (AIConfigurator's tables hold many shapes)."""
    from wideep.core.catalog import list_ids

    return [load_model(m) for m in (list_ids("models") if model_id == "all" else [model_id])]


def calibrate(gpu_id: str, model_id: str, out: str | None, raw: str | None, from_raw: str | None,
              command: str, from_aic: str | None = None, aic_engine: str = "trtllm") -> dict:
    """Measure (or read ``from_raw``, or AIConfigurator's tables), fit, and write ``out``; returns a summary."""
    gpu = load_gpu(gpu_id)
    if from_aic:
        from wideep.calibrate.aic import aic_tables, data_root

        tables, stamp = aic_tables(data_root(from_aic), gpu, aic_models(model_id), aic_engine)
        header = [f"Kernel tables of NVIDIA AIConfigurator ({stamp['engine']}), read by `{command}`:",
                  f"routed experts from {stamp['moe_table']} (one rank's MoE layer), GEMMs from {stamp['gemm_table']}.",
                  "Efficiency = time at the GPU catalog's datasheet peaks / measured time."]
        header[2:2] = [f"Also the MoE rows {k[len('moe_table_'):]} of {v} (the faster kernel per row)."
                       for k, v in stamp.items() if k.startswith("moe_table_")]
        if "allreduce_table" in stamp:
            header.insert(2, f"Tensor-parallel all-reduce (bf16) measured by GPUs from {stamp['allreduce_table']}.")
    else:
        record = read_record(from_raw) if from_raw else measure_here(model_id)
        if raw and not from_raw:
            write_text_atomic(raw, json.dumps(record, indent=1) + "\n", "--raw")
        tables, stamp = fit(record, gpu, from_raw or "this GPU's measurements"), record["stamp"]
        header = measured_header(record, gpu, command)
    text = to_toml(tables, stamp, gpu, header)
    if out:
        write_text_atomic(out, text, "--out")
    return {"gpu": gpu.id, "stamp": stamp, "out": out, "hbm_efficiency": tables.get("hbm", {}).get("efficiency"),
            "flops_efficiency": tables.get("flops"), "gemm_shapes": len(tables["gemm_shape"]),
            "grouped_gemms": len(tables["grouped_gemm"]), "toml": None if out else text}
