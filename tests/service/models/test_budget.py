"""The memory budget as a table: (need, held, budgets) → refused or not, and why."""

from __future__ import annotations

import pytest

from service.models.budget import refusal

MIB = 2**20
CASES = [
    # (need, held by the model, held in total, model budget, process budget, refused by)
    (100 * MIB, 0, 0, None, None, None),
    (100 * MIB, 100 * MIB, 100 * MIB, None, 150 * MIB, "the process's"),
    (100 * MIB, 100 * MIB, 100 * MIB, 150 * MIB, None, "the model's"),
    (100 * MIB, 0, 100 * MIB, 150 * MIB, 250 * MIB, None),
    (100 * MIB, 0, 200 * MIB, 150 * MIB, 250 * MIB, "the process's"),
    (100 * MIB, 50 * MIB, 50 * MIB, 150 * MIB, 150 * MIB, None),  # exactly at the budget
]


@pytest.mark.parametrize(("need", "by_model", "total", "model", "process", "refused_by"), CASES)
def test_refusal(need, by_model, total, model, process, refused_by) -> None:
    why = refusal("m:2", need, by_model, total, model, process)
    if refused_by is None:
        assert why is None
    else:
        assert why is not None
        assert f"{refused_by} memory budget" in why
        assert why.startswith("m:2 needs an estimated 100 MiB")
