"""Upper bounds on the sizes a person may ask for, each with its reason, and the check that names them.

They keep every command finishing in seconds with memory to spare, and every figure inside float range;
none is a hardware or published limit. Limits on work that depends on several options at once (routing
samples, placements) live beside that work (:mod:`wideep.routing.stats`, :mod:`wideep.plan.budget`).
"""

from __future__ import annotations

from wideep.core.errors import InputError

#: Draft tokens per step (``--mtp``). DeepSeek-V3 ships one MTP module and speculative decoders draft a
#: few tokens; each draft adds a full model pass here while acceptance^k makes the later ones worthless.
MAX_MTP = 8
#: Decode sequences per GPU (``--batch``): far past what any GPU's HBM holds KV cache for.
MAX_BATCH = 1 << 20
#: Tokens of one sequence (``--context``, ``--isl``, ``--osl``): 16.8M, past today's longest windows (10M).
MAX_SEQUENCE_TOKENS = 1 << 24
#: Prompt tokens per GPU per prefill step (``--prefill-tokens``): engines chunk prefill far below this.
MAX_PREFILL_TOKENS = 1 << 24
#: GPUs of one attention tensor-parallel group (``--tp``): the largest NVLink domain in the catalog (NVL72).
MAX_TP = 72


#: option -> (lowest, highest, what it counts): the ranges :func:`check_option` holds every entry point to.
BOUNDS: dict[str, tuple[int, int, str]] = {
    "--mtp": (0, MAX_MTP, "draft tokens per step; each is one more pass of the model"),
    "--batch": (1, MAX_BATCH, "sequences per GPU, or per attention group with --tp"),
    "--context": (1, MAX_SEQUENCE_TOKENS, "tokens per sequence"),
    "--isl": (1, MAX_SEQUENCE_TOKENS, "prompt tokens per request"),
    "--osl": (1, MAX_SEQUENCE_TOKENS, "output tokens per request"),
    "--prefill-tokens": (1, MAX_PREFILL_TOKENS, "prompt tokens per GPU, or per attention group with --tp, per step"),
    "--tp": (1, MAX_TP, "GPUs of one attention tensor-parallel group"),
}


def check_option(option: str, value: int) -> None:
    """``value`` of ``option`` within :data:`BOUNDS`, else :class:`InputError` naming the range and why.

    >>> check_option("--batch", 0)
    Traceback (most recent call last):
    wideep.core.errors.InputError: --batch: must be between 1 and 1,048,576 (sequences per GPU, or per attention group with --tp), got 0
    """
    low, high, why = BOUNDS[option]
    check_range(value, low, high, option, why)


def check_range(value: int | float, low: int | float, high: int | float, option: str, why: str = "") -> None:
    """``low <= value <= high``, else :class:`InputError` on ``option`` naming both bounds (and ``why``).

    >>> check_range(9, 0, 8, "--mtp", "draft tokens per step")
    Traceback (most recent call last):
    wideep.core.errors.InputError: --mtp: must be between 0 and 8 (draft tokens per step), got 9
    """
    if not low <= value <= high:
        reason = f" ({why})" if why else ""
        raise InputError(f"must be between {low:,} and {high:,}{reason}, got {shown(value)}", option)


def check_fraction(option: str, value: float, below_one: bool = False) -> None:
    """``value`` of ``option`` in [0, 1] (``below_one``: in [0, 1)), else :class:`InputError`; NaN is refused.

    >>> check_fraction("--cache-hit", 1.0, below_one=True)
    Traceback (most recent call last):
    wideep.core.errors.InputError: --cache-hit: must be in [0, 1), got 1.0
    """
    if not (0 <= value < 1 if below_one else 0 <= value <= 1):
        raise InputError(f"must be in [0, 1{')' if below_one else ']'}, got {value}", option)


def shown(value: int | float) -> str:
    """A number as a message shows it: digits grouped, a huge integer cut short.

    >>> shown(10**40)
    '10,000,000,000,000,...(41 digits)'
    """
    text = f"{value:,}"
    if len(text) <= 30:
        return text
    return f"{text[:20]}...({len(str(abs(int(value))))} digits)"
