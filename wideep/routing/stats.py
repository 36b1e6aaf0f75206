"""Expert routing statistics: which experts each token selects, per MoE layer.

Held either as token-level top-k samples ``topk_ids`` (layers, tokens, top_k), which keep the
co-activation structure dispatch dedup depends on, or only as per-expert loads (layers, experts).
Seeded synthetic generators (``uniform``, ``zipf:S``, ``topics:K``, ``lognormal:G,E``; ``auto`` is the
model's measured ``lognormal`` popularity, uniform for a model without one) honour group-limited routing
(``n_group`` / ``topk_group``). Array validation for loaders lives here; the loaders themselves (SGLang
expert-distribution dumps, TensorRT-LLM expert statistics, a plain numpy/CSV/JSON layout, see docs/a2a.md)
and :func:`~wideep.routing.files.routing_from_spec` are in :mod:`wideep.routing.files`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations
from math import comb
from statistics import NormalDist

import numpy as np

from wideep.core import progress
from wideep.core.errors import InputError
from wideep.specs.model import POPULARITY_SIGMA_MAX, Model

#: Weight of a topic's own experts against the others in ``topics:K`` routing (a token of topic t picks
#: its experts with probability proportional to this weight on t's experts and 1 elsewhere). Calibrated
#: to one published measurement: SGLang PR 19772 cut cross-node RDMA traffic 25.2% with co-activation-aware
#: placement on real DeepSeek-R1 traffic over 2 nodes of 8 GPUs; with this weight, ``topology`` placement
#: of DeepSeek-V3 at EP16 over 2 hgx-h100 domains (32 redundant, topics:8) cuts cross-domain copies ~25%
#: against ``balanced`` (benchmarks/bench_placement.py). About 85% of a token's selections fall in its
#: topic's experts for K = 8 (before group-limited routing).
TOPIC_WEIGHT = 42.0

#: Most tokens per layer a synthetic or resampled routing sample may hold (EP x ``--tokens``): 2**20, e.g.
#: EP 128 x 8192. A bound on run time and memory, not a published figure: drawing 58 layers of this size
#: already takes about a minute (benchmarks/bench_traffic.py draws half as many in ~26 s).
MAX_SAMPLE_TOKENS = 1 << 20

#: Seconds per element of drawing a synthetic sample, on the 2-core machine benchmarks/ are timed on: uniform
#: and lognormal per (layer, token, selection), zipf and topics per (layer, token, expert) Gumbel key (measured
#: for DeepSeek-V3, 58 layers: uniform 138 ns, zipf and topics 70-77 ns, lognormal 146 ns). A sample estimated
#: over MAX_SAMPLE_S is refused before it starts.
SAMPLE_S = {"uniform": 1.4e-7, "zipf": 8e-8, "topics": 8e-8, "lognormal": 1.5e-7}
MAX_SAMPLE_S = 120.0
PER_SELECTION = ("uniform", "lognormal")  # kinds whose cost is per selection, the others' per expert

MAX_TOPICS = 4096  # more topics than any model's experts only repeats the uniform case
NUMBER = r"[0-9.eE+-]+"
SPEC_RE = re.compile(rf"^(uniform|auto|zipf:(?P<s>{NUMBER})|topics:(?P<k>[0-9]+)|lognormal:(?P<g>{NUMBER}),(?P<e>{NUMBER}))$")

#: Seed of the layers' popularity under ``lognormal`` routing (with the layer index): fixed, so that every
#: sample of one model, whatever ``--seed`` draws its tokens, shares the same popular experts, as the steps of
#: one deployment do; a placement fitted to one sample is judged on another of the same popularity.
POPULARITY_SEED = 20250505


@dataclass(frozen=True)
class RoutingStats:
    """Routing of one model over some tokens.

    Attributes
    ----------
    n_experts : int
        Logical experts per MoE layer.
    load : ndarray of float64, shape (layers, experts)
        Selections of each logical expert.
    topk_ids : ndarray of int32/int64, shape (layers, tokens, top_k), or None
        Logical expert ids chosen by each token; None when only the loads are known.
    rows_sorted : bool
        True when every token's ids are in ascending order (the generators and loaders here ensure it;
        the traffic model then skips a sort).
    """

    n_experts: int
    load: np.ndarray
    topk_ids: np.ndarray | None
    rows_sorted: bool = False

    @property
    def layers(self) -> int:
        return self.load.shape[0]

    @property
    def tokens(self) -> int | None:
        return None if self.topk_ids is None else self.topk_ids.shape[1]

    def balancedness(self) -> np.ndarray:
        """Mean over max logical-expert load per layer, shape (layers,)."""
        return balancedness(self.load)


def balancedness(load: np.ndarray) -> np.ndarray:
    """Mean over max load per layer (1.0 is perfect; 1.0 for an empty layer), shape (layers,).

    ``load`` has shape (layers, units): experts or GPUs, as SGLang and vLLM log it.

    >>> balancedness(np.array([[1, 3], [0, 0]])).tolist()
    [0.6666666666666666, 1.0]
    """
    load = np.asarray(load, dtype=np.float64)
    peak = load.max(axis=1)
    return np.divide(load.mean(axis=1), peak, out=np.ones_like(peak), where=peak > 0)


def per_layer_counts(ids: np.ndarray, n_values: int) -> np.ndarray:
    """Occurrences of each value 0 .. n_values - 1 in every layer of ``ids`` (layers, ...), shape (layers, n_values).

    >>> per_layer_counts(np.array([[0, 2, 2], [1, 1, 1]]), 3).tolist()
    [[1, 0, 2], [0, 3, 0]]
    """
    layers = ids.shape[0]
    flat = ids.reshape(layers, -1) + np.arange(0, layers * n_values, n_values, dtype=np.int64)[:, None]
    return np.bincount(flat.ravel(), minlength=layers * n_values).reshape(layers, n_values)


def token_ranks(n_tokens: int, ep_size: int) -> np.ndarray:
    """EP rank holding each token of a step, shape (n_tokens,).

    Rank ``r`` holds tokens ``[r * tpg, (r + 1) * tpg)`` when ``n_tokens = ep_size x tpg``; otherwise the
    tokens split as evenly as they can, in order.

    >>> token_ranks(6, 3).tolist(), token_ranks(5, 2).tolist()
    ([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1])
    """
    return np.arange(n_tokens, dtype=np.int64) * ep_size // n_tokens


def check_seed(seed: int) -> int:
    """``seed`` if numpy accepts it (an integer >= 0), else InputError on ``--seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"must be an integer >= 0, got {seed}", "--seed")
    return int(seed)


def check_sample_size(tokens: int) -> None:
    """A routing sample to generate of more than :data:`MAX_SAMPLE_TOKENS` per layer raises on ``--tokens``."""
    if tokens > MAX_SAMPLE_TOKENS:
        raise InputError(f"{tokens:,} tokens per layer (EP x --tokens) is over the limit of "
                         f"{MAX_SAMPLE_TOKENS:,}", "--tokens")


def draw_seconds(kind: str, layers: int, tokens: int, top_k: int, n_experts: int) -> float:
    """Estimated seconds to draw ``tokens`` tokens of ``kind`` routing for ``layers`` layers (see SAMPLE_S)."""
    return SAMPLE_S[kind] * layers * tokens * (top_k if kind in PER_SELECTION else n_experts)


def sample_seconds(kind: str, layers: int, tokens: int, model: Model) -> float:
    """:func:`draw_seconds` for ``model``."""
    return draw_seconds(kind, layers, tokens, model.top_k, model.n_experts)


def check_sample_time(kind: str, layers: int, tokens: int, model: Model) -> None:
    """A sample estimated to take over :data:`MAX_SAMPLE_S` raises on ``--tokens``, naming the most it allows."""
    seconds = sample_seconds(kind, layers, tokens, model)
    if seconds <= MAX_SAMPLE_S:
        return
    most = int(tokens * MAX_SAMPLE_S / seconds)
    per = f"{model.top_k} selections" if kind in PER_SELECTION else f"{model.n_experts} experts"
    raise InputError(f"drawing {kind} routing for {layers} layers x {tokens:,} tokens x {per} would take about "
                     f"{seconds / 60:.0f} minutes, over the limit of {MAX_SAMPLE_S / 60:.0f} minutes; at most "
                     f"{most:,} tokens per layer (EP x --tokens) here", "--tokens")


def from_topk(topk_ids: np.ndarray, n_experts: int, rows_sorted: bool = False) -> RoutingStats:
    """Stats from top-k samples (loads counted from them)."""
    load = per_layer_counts(topk_ids, n_experts)
    return RoutingStats(n_experts, load.astype(np.float64), topk_ids, rows_sorted)


def sort_rows(ids: np.ndarray) -> np.ndarray:
    """Each token's ids in ascending order, shape kept (layers, tokens, top_k)."""
    out = np.empty_like(ids)
    for layer in range(ids.shape[0]):
        out[layer] = np.stack(sort_columns([ids[layer, :, j].copy() for j in range(ids.shape[2])]), axis=1)
    return out


# ----------------------------------------------------------------------------------------- sorting


def network(n: int) -> list[tuple[int, int]]:
    """Comparators (i, j), i < j, of Batcher's odd-even merge sort for ``n`` keys."""
    size = 1 << max(0, (n - 1).bit_length())
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return [(i, j) for i, j in pairs if j < n]


def sort_columns(cols: list[np.ndarray]) -> list[np.ndarray]:
    """Sort ``k`` equal-length arrays elementwise (row i of the result is row i sorted), in place.

    A sorting network of vectorised min/max, far faster than ``np.sort(axis=1)`` on narrow rows.

    >>> [c.tolist() for c in sort_columns([np.array([3, 1]), np.array([2, 2]), np.array([1, 3])])]
    [[1, 1], [2, 2], [3, 3]]
    """
    for i, j in network(len(cols)):
        lo = np.minimum(cols[i], cols[j])
        np.maximum(cols[i], cols[j], out=cols[j])
        cols[i] = lo
    return cols


# ----------------------------------------------------------------------------------------- synthetic


def parse_spec(spec: str) -> tuple[str, tuple[float, ...]]:
    """(kind, parameters) of a synthetic routing spec; anything else raises InputError.

    >>> parse_spec("lognormal:0.4,0.6")
    ('lognormal', (0.4, 0.6))
    """
    m = SPEC_RE.match(spec)
    if not m:
        raise InputError(f"unknown routing {spec!r} (uniform, auto, zipf:S with a number S >= 0, topics:K with an "
                         f"integer K >= 1, lognormal:G,E with numbers 0 <= G, E <= {POPULARITY_SIGMA_MAX}, or a "
                         f"file)", "--routing")
    if m["s"] is not None:
        s = float(m["s"])
        if not np.isfinite(s) or s < 0:
            raise InputError(f"zipf exponent must be a finite number >= 0, got {m['s']}", "--routing")
        return "zipf", (s,)
    if m["k"] is not None:
        if not 1 <= int(m["k"]) <= MAX_TOPICS:
            raise InputError(f"topics:K needs 1 <= K <= {MAX_TOPICS}, got {m['k']}", "--routing")
        return "topics", (float(m["k"]),)
    if m["g"] is not None:
        sigmas = tuple(number_or_nan(x) for x in (m["g"], m["e"]))
        if not all(0 <= x <= POPULARITY_SIGMA_MAX for x in sigmas):  # NaN fails too
            raise InputError(f"lognormal:G,E needs numbers 0 <= G, E <= {POPULARITY_SIGMA_MAX}, got "
                             f"{m['g']},{m['e']}", "--routing")
        return "lognormal", sigmas
    return m[1], ()


def number_or_nan(text: str) -> float:
    """``text`` as a float, NaN where it is not a number."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def resolve_auto(spec: str, model: Model) -> str:
    """``auto``: the model's measured popularity as ``lognormal:G,E`` (models/<id>.toml ``[routing]``), or
    ``uniform`` for a model without one; any other spec unchanged."""
    if spec != "auto":
        return spec
    if model.popularity_sigma is None:
        return "uniform"
    return "lognormal:{:.15g},{:.15g}".format(*model.popularity_sigma)


def groups_of(model: Model) -> tuple[int, int]:
    """(n_group, topk_group), (1, 1) when the model has no group-limited routing."""
    return (model.n_group, model.topk_group) if model.n_group > 1 else (1, 1)


#: Rounds of redrawing after which rows that still repeat a value are given up on: each round redraws about the
#: same share of the rows left, so a draw that needs this many has almost no room for k distinct values.
MAX_REDRAW_ROUNDS = 2000


def redraw_repeats(draw, n: int) -> np.ndarray:
    """``n`` rows of distinct values: ``draw(rows)`` (an (len(rows), k) array for the row indices ``rows``)
    again for every row holding a value twice, until none does; shape (n, k), rows sorted ascending."""
    out = draw(np.arange(n))
    k = out.shape[1]
    todo = np.arange(n)
    for _ in range(MAX_REDRAW_ROUNDS):
        rows = np.stack(sort_columns([out[todo, j].copy() for j in range(k)]), axis=1)
        out[todo] = rows
        bad = (rows[:, 1:] == rows[:, :-1]).any(axis=1) if k > 1 else np.zeros(len(todo), bool)
        todo = todo[bad]
        if not todo.size:
            return out
        out[todo] = draw(todo)
    raise InputError(f"drawing {k} distinct experts per token did not settle in {MAX_REDRAW_ROUNDS} rounds: the "
                     f"top-k is too close to the experts a token can reach, or the popularity too skewed",
                     "--routing")


def distinct_uniform(rng: np.random.Generator, n: int, high: int, k: int) -> np.ndarray:
    """``n`` rows of ``k`` distinct integers in [0, high), uniform, by rejection; shape (n, k), sorted rows."""
    return redraw_repeats(lambda rows: rng.integers(0, high, size=(rows.size, k), dtype=np.int32), n)


def uniform_topk(rng: np.random.Generator, tokens: int, n_experts: int, k: int, n_group: int,
                 topk_group: int) -> np.ndarray:
    """Top-k ids, uniform over experts within ``topk_group`` uniformly chosen groups; shape (tokens, k)."""
    size = n_experts // n_group
    chosen = distinct_uniform(rng, tokens, n_group, topk_group)  # (tokens, topk_group)
    pick = distinct_uniform(rng, tokens, topk_group * size, k)  # index into the chosen groups' experts
    group = np.take_along_axis(chosen, pick // size, axis=1)
    return (group * size + pick % size).astype(np.int32)


def gumbel_topk(rng: np.random.Generator, log_w: np.ndarray, k: int, n_group: int, topk_group: int) -> np.ndarray:
    """Top-k ids drawn without replacement with probabilities proportional to ``exp(log_w)``.

    Gumbel-top-k over experts; with groups, the ``topk_group`` groups of highest best-key are kept first
    (DeepSeek-style node/group-limited routing). ``log_w`` shape (tokens, experts); result (tokens, k).
    """
    keys = log_w + rng.gumbel(size=log_w.shape)
    if n_group > 1:
        t, e = keys.shape
        best = keys.reshape(t, n_group, e // n_group).max(axis=2)
        drop = np.argpartition(-best, topk_group - 1, axis=1)[:, topk_group:]
        grouped = keys.reshape(t, n_group, e // n_group)
        np.put_along_axis(grouped, drop[:, :, None], -np.inf, axis=1)
        keys = grouped.reshape(t, e)
    ids = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    return np.sort(ids, axis=1).astype(np.int32)


def layer_log_weights(kind: str, param: float, rng: np.random.Generator, n_experts: int) -> np.ndarray:
    """Per-layer popularity: (1, E) for zipf (a random permutation of 1/rank^S), (K, E) for topics."""
    if kind == "zipf":
        rank = rng.permutation(n_experts) + 1.0
        return (-param * np.log(rank))[None, :]
    topics = int(param)
    owner = rng.permutation(n_experts) % topics  # each topic owns an equal share of the experts
    return np.where(owner[None, :] == np.arange(topics)[:, None], np.log(TOPIC_WEIGHT), 0.0)


def quantile_normals(n: int) -> np.ndarray:
    """The standard normal's quantiles at (i + 0.5) / n, ascending: n normals drawn evenly, shape (n,)."""
    return np.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])


def lognormal_popularity(layer: int, n_experts: int, n_group: int, group_sigma: float, expert_sigma: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Group weights, shape (n_group,), and expert weights, shape (n_experts,), of one MoE layer.

    A group weighs exp(group_sigma z), z one of n_group evenly drawn normals (:func:`quantile_normals`); an
    expert weighs its group's weight times exp(expert_sigma z'), z' one of its group's evenly drawn normals.
    Which group and expert gets which is drawn from (:data:`POPULARITY_SEED`, ``layer``).
    """
    rng = np.random.default_rng((POPULARITY_SEED, layer))
    size = n_experts // n_group
    group_w = np.exp(group_sigma * quantile_normals(n_group))[rng.permutation(n_group)]
    within = np.exp(expert_sigma * quantile_normals(size))[np.argsort(rng.random((n_group, size)), axis=1)]
    return group_w, (group_w[:, None] * within).ravel()


def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table of ``weights`` (n,): draw column j uniformly, keep it with probability
    ``keep[j]``, else take ``alias[j]``; each value then comes out in proportion to its weight."""
    n = weights.size
    scaled = weights * n / weights.sum()
    keep, alias = np.ones(n), np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large[-1]
        keep[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        if scaled[g] < 1.0:
            small.append(large.pop())
    return keep, alias


def alias_draw(rng: np.random.Generator, keep: np.ndarray, alias: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Draws of shape ``shape`` from an :func:`alias_table`."""
    column = rng.integers(0, keep.size, size=shape)
    return np.where(rng.random(shape) < keep[column], column, alias[column])


#: Most sets of routing groups enumerated for a draw (DeepSeek-V3's 4 of 8 groups: 70); past it the sets a
#: draw meets are found by drawing groups one by one.
GROUP_SETS_MAX = 20_000


def token_group_sets(rng: np.random.Generator, tokens: int, group_w: np.ndarray, topk_group: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Each token's ``topk_group`` distinct groups, drawn as weighted draws redrawn while they repeat a group:
    (sets, shape (n_sets, topk_group) rows sorted; token_set, shape (tokens,), each token's row of sets).

    A set's probability is the product of its groups' weights, normalised, so with few sets every set is
    enumerated and a token's set is one alias lookup."""
    if comb(group_w.size, topk_group) > GROUP_SETS_MAX:
        keep, alias = alias_table(group_w)
        groups = redraw_repeats(lambda rows: alias_draw(rng, keep, alias, (rows.size, topk_group)), tokens)
        sets, token_set = np.unique(groups, axis=0, return_inverse=True)
        return sets, token_set.ravel()
    sets = np.array(list(combinations(range(group_w.size), topk_group)), dtype=np.int64)
    weight = np.prod(group_w[sets], axis=1)
    return sets, alias_draw(rng, *alias_table(weight / weight.sum()), (tokens,))


def weighted_topk(rng: np.random.Generator, tokens: int, group_w: np.ndarray, expert_w: np.ndarray, k: int,
                  topk_group: int) -> np.ndarray:
    """Top-k ids: ``topk_group`` distinct groups drawn in proportion to ``group_w``, then ``k`` distinct experts
    of those groups in proportion to ``expert_w`` (each a weighted draw redrawn while it repeats a value);
    shape (tokens, k), rows sorted."""
    n_group = group_w.size
    size = expert_w.size // n_group
    sets, token_set = token_group_sets(rng, tokens, group_w, topk_group)
    within = expert_w.reshape(n_group, size)
    ends = np.cumsum(within.sum(axis=1)[sets], axis=1)  # each set's groups' weights laid end to end
    tables = [alias_table(w) for w in within]
    keep = np.concatenate([t[0] for t in tables])
    alias = np.concatenate([t[1] + g * size for g, t in enumerate(tables)])

    def experts(rows: np.ndarray) -> np.ndarray:
        chosen = token_set[rows, None]  # (m, 1)
        t = rng.random((rows.size, k)) * ends[chosen, -1]
        slot = np.minimum((t[:, :, None] >= ends[chosen]).sum(axis=2), topk_group - 1)
        column = sets[chosen, slot] * size + rng.integers(0, size, size=(rows.size, k))
        return np.where(rng.random((rows.size, k)) < keep[column], column, alias[column]).astype(np.int32)

    return redraw_repeats(experts, tokens)


def synthetic_routing(model: Model, spec: str, tokens: int, seed: int = 0, layers: int | None = None,
                      chunk_tokens: int = 16384) -> RoutingStats:
    """Seeded synthetic top-k samples.

    Parameters
    ----------
    model : Model
        Supplies experts, top-k and group-limited routing (n_group, topk_group).
    spec : str
        ``uniform``; ``zipf:S`` (expert popularity proportional to 1/rank^S, a fresh random ranking per
        layer); ``topics:K`` (each token belongs to one of K topics; a topic's experts are
        :data:`TOPIC_WEIGHT` times likelier, so co-activation has structure while loads stay even);
        ``lognormal:G,E`` (popular groups and experts, :func:`lognormal_popularity`, the same for every
        seed); ``auto`` (:func:`resolve_auto`).
    tokens : int
        Tokens sampled per layer.
    layers : int, optional
        Default ``model.moe_layers``.

    Examples
    --------
    >>> from wideep.specs.model import load_model
    >>> s = synthetic_routing(load_model("mixtral-8x7b"), "uniform", 4, seed=1, layers=2)
    >>> s.topk_ids.shape, float(s.load.sum())
    ((2, 4, 2), 16.0)
    """
    spec = resolve_auto(spec, model)
    kind, params = parse_spec(spec)
    if not model.is_moe:
        raise InputError(f"{model.id} has no routed experts", "--model")
    if tokens <= 0:
        raise InputError(f"must be > 0, got {tokens}", "--tokens")
    check_sample_size(tokens)
    n_layers = model.moe_layers if layers is None else layers
    if n_layers <= 0:
        raise InputError(f"must be > 0, got {n_layers}", "layers")
    check_sample_time(kind, n_layers, tokens, model)
    rng = np.random.default_rng(check_seed(seed))
    n_group, topk_group = groups_of(model)
    if kind == "lognormal" and params[0] > 0 and n_group == 1:
        raise InputError(f"lognormal:G,E needs G = 0 for {model.id}: it has no routing groups", "--routing")
    ids = np.empty((n_layers, tokens, model.top_k), dtype=np.int32)
    for layer in range(n_layers):
        if kind == "uniform":
            ids[layer] = uniform_topk(rng, tokens, model.n_experts, model.top_k, n_group, topk_group)
        elif kind == "lognormal":
            group_w, expert_w = lognormal_popularity(layer, model.n_experts, n_group, *params)
            ids[layer] = weighted_topk(rng, tokens, group_w, expert_w, model.top_k, topk_group)
        else:
            log_w = layer_log_weights(kind, params[0], rng, model.n_experts)
            for start in range(0, tokens, chunk_tokens):
                n = min(chunk_tokens, tokens - start)
                rows = log_w[rng.integers(0, log_w.shape[0], size=n)]
                ids[layer, start:start + n] = gumbel_topk(rng, rows, model.top_k, n_group, topk_group)
        progress.advance(f"routing {spec}, {tokens:,} tokens", layer + 1, n_layers)
    return from_topk(ids, model.n_experts, rows_sorted=True)


def sample_tokens(stats: RoutingStats, tokens: int, seed: int = 0) -> np.ndarray:
    """Exactly ``tokens`` top-k rows per layer: the first ones, or resampled (seeded) when too few.

    Returns ndarray, shape (layers, tokens, top_k). A resample of more than :data:`MAX_SAMPLE_TOKENS`
    tokens raises on ``--tokens``.
    """
    if stats.topk_ids is None:
        raise InputError("these routing statistics hold loads only, no per-token samples", "--routing")
    check_seed(seed)
    have = stats.topk_ids.shape[1]
    if have >= tokens:
        return stats.topk_ids[:, :tokens]
    check_sample_size(tokens)
    pick = np.random.default_rng(seed).integers(0, have, size=tokens)
    return stats.topk_ids[:, pick]


def checked_array(arr: object, field: str, dims: tuple[str, ...], kind: type | tuple[type, ...], kind_word: str,
                  source: str) -> np.ndarray:
    """``arr`` as an ndarray of ``len(dims)`` dimensions and a dtype of ``kind`` (or one of several), else
    InputError naming ``field``."""
    arr = np.asarray(arr)
    if arr.ndim != len(dims):
        raise InputError(f"{field} must have shape ({', '.join(dims)}), got {arr.shape}", source, field)
    if not any(np.issubdtype(arr.dtype, k) for k in (kind if isinstance(kind, tuple) else (kind,))):
        raise InputError(f"{field} must be {kind_word}, got {arr.dtype}", source, field)
    return arr


def check_loads(load: np.ndarray, model: Model, source: str) -> np.ndarray:
    """Validate a (layers, experts) load matrix against ``model``; returns it as float64."""
    load = checked_array(load, "load", ("layers", "experts"), (np.integer, np.floating), "real numbers",
                         source).astype(np.float64)
    if load.shape[1] != model.n_experts:
        raise InputError(f"{load.shape[1]} experts per layer, {model.id} has {model.n_experts}", source, "load")
    if not np.isfinite(load).all():
        raise InputError("non-finite counts", source, "load")
    if (load < 0).any():
        layer, expert = np.argwhere(load < 0)[0]
        raise InputError(f"negative count at layer {layer}, expert {expert}", source, "load")
    with np.errstate(over="ignore"):
        totals = load.sum(axis=1)
    if not np.isfinite(totals).all():
        layer = int(np.flatnonzero(~np.isfinite(totals))[0])
        raise InputError(f"the counts of layer {layer} sum past the largest float (1.8e308); scale them down",
                         source, "load")
    load = keep_moe_layers(load, model, source, "load", totals > 0)
    empty = np.flatnonzero(load.sum(axis=1) == 0)
    if empty.size:
        raise InputError(f"MoE layer {empty[0]} has no selections (its loads sum to 0)", source, "load")
    return load


def check_topk(ids: np.ndarray, model: Model, source: str) -> np.ndarray:
    """Validated (layers, tokens, top_k) expert ids, each token's row sorted ascending.

    Tokens padded with -1 in every layer are dropped; a token selecting one expert twice is an error.
    """
    ids = checked_array(ids, "topk_ids", ("layers", "tokens", "top_k"), np.integer, "integers", source)
    if ids.shape[2] != model.top_k:
        raise InputError(f"top_k is {ids.shape[2]}, {model.id} selects {model.top_k}", source, "topk_ids")
    pad = (ids == -1).all(axis=(0, 2))
    ids = ids[:, ~pad]
    if ids.shape[1] == 0:
        raise InputError("no tokens", source, "topk_ids")
    bad = (ids < 0) | (ids >= model.n_experts)
    if bad.any():
        layer, token, k = np.argwhere(bad)[0]
        raise InputError(f"expert id {ids[layer, token, k]} out of range 0..{model.n_experts - 1} "
                         f"(layer {layer}, token {token})", source, "topk_ids")
    active = ~(ids == ids[:, :1, :1]).all(axis=(1, 2)) if ids.shape[1] * ids.shape[2] > 1 else None
    ids = keep_moe_layers(ids, model, source, "topk_ids", active)
    ids = sort_rows(ids.astype(np.int32 if model.n_experts < 2**31 else np.int64))
    if ids.shape[2] > 1:
        twice = np.argwhere(ids[:, :, 1:] == ids[:, :, :-1])
        if len(twice):
            layer, token, k = twice[0]
            raise InputError(f"token {token} of MoE layer {layer} selects expert {ids[layer, token, k]} twice",
                             source, "topk_ids")
    return ids


def keep_moe_layers(arr: np.ndarray, model: Model, source: str, field: str, active: np.ndarray | None) -> np.ndarray:
    """Layers of ``arr`` that are MoE layers: all of them, or the active ones of a full-depth dump."""
    n = arr.shape[0]
    if n == model.moe_layers:
        return arr
    if n == model.layers and active is not None and int(active.sum()) == model.moe_layers:
        return arr[active]
    raise InputError(f"{n} layers; {model.id} has {model.moe_layers} MoE layers "
                     f"({model.layers} in all, dense ones with no selection)", source, field)


def stats_from_arrays(topk_ids: np.ndarray | None, load: np.ndarray | None, model: Model, source: str) -> RoutingStats:
    """Validated :class:`RoutingStats` from raw arrays (either may be None, not both)."""
    if topk_ids is not None:
        return from_topk(check_topk(topk_ids, model, source), model.n_experts, rows_sorted=True)
    if load is None:
        raise InputError("neither topk_ids nor load found", source)
    return RoutingStats(model.n_experts, check_loads(load, model, source), None)
