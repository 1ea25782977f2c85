"""The memory budget: may one more version load next to what is already held? (pure)

Each version's footprint is estimated before it loads (``memory.estimate_footprint``); the
manager keeps the sum of what it holds. A version is refused when it would take its model,
or the whole process, past a configured budget, so the version already serving keeps
serving instead of the process being killed for running out of memory.
"""

from __future__ import annotations


def refusal(
    label: str,
    need: int,
    held_by_model: int,
    held_in_total: int,
    model_budget: int | None,
    process_budget: int | None,
) -> str | None:
    """Why loading ``label`` (estimated at ``need`` bytes) must be refused; None if it fits."""
    checks = (
        ("the model's", model_budget, held_by_model),
        ("the process's", process_budget, held_in_total),
    )
    for whose, budget, held in checks:
        if budget is not None and held + need > budget:
            return (
                f"{label} needs an estimated {_mib(need)} and {_mib(held)} is already held; "
                f"{whose} memory budget is {_mib(budget)}"
            )
    return None


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"
