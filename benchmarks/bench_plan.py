"""Wall time of `wideep plan` use cases (prints numbers; nothing is asserted).

    python benchmarks/bench_plan.py

Cold = first call in the process (routing sample, placement and traffic probes computed);
warm = the same EP group again (cached), as a batch sweep sees it.
"""

from __future__ import annotations

import time
from dataclasses import replace

from wideep import plan as plan_mod
from wideep.plan import PlanSpec, compare_topologies, ep_group, plan
from wideep.traffic import a2a, linkload
from wideep.plan.sweep import batch_for_interactivity, curve, lead_by_interactivity


def timed(label: str, fn) -> None:
    start = time.perf_counter()
    fn()
    print(f"{label:<58s} {time.perf_counter() - start:7.3f} s")


def clear() -> None:
    plan_mod.expert_parallel.cache_clear()
    plan_mod.cluster_for.cache_clear()
    ep_group.clear_caches()  # placements and what the routing samples measure on them
    a2a._COUNTS.clear()  # traffic counts and routes shared by EP groups alike: cold means counted again
    linkload._SHARED.clear()


def main() -> None:
    spec = PlanSpec()
    clear()
    timed("plan deepseek-v3 hgx-h100 EP32 (cold)", lambda: plan(spec))
    timed("plan deepseek-v3 hgx-h100 EP32 (warm)", lambda: plan(replace(spec, batch=128)))
    clear()
    timed("default comparison: hgx-h100 vs gb200-nvl72 (cold)", lambda: compare_topologies(spec))
    clear()
    timed("plan deepseek-v3 dgx-h800 EP144, context 4989, MTP (cold)",
          lambda: plan(PlanSpec(topology="dgx-h800", ep=144, context=4989, mtp=1)))
    timed("batch for 21 tok/s/user on that EP144 group (warm)",
          lambda: batch_for_interactivity(PlanSpec(topology="dgx-h800", ep=144, context=4989, mtp=1), 21))
    clear()
    timed("interactivity sweep h100/h200/gb200 x 15 batches (cold)", lambda: lead_by_interactivity(
        {t: curve(PlanSpec(topology=t)) for t in ("hgx-h100", "hgx-h200", "gb200-nvl72")}))


if __name__ == "__main__":
    main()
