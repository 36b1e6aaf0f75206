"""The inputs of one plan (:class:`PlanSpec`): light to import, so the command line shows its defaults fast."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING

from wideep.core.errors import InputError
from wideep.core.limits import check_fraction, check_option

if TYPE_CHECKING:
    from wideep.perf.memory import Precision
    from wideep.perf.workload import Workload

#: PlanSpec fields that count (GPUs, sequences, tokens) and those that are any real number.
WHOLE = ("ep", "tp", "gpus", "batch", "context", "mtp", "redundant", "prefill_tokens", "isl", "osl", "seed")
REAL = ("acceptance", "cache_hit", "price_per_gpu_hour")
OPTIONAL = ("ep", "gpus", "context", "redundant", "price_per_gpu_hour")  # None: the default a plan derives
DEFAULT_EP = 32  # EP group of an MoE model when none is given: four HGX nodes, or 32 GPUs of an NVL72 rack


@dataclass(frozen=True)
class PlanSpec:
    """Every input of a plan (options of ``wideep plan``); ``gpus`` defaults to ``ep``.

    ``ep`` None is :data:`DEFAULT_EP` for an MoE model and 1 for a dense one, which has no experts to
    spread: an EP size above 1 for a dense model is an error (:func:`wideep.plan.deployment.resolve_spec`).

    ``tp`` above ``ep`` is MoE tensor parallelism, as the engines' ``--tp 8 --ep 2`` (TensorRT-LLM's
    ``moe_expert_parallel_size``, SGLang's ``--ep-size``): the MoE group is the attention group, each of the
    ``ep`` expert ranks holds its experts split ``tp / ep`` ways (:attr:`moe_tp`).

    ``redundant`` None picks the fewest extra slots (> 0) that make the slots divide over ``ep``
    (32 for 256 experts at EP32, EP72 and EP144, as DeepSeek deploys); none under MoE tensor parallelism.
    """

    model: str = "deepseek-v3"
    topology: str = "hgx-h100"
    ep: int | None = None
    tp: int = 1  # attention tensor parallelism: GPUs per attention group (1: data-parallel attention)
    gpus: int | None = None
    batch: int = 64
    context: int | None = None  # decode: mean cached tokens; None: isl + osl / 2
    dtype: str = "fp8"
    attn_dtype: str | None = None
    kv_dtype: str = "bf16"
    dispatch_dtype: str = "fp8"  # DeepSeek: FP8 dispatch, BF16 combine (docs/sources.md section 3)
    combine_dtype: str = "bf16"
    overlap: str = "auto"
    mtp: int = 0
    acceptance: float = 0.85
    redundant: int | None = None
    routing: str = "auto"
    placement: str = "balanced"
    replica_rule: str = "sglang"  # SGLang's static dispatch (wideep.slots.REPLICA_RULES, DEFAULT_REPLICA_RULE)
    transport: str | None = None
    prefill_tokens: int = 8192
    cache_hit: float = 0.0
    isl: int = 1024
    osl: int = 1024
    price_per_gpu_hour: float | None = None
    price_scenario: str | None = None
    calibration: str | None = None
    seed: int = 0
    # aggregated serving: the engine holds prompts back until every attention group has one (TensorRT-LLM's
    # attention_dp_config.enable_balance), so every group's prompts count at the mean (wideep.plan.aggregated)
    balanced_prompts: bool = False

    def __post_init__(self) -> None:
        """Wrong types, and sizes and fractions out of range, raise at once, before any model or module behind a
        plan loads."""
        for name in WHOLE + REAL:
            value, kind = getattr(self, name), Integral if name in WHOLE else Real
            if value is None and name in OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, kind):
                what = "a whole number" if kind is Integral else "a number"
                raise InputError(f"must be {what}, got {value!r}", "--" + name.replace("_", "-"))
            object.__setattr__(self, name, int(value) if kind is Integral else float(value))  # numpy -> Python
        for option, value in (("--mtp", self.mtp), ("--batch", self.batch), ("--context", self.context), ("--tp", self.tp),
                              ("--prefill-tokens", self.prefill_tokens), ("--isl", self.isl), ("--osl", self.osl)):
            if value is not None:  # --context None: taken from --isl and --osl
                check_option(option, value)
        check_fraction("--cache-hit", self.cache_hit, below_one=True)
        check_fraction("--acceptance", self.acceptance)
        numpy_bool = type(self.balanced_prompts).__module__ == "numpy" and "bool" in type(self.balanced_prompts).__name__
        if not (isinstance(self.balanced_prompts, bool) or numpy_bool):
            raise InputError(f"must be true or false, got {self.balanced_prompts!r}", "--balanced-prompts")
        object.__setattr__(self, "balanced_prompts", bool(self.balanced_prompts))

    @property
    def decode_context(self) -> int:
        """Mean cached tokens per sequence in decode: ``context``, else the prompt plus half the output."""
        return self.context if self.context is not None else self.isl + self.osl // 2

    @property
    def moe_tp(self) -> int:
        """GPUs each expert of an MoE model is split over: ``tp / ep`` when the attention group is wider than
        the EP group, else 1 (a dense model's plan reports 1: :attr:`wideep.plan.deployment.Plan.moe_tp`)."""
        return self.tp // self.ep if self.ep and self.ep < self.tp else 1

    @property
    def balances_prompts(self) -> bool:
        """Whether aggregated serving counts every attention group's prompts at the mean: ``balanced_prompts``
        asked for, on the layout the engines balance (one GPU per attention group, tokens dispatched)."""
        return self.balanced_prompts and self.tp == 1 and self.dispatches

    @property
    def dispatches(self) -> bool:
        """Whether an MoE layer sends an all-to-all: the EP group holds several attention groups. With the
        attention group spanning the EP group every rank holds every token after the all-reduce (no dispatch)."""
        return bool(self.ep) and self.tp < self.ep

    @property
    def precision(self) -> Precision:
        from wideep.perf.memory import Precision  # the model layers load only when a plan runs

        return Precision(self.dtype, self.attn_dtype, self.kv_dtype)

    def workload(self, phase: str) -> Workload:
        from wideep.perf.workload import Workload

        if phase == "decode":
            return Workload("decode", self.batch, self.decode_context, self.prefill_tokens, 0.0, self.mtp,
                            self.acceptance, self.overlap, self.precision, self.tp, self.moe_tp)
        return Workload("prefill", 1, self.isl, self.prefill_tokens, self.cache_hit, 0, self.acceptance,
                        self.overlap, self.precision, self.tp, self.moe_tp)
