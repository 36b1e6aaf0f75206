"""Fuzz every file reader: mutated inputs must end in wideep's own error (or load), never another exception.

Each case takes a valid file of one reader (routing statistics, placements, topologies, GPUs, systems,
models, calibration files and raw measurement records, transports), applies one to three random mutations (bytes flipped, cut or inserted;
lines dropped, doubled or swapped; a value swapped for an extreme one; a node of the JSON tree replaced;
a value wrapped hundreds to thousands of levels deep; arrays of odd dtypes, shapes and values), reads it,
and sorts the outcome: loaded, rejected with :class:`wideep.core.errors.WideEPError`, or escaped (any
other exception: what the command line would show as a traceback). tests/test_fuzz.py drives the same
mutations from hypothesis.

Run: python benchmarks/fuzz_inputs.py [N=20000] [--seed S] [--show K]
"""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, Callable

import numpy as np

from wideep.core.errors import WideEPError

ROOT = Path(__file__).resolve().parents[1]
EXTREME_NUMBERS = ("0", "-1", "-0.0", "1e308", "1.7976931348623157e308", "-1e308", "1e-320", "nan", "inf",
                   "-inf", "NaN", "Infinity", "9" * 25, "-" + "9" * 25, "1" + "0" * 5000, "4294967296",
                   "9223372036854775808", "0.5", "3")
EXTREME_TOKENS = EXTREME_NUMBERS + ('""', '"x"', '"gpu"', "true", "false", "[]", "{}", "[1, 2]", '["a"]',
                                    "[[0, 1], [1]]", "null")
UNIQUE = count()
KINDS = ("loaded", "rejected", "escaped", "warned")


# ----------------------------------------------------------------------------------------- readers


@dataclass(frozen=True)
class Reader:
    """One file reader: the suffix of its files, valid seed files, and how wideep reads one."""

    name: str
    suffix: str
    seeds: Callable[[], list[bytes]]
    read: Callable[[Path], Any]
    folder: bool = False  # the reader takes a folder holding the file (TensorRT-LLM statistics)


def model(name: str):
    from wideep.specs.model import load_model

    return load_model(name)


def cluster(name: str, gpus: int):
    from wideep.specs.topology import load_cluster

    return load_cluster(name, gpus)


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=arr.dtype.hasobject)
    return buf.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    header, blobs, offset = {}, [], 0
    codes = {np.dtype("int32"): "I32", np.dtype("int64"): "I64", np.dtype("float32"): "F32"}
    for key, arr in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        header[key] = {"dtype": codes[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def routing_ids(tokens: int = 6) -> np.ndarray:
    """Valid Mixtral top-2 ids, shape (32, tokens, 2)."""
    rng = np.random.default_rng(0)
    return np.sort(np.stack([rng.choice(8, 2, replace=False) for _ in range(32 * tokens)]).reshape(32, tokens, 2), -1)


def routing_seeds_json() -> list[bytes]:
    load = np.random.default_rng(1).integers(1, 50, (32, 8))
    return [json.dumps({"load": load.tolist()}).encode(), json.dumps({"topk_ids": routing_ids(3).tolist()}).encode(),
            json.dumps({"logical_count": [load.tolist(), load.tolist()]}).encode()]


def read_routing(path: Path):
    from wideep.routing.files import load_routing

    return load_routing(path, model("mixtral-8x7b"))


def read_placement(path: Path):
    from wideep.placement.files import load_placement

    return load_placement(path, model("mixtral-8x7b"), cluster("hgx-h100", 8), 8)


def read_topology(path: Path):
    return cluster(str(path), None)


def read_gpu(path: Path):
    from wideep.specs.hardware import load_gpu

    return load_gpu(str(path))


def read_model(path: Path):
    return model(str(path))


def read_calibration(path: Path):
    from wideep.perf.roofline import load_calibration

    return load_calibration("h200-sxm", str(path))


def read_raw_record(path: Path):
    from wideep.calibrate.fit import fit, read_record
    from wideep.specs.hardware import load_gpu

    return fit(read_record(path), load_gpu("h200-sxm"))


def read_transport(path: Path):
    from wideep.traffic.transports import load_transport

    return load_transport(str(path))


def read_collective(path: Path):
    from wideep.traffic.collectives import load_collective

    return load_collective(str(path))


def catalog_text(*parts: str) -> list[bytes]:
    return [(ROOT / p).read_bytes() for p in parts]


def config_json() -> list[bytes]:
    import tomllib

    return [json.dumps(tomllib.loads((ROOT / "models" / f"{m}.toml").read_text())["config"]).encode()
            for m in ("mixtral-8x7b", "deepseek-v3")]


def sglang_placement() -> list[bytes]:
    table = [[(s + layer) % 8 for s in range(8)] for layer in range(32)]
    rows = "\n".join(f"  {layer}: [{', '.join(map(str, row))}]" for layer, row in enumerate(table))
    return [json.dumps({"physical_to_logical_map": table}).encode(),
            f"num_slots: 8\ninitial_global_assignments:\n{rows}\nlayer_updates_per_iter: 0\n".encode()]


READERS: dict[str, Reader] = {r.name: r for r in (
    Reader("routing-json", ".json", routing_seeds_json, read_routing),
    Reader("routing-csv", ".csv", lambda: ["expert0,expert1,expert2,expert3,expert4,expert5,expert6,expert7\n".encode()
                                           + "\n".join(",".join(["3"] * 8) for _ in range(32)).encode()], read_routing),
    Reader("routing-npy", ".npy", lambda: [npy_bytes(np.ones((32, 8))), npy_bytes(routing_ids())], read_routing),
    Reader("routing-npz", ".npz", lambda: [npz_bytes(load=np.ones((32, 8))), npz_bytes(topk_ids=routing_ids())],
           read_routing),
    Reader("routing-safetensors", ".safetensors",
           lambda: [safetensors_bytes({f"0_{layer}": np.ones(8, np.int64) for layer in range(32)})], read_routing,
           folder=True),
    Reader("placement-json", ".json", lambda: sglang_placement()[:1], read_placement),
    Reader("placement-yaml", ".yaml", lambda: sglang_placement()[1:], read_placement),
    Reader("placement-npy", ".npy", lambda: [npy_bytes(np.array([list(range(8))] * 32))], read_placement),
    Reader("topology-custom", ".toml", lambda: catalog_text("examples/two-boxes.toml"), read_topology),
    Reader("topology-system", ".toml", lambda: catalog_text("topologies/systems/hgx-h100.toml",
                                                            "topologies/systems/gb200-nvl72.toml"), read_topology),
    Reader("gpu", ".toml", lambda: catalog_text("topologies/gpus/h100-sxm.toml"), read_gpu),
    Reader("model-toml", ".toml", lambda: catalog_text("models/mixtral-8x7b.toml", "models/deepseek-v3.toml"),
           read_model),
    Reader("model-config-json", ".json", config_json, read_model),
    Reader("calibration", ".toml", lambda: catalog_text("topologies/calibration/h200-sxm.toml",
                                                         "topologies/calibration/default.toml"), read_calibration),
    Reader("calibration-raw", ".json", lambda: catalog_text("topologies/calibration/raw/h200-sxm-2026-12-02.json"),
           read_raw_record),
    Reader("transport", ".toml", lambda: catalog_text("topologies/transports/deepep-ll.toml",
                                                       "topologies/transports/deepep-normal.toml"), read_transport),
    Reader("collective", ".toml", lambda: catalog_text("topologies/collectives/allreduce.toml"), read_collective),
)}


# --------------------------------------------------------------------------------------- mutations


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: scalars of every kind, lists and objects a few levels deep."""
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice([0, -1, 1, 2**64, -(2**70), 10**30, 0.5, 1e308, -1e308, float("nan"), float("inf"),
                           True, False, None, "", "x", "gpu", "nvlink", "h100-sxm", [], {}])
    if roll < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["load", "topk_ids", "name", "x", "architectures", "hidden_size"]): random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every node of a JSON tree (lists of at most 64 items are walked whole; longer, sampled)."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += nodes(v, path + (k,))
    elif isinstance(value, list):
        for i in range(0, len(value), max(1, len(value) // 64)):
            out += nodes(value[i], path + (i,))
    return out


def mutate_json_tree(data: bytes, rng: random.Random) -> bytes:
    """Replace, drop or deepen one node of a JSON document (falls back to bytes when it does not parse)."""
    try:
        tree = json.loads(data)
        path = rng.choice(nodes(tree))
    except (ValueError, RecursionError):  # not JSON (any more), or already too deep to walk
        return flip_bytes(data, rng)
    if not path:
        return json.dumps(random_json(rng)).encode()
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    op = rng.random()
    if op < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
    elif op < 0.35:  # json.dumps itself cannot write very deep values: splice the brackets in as text
        depth = rng.choice([50, 300, 1200, 3000])
        parent[path[-1]] = DEEP
        return json.dumps(tree).replace(json.dumps(DEEP), "[" * depth + "1" + "]" * depth).encode()
    else:
        parent[path[-1]] = random_json(rng)
    return json.dumps(tree).encode()


DEEP = "@deep@"


VALUE = re.compile(rb'(?<==)\s*("[^"\n]*"|[-+0-9.eE_a-z]+|\[[^\n]*\])')


def swap_value(data: bytes, rng: random.Random) -> bytes:
    """Swap one ``key = value`` (TOML) or one number (anything textual) for an extreme value."""
    spots = [m.span(1) for m in VALUE.finditer(data)] or [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?", data)]
    if not spots:
        return flip_bytes(data, rng)
    a, b = rng.choice(spots)
    return data[:a] + b" " + rng.choice(EXTREME_TOKENS).encode() + data[b:]


def nest_deep(data: bytes, rng: random.Random) -> bytes:
    """Wrap one value of a TOML/JSON/YAML text hundreds to thousands of levels deep."""
    depth = rng.choice([200, 500, 1000, 4000])
    spots = [m.span(1) for m in VALUE.finditer(data)] or [m.span() for m in re.finditer(rb"\[", data)]
    if not spots:
        return b"x = " + b"[" * depth + b"]" * depth + b"\n" + data
    a, b = rng.choice(spots)
    if rng.random() < 0.5:
        inner = b"[" * depth + data[a:b] + b"]" * depth
    else:
        inner = b"{a = " * depth + b"1" + b"}" * depth
    return data[:a] + b" " + inner + data[b:]


def line_ops(data: bytes, rng: random.Random) -> bytes:
    """Drop, double or swap lines, or cut the text short."""
    lines = data.split(b"\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.randrange(4)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[j])
    elif op == 2:
        lines[i], lines[j] = lines[j], lines[i]
    else:
        return data[:rng.randrange(len(data) + 1)]
    return b"\n".join(lines)


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flip, insert or delete a few random bytes (anywhere: headers, lengths, UTF-8)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(3)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            del buf[at:at + rng.randint(1, 16)]
    return bytes(buf)


def odd_array(rng: random.Random) -> np.ndarray:
    """An array of an odd dtype, shape or value: objects, strings, complex, bools, huge or non-finite."""
    shape = rng.choice([(32, 8), (32, 6, 2), (32, 8, 2), (0,), (), (32, 0), (1, 1, 1, 1), (32, 8, 1), (33, 8)])
    kind = rng.randrange(8)
    if kind == 0:
        return np.array([{"a": 1}] * max(1, int(np.prod(shape))), dtype=object)
    if kind == 1:
        return np.full(shape, "7", dtype="<U3")
    if kind == 2:
        return np.full(shape, 1 + 2j)
    if kind == 3:
        return np.ones(shape, dtype=bool)
    if kind == 4:
        return np.full(shape, rng.choice([1e308, -1.0, float("nan"), float("inf"), 2.0**80]))
    if kind == 5:
        return np.full(shape, rng.choice([-1, 2**40, 7, 8, 2**62]), dtype=np.int64)
    if kind == 6:
        return np.zeros(shape, dtype=[("a", "<i4"), ("b", "<f8")])
    return np.full(shape, rng.randrange(8), dtype=rng.choice([np.int8, np.uint16, np.int32, np.float16]))


def mutate_array_file(data: bytes, suffix: str, rng: random.Random) -> bytes:
    """A new ``.npy``/``.npz`` of odd arrays, or the old one with its header or data bytes damaged."""
    if rng.random() < 0.5:
        return flip_bytes(data, rng)
    if suffix == ".npy":
        if rng.random() < 0.3:  # a header that promises an enormous array
            return re.sub(rb"'shape': \([^)]*\)", rng.choice([b"'shape': (1000000000000,)", b"'shape': (-1, 8)",
                                                              b"'shape': (32, 8, 8, 8, 8, 8, 8, 8, 8)"]), data)
        return npy_bytes(odd_array(rng))
    names = rng.sample(["load", "topk_ids", "other"], rng.randint(1, 2))
    return npz_bytes(**{n: odd_array(rng) for n in names})


def mutate(data: bytes, suffix: str, rng: random.Random) -> bytes:
    """One random mutation fitting the file kind."""
    if suffix in (".npy", ".npz"):
        return mutate_array_file(data, suffix, rng)
    if suffix == ".safetensors":
        return flip_bytes(data, rng) if rng.random() < 0.6 else safetensors_header(data, rng)
    ops = [swap_value, swap_value, swap_value, line_ops, flip_bytes, nest_deep]
    if suffix == ".json":
        ops += [mutate_json_tree] * 4
    return rng.choice(ops)(data, rng)


def safetensors_header(data: bytes, rng: random.Random) -> bytes:
    """Mutate the JSON header of a safetensors file and fix its length prefix."""
    (n,) = struct.unpack("<Q", data[:8])
    head = mutate_json_tree(data[8:8 + n], rng)
    return struct.pack("<Q", len(head)) + head + data[8 + n:]


# ------------------------------------------------------------------------------------------- cases


@dataclass
class Outcome:
    reader: str
    kind: str  # "loaded", "rejected", "escaped" (an exception not ours) or "warned" (a warning printed)
    seconds: float
    error: str = ""
    data: bytes = b""


def write_case(folder: Path, reader: Reader, data: bytes) -> Path:
    """Write ``data`` where ``reader`` reads it; a fresh name each time (loaders cache by path)."""
    case = folder / f"case{next(UNIQUE)}"
    case.mkdir()
    if reader.folder:
        (case / "meta_info.json").write_text(json.dumps({"num_experts": 8, "num_experts_per_token": 2}))
        (case / f"rank0{reader.suffix}").write_bytes(data)
        return case
    name = "config.json" if reader.name == "model-config-json" else f"input{reader.suffix}"
    path = case / name
    path.write_bytes(data)
    return path


def run_case(reader: Reader, data: bytes, folder: Path) -> Outcome:
    """Read ``data`` with ``reader`` and say how it ended."""
    path = write_case(folder, reader, data)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # a warning is one more line on stderr
        warnings.simplefilter("always")
        try:
            reader.read(path)
            kind, error = "loaded", ""
        except WideEPError as exc:
            kind, error = "rejected", str(exc)
        except BaseException as exc:  # noqa: BLE001 - counting exactly what escapes is the point
            if isinstance(exc, KeyboardInterrupt):
                raise
            kind, error = "escaped", "".join(traceback.format_exception(exc))
    if caught and kind != "escaped":
        kind, error = "warned", "\n".join(f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
                                          for w in caught)
    seconds = time.perf_counter() - start
    shutil.rmtree(path if reader.folder else path.parent)
    return Outcome(reader.name, kind, seconds, error, data if kind in ("escaped", "warned") else b"")


def fuzz_case(reader: Reader, rng: random.Random, folder: Path) -> Outcome:
    """One mutated seed of ``reader`` (one to three mutations), read."""
    data = rng.choice(reader.seeds())
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        data = mutate(data, reader.suffix, rng)
    return run_case(reader, data, folder)


def main(argv: list[str]) -> int:
    n = int(next((a for a in argv if a.isdigit()), 20000))
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    show = int(argv[argv.index("--show") + 1]) if "--show" in argv else 3
    rng = random.Random(seed)
    names = sorted(READERS)
    tally: dict[str, dict[str, int]] = {name: dict.fromkeys(KINDS, 0) for name in names}
    escaped: list[Outcome] = []
    slowest = Outcome("", "", 0.0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(n):
            out = fuzz_case(READERS[rng.choice(names)], rng, Path(tmp))
            tally[out.reader][out.kind] += 1
            escaped += [out] if out.kind in ("escaped", "warned") else []
            slowest = out if out.seconds > slowest.seconds else slowest
    print(f"{n:,} mutated inputs over {len(names)} readers in {time.perf_counter() - start:.0f} s (seed {seed})")
    print(f"{'reader':22s}" + "".join(f" {k:>8s}" for k in KINDS))
    for name in names:
        print(f"{name:22s}" + "".join(f" {tally[name][k]:8,}" for k in KINDS))
    total = {k: sum(t[k] for t in tally.values()) for k in KINDS}
    print(f"{'all':22s}" + "".join(f" {total[k]:8,}" for k in KINDS))
    print(f"tracebacks (escaped): {total['escaped']}; warnings printed: {total['warned']}; "
          f"slowest case {slowest.seconds:.2f} s ({slowest.reader})")
    for out in escaped[:show]:
        print(f"\n--- {out.reader}: {out.data[:200]!r}\n{out.error}")
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
