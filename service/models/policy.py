"""Which versions to load and which to retire: one pure function (TF Serving's policy role).

``plan`` looks at the versions on disk, what the manager knows of each, and the model's
version policy, and returns the actions to take. It is availability-preserving, as TF
Serving's ``AvailabilityPreservingPolicy``: a version the policy no longer wants is retired
only once every wanted version has settled (AVAILABLE or FAILED) and at least one of them
is AVAILABLE, or at once when its folder is gone. A FAILED version is retried only when its
files change.

Under the ``resource`` swap policy (TF Serving's ``ResourcePreservingPolicy``) the order is
reversed so that at most one copy is held: versions the policy no longer wants are retired
first, and new versions load only once nothing is AVAILABLE or UNLOADING in their place.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from service.config import ModelSettings
from service.views import VersionState

_SETTLED = (VersionState.AVAILABLE, VersionState.FAILED)


@dataclass(frozen=True)
class Known:
    """What the manager knows of one version."""

    state: VersionState
    files_changed: bool = False
    """For a FAILED version: its files changed on disk since the load failed."""


@dataclass(frozen=True)
class Actions:
    """What to do for one model."""

    load: frozenset[int] = frozenset()
    """Versions to load: new ones, and FAILED ones whose files changed."""
    retire: frozenset[int] = frozenset()
    """AVAILABLE versions to unload once their in-flight requests finish."""
    forget: frozenset[int] = frozenset()
    """FAILED versions to drop from the status: their folder is gone or changed unwanted."""


def select_versions(available: Collection[int], policy: ModelSettings) -> set[int]:
    """The versions a model's policy asks for, among those on disk and loadable."""
    if policy.version_policy == "all":
        return set(available)
    if policy.version_policy == "specific":
        return set(available) & set(policy.versions)
    return set(sorted(available)[-policy.latest :])


def plan(on_disk: Collection[int], known: Mapping[int, Known], policy: ModelSettings) -> Actions:
    """The next actions for one model.

    Args:
        on_disk: the versions whose folders exist.
        known: the state of every version the manager holds.
        policy: the model's version policy.
    """
    retried = {v for v, k in known.items() if k.state is VersionState.FAILED and k.files_changed}
    current = {v: k.state for v, k in known.items() if v not in retried}
    loadable = [v for v in on_disk if current.get(v) is not VersionState.FAILED]
    aspired = select_versions(loadable, policy)
    load = {v for v in aspired if v not in current}
    states = [current.get(v, VersionState.LOADING) for v in aspired]
    settled = all(s in _SETTLED for s in states)
    any_available = VersionState.AVAILABLE in states
    retire, forget = set(), retried - load
    for version, state in current.items():
        if version in aspired or state is VersionState.UNLOADING:
            continue
        gone = version not in on_disk
        if state is VersionState.FAILED and gone:
            forget.add(version)
        elif state is VersionState.AVAILABLE and (gone or (settled and any_available)):
            retire.add(version)
    if policy.swap_policy == "resource" and load:
        load, retire = _resource_preserving(load, retire, current, aspired)
    return Actions(frozenset(load), frozenset(retire), frozenset(forget))


def _resource_preserving(
    load: set[int], retire: set[int], current: Mapping[int, VersionState], aspired: set[int]
) -> tuple[set[int], set[int]]:
    """Retire every unwanted held version now, and hold the loads back until they are gone."""
    unwanted = {v for v, s in current.items() if v not in aspired and s is not VersionState.FAILED}
    if not unwanted:
        return load, retire
    held = {v for v in unwanted if current[v] is VersionState.AVAILABLE}
    return set(), retire | held
