"""The version policy as a table: (versions on disk, what is known, policy) → actions."""

from __future__ import annotations

import pytest

from service.config import ModelSettings
from service.models.policy import Actions, Known, plan
from service.views import VersionState

AVAILABLE, LOADING, FAILED, UNLOADING = (
    VersionState.AVAILABLE,
    VersionState.LOADING,
    VersionState.FAILED,
    VersionState.UNLOADING,
)
LATEST = ModelSettings()
LATEST_2 = ModelSettings(latest=2)
ALL = ModelSettings(version_policy="all")
ONLY_2 = ModelSettings(version_policy="specific", versions=[2])
RESOURCE = ModelSettings(swap_policy="resource")
RESOURCE_ALL = ModelSettings(version_policy="all", swap_policy="resource")
CHANGED = True


def known(**states: VersionState | tuple[VersionState, bool]) -> dict[int, Known]:
    """``known(v1=AVAILABLE, v2=(FAILED, CHANGED))``: version → state (and files changed)."""
    table = {}
    for key, value in states.items():
        state, changed = value if isinstance(value, tuple) else (value, False)
        table[int(key[1:])] = Known(state, files_changed=changed)
    return table


def actions(load: set[int] = frozenset(), retire=frozenset(), forget=frozenset()) -> Actions:
    return Actions(frozenset(load), frozenset(retire), frozenset(forget))


CASES = [
    # (on disk, known, policy, expected, why)
    ({1, 2}, {}, LATEST, actions(load={2}), "first scan loads the latest only"),
    ({1}, known(v1=AVAILABLE), LATEST, actions(), "a steady state does nothing"),
    ({1, 2}, known(v1=AVAILABLE), LATEST, actions(load={2}), "a new version is loaded"),
    ({1, 2}, known(v1=AVAILABLE, v2=LOADING), LATEST, actions(), "the old one serves meanwhile"),
    ({1, 2}, known(v1=AVAILABLE, v2=AVAILABLE), LATEST, actions(retire={1}), "then it retires"),
    ({1, 2}, known(v1=AVAILABLE, v2=FAILED), LATEST, actions(), "a failed load never replaces"),
    (
        {1, 2},
        known(v1=AVAILABLE, v2=(FAILED, CHANGED)),
        LATEST,
        actions(load={2}),
        "a failed version whose files changed is retried",
    ),
    ({2}, known(v1=AVAILABLE, v2=LOADING), LATEST, actions(retire={1}), "a gone folder retires"),
    (
        {1},
        known(v1=AVAILABLE, v3=FAILED),
        LATEST,
        actions(forget={3}),
        "a gone failure is forgotten",
    ),
    ({1, 2, 3}, {}, ALL, actions(load={1, 2, 3}), "'all' loads every version"),
    ({1, 2, 3}, {}, LATEST_2, actions(load={2, 3}), "'latest 2' loads two"),
    (
        {1, 2, 3},
        known(v1=AVAILABLE, v2=AVAILABLE, v3=AVAILABLE),
        LATEST_2,
        actions(retire={1}),
        "'latest 2' retires the third once both are up",
    ),
    ({1, 2, 3}, known(v1=AVAILABLE), ONLY_2, actions(load={2}), "'specific' loads what it names"),
    (
        {1, 2},
        known(v1=AVAILABLE, v2=AVAILABLE),
        ONLY_2,
        actions(retire={1}),
        "'specific' retires the rest once its versions are up",
    ),
    (
        {1, 3},
        known(v1=AVAILABLE, v3=(FAILED, CHANGED)),
        ONLY_2,
        actions(forget={3}),
        "a changed failure the policy does not want is dropped, not retried",
    ),
    (
        {1, 2, 3},
        known(v1=AVAILABLE, v2=FAILED),
        LATEST,
        actions(load={3}),
        "a failed version is skipped: the next one loads, the old one keeps serving",
    ),
    (
        {1, 2},
        known(v1=UNLOADING, v2=AVAILABLE),
        LATEST,
        actions(),
        "an unloading version is left to finish",
    ),
    ({}, known(v1=AVAILABLE), LATEST, actions(retire={1}), "a removed model unloads"),
    # the resource-preserving swap: unload first, then load (one copy at most)
    ({1}, {}, RESOURCE, actions(load={1}), "resource: a first load needs nothing retired"),
    ({1, 2}, known(v1=AVAILABLE), RESOURCE, actions(retire={1}), "resource: retire first"),
    ({1, 2}, known(v1=UNLOADING), RESOURCE, actions(), "resource: wait for the unload"),
    ({1, 2}, {}, RESOURCE, actions(load={2}), "resource: then load the new version"),
    ({1, 2}, known(v1=AVAILABLE, v2=LOADING), RESOURCE, actions(), "resource: wait"),
    ({1, 2}, known(v1=FAILED), RESOURCE, actions(load={2}), "resource: a FAILED one holds nothing"),
    ({2}, known(v1=AVAILABLE), RESOURCE, actions(retire={1}), "resource: a deleted folder"),
    ({1, 2}, known(v1=AVAILABLE), RESOURCE_ALL, actions(load={2}), "resource: nothing to replace"),
    ({1, 2}, known(v1=AVAILABLE), LATEST, actions(load={2}), "availability: load first"),
]


@pytest.mark.parametrize(("on_disk", "state", "policy", "expected", "why"), CASES)
def test_plan(on_disk, state, policy, expected, why) -> None:
    assert plan(on_disk, state, policy) == expected, why
