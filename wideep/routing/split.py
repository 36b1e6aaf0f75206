"""Routing statistics split in two: one part to place experts from, a held-out part to judge them on.

A placement made from some statistics and measured on the same ones flatters itself (it is fitted to their
noise); measured on statistics it never saw, it shows what an engine would get on the next traffic.
:func:`held_out_split` splits:

- a synthetic spec (``uniform``, ``zipf:S``, ``topics:K``): one sample of twice the tokens, placed on the
  first half, judged on the second (a second seed would draw another expert ranking or other topics: a
  different routing, not held-out tokens of the same one);
- one file with token samples: placed on the first half of its tokens, judged on the second half (token
  blocks, in recorded order);
- several files (e.g. one per benchmark): placed on the first half of the files (the first ``ceil(n / 2)``,
  merged), judged on the rest (merged);
- one loads-only file: no held-out split is possible (loads keep no tokens to split).

Merging: token samples are concatenated when every file has them; otherwise the per-expert loads are
summed (the counts an engine's recorder would hold over the same traffic) and the tokens dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wideep.core.errors import InputError
from wideep.routing.files import load_routing, looks_like_file, routing_from_spec
from wideep.routing.stats import RoutingStats, from_topk
from wideep.specs.model import Model


@dataclass(frozen=True)
class HeldOutSplit:
    """Statistics to place from, held-out statistics to judge on (None when no split is possible), and how.

    ``how`` is one line for people (what was placed on and what judged on, or why nothing is held out);
    ``whole`` is everything a placement for deployment should be made from (both parts merged; for a
    synthetic spec the placing part: a deployment run places on a sample of the step's size).
    """

    place: RoutingStats
    judge: RoutingStats | None
    how: str
    whole: RoutingStats | None = None

    @property
    def all(self) -> RoutingStats:
        return self.place if self.whole is None else self.whole


def merge(stats: list[RoutingStats]) -> RoutingStats:
    """One :class:`RoutingStats` from several of the same model and layers (module docstring: merging)."""
    if len(stats) == 1:
        return stats[0]
    if len({s.layers for s in stats}) != 1:
        raise InputError("statistics files disagree on the number of MoE layers", "--stats")
    if all(s.topk_ids is not None for s in stats):
        ids = np.concatenate([s.topk_ids for s in stats], axis=1)
        return from_topk(ids, stats[0].n_experts, rows_sorted=all(s.rows_sorted for s in stats))
    return RoutingStats(stats[0].n_experts, np.sum([s.load for s in stats], axis=0), None)


def token_halves(stats: RoutingStats) -> tuple[RoutingStats, RoutingStats]:
    """The first and the second half of the token samples (the first half one token shorter when odd).

    >>> a, b = token_halves(from_topk(np.array([[[0], [1], [1], [0]]]), 2))
    >>> a.load.tolist(), b.load.tolist()
    ([[1.0, 1.0]], [[1.0, 1.0]])
    """
    if stats.topk_ids is None or stats.topk_ids.shape[1] < 2:
        raise InputError("needs token samples with at least two tokens to split", "--stats")
    half = stats.topk_ids.shape[1] // 2
    return token_slice(stats, 0, half), token_slice(stats, half, None)


def token_slice(stats: RoutingStats, start: int, stop: int | None) -> RoutingStats:
    """Tokens ``start`` .. ``stop`` - 1 (to the end when None) of token samples, loads recounted."""
    return from_topk(stats.topk_ids[:, start:stop], stats.n_experts, stats.rows_sorted)


def load_all(paths: list[str], model: Model) -> RoutingStats:
    """Every statistics file of ``paths`` read and merged."""
    return merge([load_routing(p, model) for p in paths])


def held_out_split(paths: list[str] | None, spec: str | None, model: Model, tokens: int, seed: int = 0) -> HeldOutSplit:
    """Place-from and judge-on statistics from files or a synthetic spec (module docstring).

    Parameters
    ----------
    paths : list of str, optional
        Statistics files (``--stats``, in the order given); exclusive with ``spec``.
    spec : str, optional
        Synthetic routing spec; ``tokens`` tokens per layer in each of the two samples.
    """
    if spec is not None and looks_like_file(spec):
        paths, spec = [spec], None
    if spec is not None:
        first, second = token_halves(routing_from_spec(spec, model, 2 * tokens, seed))
        return HeldOutSplit(first, second, f"placed on tokens 0-{tokens - 1:,} of a {spec} sample (seed {seed}), "
                                           f"judged on tokens {tokens:,}-{2 * tokens - 1:,}")
    if not paths:
        raise InputError("give --stats FILE (one or more) or --routing SPEC", "--stats")
    names = [Path(p).name for p in paths]
    if len(paths) > 1:
        cut = (len(paths) + 1) // 2
        first, second = load_all(paths[:cut], model), load_all(paths[cut:], model)
        return HeldOutSplit(first, second, f"placed on {', '.join(names[:cut])}; judged on "
                                           f"{', '.join(names[cut:])}", merge([first, second]))
    stats = load_routing(paths[0], model)
    if stats.topk_ids is None or stats.topk_ids.shape[1] < 2:
        return HeldOutSplit(stats, None, f"no held-out split is possible: {names[0]} holds loads only (no "
                                         f"tokens to split); give several --stats files, one per benchmark, "
                                         f"to place on the first half and judge on the rest")
    first, second = token_halves(stats)
    half = first.topk_ids.shape[1]
    return HeldOutSplit(first, second, f"placed on tokens 0-{half - 1:,} of {names[0]}, judged on tokens "
                                       f"{half:,}-{stats.topk_ids.shape[1] - 1:,}", stats)
