"""Placement files the engines load, and the reader behind ``--placement FILE``.

Formats (docs/sources.md section 3):

- ``sglang``: JSON ``{"physical_to_logical_map": [[logical id per slot] per MoE layer]}`` for
  ``--init-expert-location FILE``;
- ``vllm``: the same physical-to-logical layout in JSON, with ``num_redundant_experts`` beside it
  (vLLM's EPLB takes ``--enable-eplb --eplb-config '{"num_redundant_experts": R}'``);
- ``trtllm``: TensorRT-LLM wide-EP YAML ``{num_slots: S, initial_global_assignments: {layer: [ids x S]}}``
  keyed by decoder layer index, each run of S / ep_size consecutive slots on one rank; written by a
  small emitter here (no YAML dependency) and read back by a parser of that same subset;
- ``json``: wideep's own: the map plus EP size, domains, algorithm and the metrics summary.

:func:`load_placement` reads any of these, and a ``.npy`` of shape (layers, slots), for ``--placement``
(``wideep a2a``); :func:`wideep.slots.validate_phy2log` checks what it read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from wideep.core.catalog import not_a_file
from wideep.core.fileio import write_text_atomic
from wideep.core.npfile import load_npy
from wideep.core.parse import parse_json
from wideep.core.errors import CatalogError, InputError
from wideep.specs.model import Model
from wideep.placement.table import Placement, from_table

FORMATS = ("sglang", "vllm", "trtllm", "json")
MAP_KEY = "physical_to_logical_map"
NPY_FIELD = "phy2log"


def render(placement: Placement, fmt: str, model: Model, summary: dict | None = None) -> str:
    """The text of a placement file in format ``fmt`` (``sglang``, ``vllm``, ``trtllm`` or ``json``)."""
    table = placement.phy2log.tolist()
    if fmt == "sglang":
        return json.dumps({MAP_KEY: table}) + "\n"
    if fmt == "vllm":
        return json.dumps({MAP_KEY: table, "num_redundant_experts": placement.redundant,
                           "ep_size": placement.ep_size}) + "\n"
    if fmt == "trtllm":
        return trtllm_yaml(placement, model.moe_layer_indices())
    if fmt == "json":
        return json.dumps({"model": model.id, "algorithm": placement.algorithm, "ep_size": placement.ep_size,
                           "n_experts": placement.n_experts, "num_slots": placement.slots,
                           "domain_of_rank": placement.domain_of.tolist(), "summary": summary or {},
                           MAP_KEY: table}, indent=1) + "\n"
    raise InputError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})", "--format")


def trtllm_yaml(placement: Placement, layer_ids: Sequence[int]) -> str:
    """TensorRT-LLM ``moe_load_balancer`` YAML; row i keyed by its decoder layer index ``layer_ids[i]``.

    >>> from wideep.placement.table import Placement
    >>> p = Placement(np.array([[0, 1, 1, 0]]), 2, 2, np.array([0, 0]))
    >>> print(trtllm_yaml(p, [3]), end="")
    num_slots: 4
    initial_global_assignments:
      3: [0, 1, 1, 0]
    layer_updates_per_iter: 0
    """
    lines = [f"num_slots: {placement.slots}", "initial_global_assignments:"]
    lines += [f"  {layer}: [{', '.join(map(str, row))}]" for layer, row in zip(layer_ids, placement.phy2log.tolist())]
    lines.append("layer_updates_per_iter: 0")
    return "\n".join(lines) + "\n"


def write_placement(path: str | Path, placement: Placement, fmt: str, model: Model,
                    summary: dict | None = None) -> None:
    """Write ``placement`` to ``path``; unwritable paths raise :class:`InputError` on ``--out``."""
    write_text_atomic(path, render(placement, fmt, model, summary), "--out")


YAML_LAYER = re.compile(r"^\s+(\d+)\s*:\s*\[([^\]]*)\]\s*$")
YAML_TOP = re.compile(r"^([A-Za-z_]+)\s*:\s*(.*?)\s*$")


def parse_trtllm_yaml(text: str, source: str) -> tuple[np.ndarray, int]:
    """phy2log (layers in key order) and the first layer key from TensorRT-LLM placement YAML."""
    rows: dict[int, list[int]] = {}
    num_slots = None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        layer = YAML_LAYER.match(line)
        top = YAML_TOP.match(line)
        if layer:
            try:
                rows[int(layer.group(1))] = [int(v) for v in layer.group(2).split(",") if v.strip()]
            except ValueError:
                raise CatalogError("slot ids must be integers", source, f"line {n}") from None
        elif top and top.group(1) == "num_slots":
            num_slots = slot_count(top.group(2), source)
        elif not (top and top.group(1) in ("initial_global_assignments", "layer_updates_per_iter")):
            raise CatalogError(f"unexpected line {line.strip()!r}", source, f"line {n}")
    if not rows:
        raise CatalogError("missing required field", source, "initial_global_assignments")
    keys = sorted(rows)
    lengths = {len(rows[k]) for k in keys}
    if len(lengths) != 1:
        raise CatalogError("layers have different slot counts", source, "initial_global_assignments")
    if num_slots is not None and num_slots != lengths.pop():
        raise CatalogError(f"{num_slots} does not match the {len(rows[keys[0]])} ids per layer", source, "num_slots")
    return id_table([rows[k] for k in keys], source, "initial_global_assignments"), keys[0]


def slot_count(text: str, source: str) -> int:
    """``num_slots`` of TensorRT-LLM placement YAML: a positive integer of a sane size.

    >>> slot_count("288", "p.yaml")
    288
    """
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise CatalogError(f"must be a positive integer, got {text[:40]!r}", source, "num_slots")
    return int(text)


def id_table(rows: list[list[int]], source: str, field: str) -> np.ndarray:
    """Rows of expert ids as int64; ids beyond int64 are out of range for any model."""
    try:
        return np.array(rows, dtype=np.int64)
    except OverflowError:
        raise CatalogError("expert id out of range", source, field) from None


def read_placement_table(path: str | Path) -> tuple[np.ndarray, str]:
    """The phy2log table of a placement file (any of :data:`FORMATS`, or ``.npy``) and the field it came from.

    Validation against a model and EP size is :func:`wideep.placement.table.from_table`'s job.
    """
    p = Path(path)
    src = str(p)
    if not p.is_file():
        raise InputError(not_a_file(p), src)
    if p.suffix.lower() == ".npy":
        return read_npy(p), NPY_FIELD
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", src) from None
    if p.suffix in (".yaml", ".yml"):
        return parse_trtllm_yaml(text, src)[0], "initial_global_assignments"
    data = parse_json(text, src)
    if not isinstance(data, dict) or MAP_KEY not in data:
        raise CatalogError("missing required field (a [layers][slots] table)", src, MAP_KEY)
    table = data[MAP_KEY]
    if not isinstance(table, list) or not all(isinstance(r, list) for r in table):
        raise CatalogError("must be a list of lists of integers", src, MAP_KEY)
    if len({len(r) for r in table}) > 1:
        raise CatalogError("layers have different slot counts", src, MAP_KEY)
    if any(isinstance(v, bool) or not isinstance(v, int) for r in table for v in r):
        raise CatalogError("entries must be integers", src, MAP_KEY)
    return id_table(table, src, MAP_KEY), MAP_KEY


def read_npy(path: Path) -> np.ndarray:
    """A (layers, slots) array from a ``.npy`` file (no pickled objects)."""
    return load_npy(path)


def load_placement(path: str | Path, model: Model, cluster, ep_size: int) -> Placement:
    """A validated :class:`Placement` from a file (for ``--placement FILE``)."""
    table, field = read_placement_table(path)
    return from_table(table, model, cluster, ep_size, str(path), field)
