"""Fuzz every file reader: whatever the bytes, a reader loads them or raises wideep's own error.

Mutations come from benchmarks/fuzz_inputs.py (which runs tens of thousands of them and counts what
escapes); hypothesis picks the reader, the seed file and the mutations here, and adds JSON values of its
own and nesting deep enough to exhaust a recursive parser. Anything but :class:`WideEPError` fails.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load_fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_inputs", BENCH / "fuzz_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_inputs"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fuzz = load_fuzz()
READERS = sorted(fuzz.READERS)
SETTINGS = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def assert_ours(outcome) -> None:
    assert outcome.kind in ("loaded", "rejected"), f"{outcome.reader}: {outcome.data[:300]!r}\n{outcome.error}"


@pytest.mark.parametrize("name", READERS)
def test_every_seed_file_loads(tmp_path, name):
    """The seeds are valid: a mutation, not the seed, is what a rejection answers."""
    reader = fuzz.READERS[name]
    for data in reader.seeds():
        assert fuzz.run_case(reader, data, tmp_path).kind == "loaded", name


@SETTINGS
@given(name=st.sampled_from(READERS), rng=st.randoms(use_true_random=False))
def test_random_mutations(tmp_path_factory, name, rng):
    reader = fuzz.READERS[name]
    assert_ours(fuzz.fuzz_case(reader, rng, tmp_path_factory.mktemp("fuzz")))


@SETTINGS
@given(name=st.sampled_from([n for n in READERS if fuzz.READERS[n].suffix == ".json"]), value=json_values,
       where=st.integers(min_value=0))
def test_json_nodes_replaced_by_any_value(tmp_path_factory, name, value, where):
    reader = fuzz.READERS[name]
    tree = json.loads(reader.seeds()[0])
    paths = fuzz.nodes(tree)
    path = paths[where % len(paths)]
    if path:
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    else:
        tree = value
    data = json.dumps(tree).encode()
    assert_ours(fuzz.run_case(reader, data, tmp_path_factory.mktemp("fuzz")))


@pytest.mark.parametrize("depth", [600, 1200, 5000])
@pytest.mark.parametrize("name", [n for n in READERS if fuzz.READERS[n].suffix in (".json", ".toml", ".yaml")])
def test_deep_nesting(tmp_path, name, depth):
    reader = fuzz.READERS[name]
    assert_ours(fuzz.run_case(reader, fuzz.nest_deep(reader.seeds()[0], random.Random(depth)), tmp_path))
    for data in (b"[" * depth + b"]" * depth, b"x = " + b"{a = " * depth + b"1" + b"}" * depth):
        outcome = fuzz.run_case(reader, data, tmp_path)
        assert_ours(outcome)
        assert outcome.kind == "rejected"
