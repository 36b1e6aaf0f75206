"""Routing statistics from files: :func:`load_routing` reads what an engine recorded, and
:func:`routing_from_spec` takes either a synthetic spec (:func:`wideep.routing.stats.synthetic_routing`) or a file.

Formats:

- SGLang expert-distribution recorder (``.pt``; needs torch, the ``wideep[torch]`` extra): mode ``stat``
  holds ``logical_count`` [steps, layers, experts]; mode ``per_token`` holds ``records``, each with
  ``topk_ids_of_layer`` [layers, tokens, top_k]. Read with ``torch.load(weights_only=True)``: no code runs.
- TensorRT-LLM ``EXPERT_STATISTIC_PATH`` folder: ``meta_info.json`` plus ``rank*.safetensors`` keyed
  ``"{iter}_{layer}"`` with per-expert counts; raw per-token ids, where recorded
  (``rank*_raw.safetensors`` or ``token_selected_experts_rank*.safetensors``, [tokens, top_k]), are used
  in preference. Safetensors are parsed here (header JSON + raw little-endian arrays).
- Plain: ``.npz`` with ``topk_ids`` and/or ``load``; ``.npy`` (3-D: topk_ids, 2-D: load); ``.csv`` (one
  row of expert loads per layer, an optional header line); ``.json`` with ``topk_ids``, ``load`` or
  ``logical_count``.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from wideep.core.errors import CatalogError, InputError
from wideep.core.npfile import load_npy, load_npz
from wideep.core.parse import parse_json, read_data
from wideep.specs.model import Model
from wideep.routing.stats import SPEC_RE, RoutingStats, stats_from_arrays, synthetic_routing

SAFETENSORS_DTYPES = {"BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "I32": "<i4", "U32": "<u4",
                      "I64": "<i8", "U64": "<u8", "F16": "<f2", "F32": "<f4", "F64": "<f8"}
TRT_KEY = re.compile(r"^(\d+)_(\d+)$")


def routing_from_spec(spec_or_path: str, model: Model, tokens: int, seed: int = 0,
                      layers: int | None = None) -> RoutingStats:
    """A synthetic spec (``uniform``, ``auto``, ``zipf:S``, ``topics:K``, ``lognormal:G,E``) or a statistics file/folder.

    A file keeps its own tokens (see :func:`wideep.routing.stats.sample_tokens`) and all its layers: measured
    layers differ in skew (DeepSeek-V3's busiest of 8 expert blocks is 2.19 on the first four layers of an SGLang
    decode file, 1.86 on four spread ones, 2.01 on all 58), so no subset stands for the rest; ``layers`` only sets
    how many a synthetic sample draws.
    """
    if SPEC_RE.match(spec_or_path) or not looks_like_file(spec_or_path):
        return synthetic_routing(model, spec_or_path, tokens, seed, layers)
    return load_routing(spec_or_path, model)


def looks_like_file(text: str) -> bool:
    """A path rather than a synthetic spec (``uniform``, ``auto``, ``zipf:S``, ``topics:K``, ``lognormal:G,E``)."""
    if text in ("uniform", "auto") or text.startswith(("zipf:", "topics:", "lognormal:")):
        return False
    return Path(text).exists() or "/" in text or "." in text


def load_routing(path: str | Path, model: Model) -> RoutingStats:
    """Routing statistics from what an engine recorded, or the plain layout (formats: module docstring)."""
    return read_stats(Path(path), model)


def read_stats(path: Path, model: Model) -> RoutingStats:
    """Dispatch on the file kind; every problem raises InputError naming the file."""
    src = str(path)
    if path.is_dir():
        if not (path / "meta_info.json").is_file():
            raise InputError("a statistics folder must be TensorRT-LLM's (meta_info.json + rank*.safetensors)", src)
        return read_trtllm(path, model)
    if not path.is_file():
        raise InputError("no such file", src)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        return read_sglang(path, model)
    if suffix == ".npz":
        return read_npz(path, model)
    if suffix == ".npy":
        arr = load_npy(path, InputError)
        return stats_from_arrays(arr if arr.ndim == 3 else None, arr if arr.ndim != 3 else None, model, src)
    if suffix == ".csv":
        return stats_from_arrays(None, read_csv(path), model, src)
    if suffix == ".json":
        ids, load = json_arrays(read_json(path), src)
        return stats_from_arrays(ids, load, model, src)
    raise InputError("unknown statistics format (.pt, .npz, .npy, .csv, .json or a TensorRT-LLM folder)", src)


def read_npz(path: Path, model: Model) -> RoutingStats:
    data = load_npz(path, InputError)
    if not {"topk_ids", "load"} & set(data):
        raise InputError(f"expected arrays topk_ids and/or load, found {', '.join(data) or 'none'}", str(path))
    return stats_from_arrays(data.get("topk_ids"), data.get("load"), model, str(path))


def read_csv(path: Path) -> np.ndarray:
    """Rows of numbers; a first line with any non-number is a header and skipped."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", str(path)) from None
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append([float(x) for x in line.split(",")])
        except ValueError:
            if i == 0:
                continue
            raise InputError(f"line {i + 1}: not a list of numbers", str(path)) from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise InputError("expected equal-length rows of expert loads, one per layer", str(path))
    return np.array(rows)


def read_sglang(path: Path, model: Model) -> RoutingStats:
    """SGLang expert-distribution dump (torch .pt): ``per_token`` records or ``stat`` logical_count."""
    try:
        import torch
    except ImportError:
        raise InputError("reading SGLang .pt dumps needs torch: pip install 'wideep[torch]' "
                         "(or convert to .npz with topk_ids/load)", str(path)) from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or unsafe file
        raise InputError(f"cannot read torch file: {exc}".splitlines()[0], str(path)) from None
    if not isinstance(data, dict):
        raise InputError("expected a dict (SGLang expert distribution dump)", str(path))
    as_np = lambda t: t.cpu().numpy() if hasattr(t, "cpu") else np.asarray(t)  # noqa: E731
    if "records" in data:
        parts = [as_np(r["topk_ids_of_layer"]) for r in data["records"]
                 if isinstance(r, dict) and "topk_ids_of_layer" in r]
        parts = [p for p in parts if p.ndim == 3 and p.shape[1] > 0]
        if not parts:
            raise InputError("no per-token records with topk_ids_of_layer", str(path), "records")
        return stats_from_arrays(concat_tokens(parts, str(path)), None, model, str(path))
    if "logical_count" in data:
        load = as_np(data["logical_count"]).astype(float)
        return stats_from_arrays(None, load.sum(axis=0) if load.ndim == 3 else load, model, str(path))
    raise InputError("expected keys records (per_token mode) or logical_count (stat mode)", str(path))


def concat_tokens(parts: list[np.ndarray], source: str) -> np.ndarray:
    shapes = {(p.shape[0], p.shape[2]) for p in parts}
    if len(shapes) != 1:
        raise InputError(f"records disagree on (layers, top_k): {sorted(shapes)}", source, "topk_ids")
    return np.concatenate(parts, axis=1)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file as numpy arrays (no code runs: a JSON header and raw bytes)."""
    src = str(path)
    try:
        raw = path.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
    except (OSError, struct.error) as exc:
        raise InputError(f"not a safetensors file: {exc}", src) from None
    header = parse_json(raw[8:8 + n], src, InputError)
    if not isinstance(header, dict):
        raise InputError("not a safetensors file: its header is not a JSON object", src)
    return {key: tensor(raw, 8 + n, info, src, key) for key, info in header.items() if key != "__metadata__"}


def tensor(raw: bytes, start: int, info: object, source: str, key: str) -> np.ndarray:
    """One tensor of a safetensors file from its header entry ``{dtype, shape, data_offsets}``."""
    try:
        dt = np.dtype(SAFETENSORS_DTYPES[info["dtype"]])  # type: ignore[index]
        begin, end = info["data_offsets"]  # type: ignore[index]
        if not 0 <= begin <= end <= len(raw) - start:
            raise ValueError(f"data_offsets {begin}..{end} outside the {len(raw) - start} data bytes")
        arr = np.frombuffer(raw, dtype=dt, count=(end - begin) // dt.itemsize, offset=start + begin)
        return arr.reshape(info["shape"])  # type: ignore[index]
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"bad tensor entry: {' '.join(str(exc).split())}", source, key) from None


def read_trtllm(path: Path, model: Model) -> RoutingStats:
    """TensorRT-LLM expert statistics folder: per-token ids where recorded, else summed counts."""
    raw = sorted(path.glob("rank*_raw.safetensors")) + sorted(path.glob("token_selected_experts_rank*.safetensors"))
    counts = [p for p in sorted(path.glob("rank*.safetensors")) if not p.name.endswith("_raw.safetensors")]
    if raw:
        return stats_from_arrays(trt_topk(raw, str(path)), None, model, str(path))
    if not counts:
        raise InputError("no rank*.safetensors files", str(path))
    return stats_from_arrays(None, trt_counts(counts, str(path)), model, str(path))


def trt_layers(files: list[Path], source: str) -> dict[int, list[tuple[Path, str, np.ndarray]]]:
    """(file, key, array) of every file grouped by layer (keys ``"{iter}_{layer}"``), iterations in order."""
    by_layer: dict[int, list[tuple[int, Path, str, np.ndarray]]] = {}
    for f in files:
        for key, arr in read_safetensors(f).items():
            m = TRT_KEY.match(key)
            if not m:
                raise InputError("keys must look like '{iter}_{layer}'", str(f), key)
            by_layer.setdefault(int(m[2]), []).append((int(m[1]), f, key, arr))
    if not by_layer:
        raise InputError("no statistics recorded", source)
    return {layer: [(f, k, a) for _, f, k, a in sorted(v, key=lambda t: t[0])] for layer, v in sorted(by_layer.items())}


def trt_counts(files: list[Path], source: str) -> np.ndarray:
    layers = trt_layers(files, source)
    try:
        return np.stack([np.sum([np.asarray(a, float).ravel() for _, _, a in v], axis=0) for v in layers.values()])
    except ValueError as exc:
        raise InputError(f"per-expert counts of different lengths: {exc}", source) from None


def trt_topk(files: list[Path], source: str) -> np.ndarray:
    """Raw ids of every layer, shape (layers, tokens, top_k); files must agree on top_k."""
    layers = trt_layers(files, source)
    first: tuple[Path, int] | None = None
    for f, key, a in (t for v in layers.values() for t in v):
        if a.ndim < 2 or a.shape[-1] == 0:
            raise CatalogError(f"expected [tokens, top_k] expert ids, got shape {a.shape}", str(f), key)
        if first is None:
            first = (f, a.shape[-1])
        elif a.shape[-1] != first[1]:
            raise CatalogError(f"top_k is {a.shape[-1]}, {first[0].name} records {first[1]}", str(f), key)
    per_layer = [np.concatenate([a.reshape(-1, a.shape[-1]) for _, _, a in v]) for v in layers.values()]
    if len({p.shape for p in per_layer}) != 1:
        raise InputError("layers recorded different token counts", source)
    return np.stack(per_layer)


def json_arrays(data: dict, source: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(topk_ids, load) from a JSON object: keys ``topk_ids``, ``load`` or SGLang's ``logical_count``."""
    known = {"topk_ids", "load", "logical_count"}
    if not known & set(data):
        raise InputError(f"expected one of the keys {', '.join(sorted(known))}", source)
    try:
        ids = np.array(data["topk_ids"]) if "topk_ids" in data else None
        load = data.get("load", data.get("logical_count"))
        load = None if load is None else np.array(load, dtype=float)
    except (ValueError, TypeError) as exc:
        raise InputError(f"ragged or non-numeric array: {exc}", source) from None
    if load is not None and load.ndim == 3:
        load = load.sum(axis=0)  # [steps, layers, experts] as SGLang records
    return ids, load


def read_json(path: Path) -> dict:
    data = read_data(path, InputError)
    if not isinstance(data, dict):
        raise InputError("top level must be an object", str(path))
    return data
