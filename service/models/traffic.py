"""Weighted traffic split and sticky assignment between the versions of one model (pure).

A model's ``traffic`` setting maps versions (or version labels) to weights. A request that
names no version is served by one arm: drawn at random with the weights, or — when the
model has a ``sticky_key`` and the request carries that key — chosen by weighted rendezvous
hashing, so one key always lands on the same arm, and a weight change moves only the keys
the change must move. Arms that are not AVAILABLE are left out of the draw.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Collection, Mapping

from service.config import ModelSettings
from service.views import ExperimentView, RolloutView

STICKY_PREFIX = "header:"
"""``sticky_key`` names a request header (REST) or gRPC metadata key: ``header:<name>``."""


def arm_weights(traffic: Mapping[str, float], labels: Mapping[str, int]) -> dict[int, float]:
    """The weight of each version, with labels resolved (weights of one version add up).

    The settings refuse unknown labels; one removed since is left out here.
    """
    weights: dict[int, float] = {}
    for arm, weight in traffic.items():
        if arm.isdigit():
            version = int(arm)
        elif arm in labels:
            version = labels[arm]
        else:
            continue
        weights[version] = weights.get(version, 0.0) + weight
    return weights


def sticky_header(sticky_key: str | None) -> str | None:
    """The lower-case header name of a ``header:<name>`` sticky key (None for none)."""
    if sticky_key is None or not sticky_key.startswith(STICKY_PREFIX):
        return None  # the settings refuse any other form
    return sticky_key[len(STICKY_PREFIX) :].lower()


def _unit_hash(key: str, version: int) -> float:
    """A uniform number in (0, 1) for one key and one arm."""
    digest = hashlib.blake2b(f"{version}\x00{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def pick(
    weights: Mapping[int, float],
    available: Collection[int],
    key: str | None,
    rng: random.Random,
) -> int | None:
    """The version one request goes to, or None when no weighted arm is AVAILABLE.

    Args:
        weights: each version's weight (``arm_weights``).
        available: versions that can serve now.
        key: the request's sticky key (None draws at random).
        rng: the random source of keyless draws.
    """
    arms = sorted((v, w) for v, w in weights.items() if w > 0 and v in available)
    if not arms:
        return None
    if key is not None:  # weighted rendezvous hashing: the highest score wins
        return max(arms, key=lambda arm: -arm[1] / math.log(_unit_hash(key, arm[0])))[0]
    point = rng.random() * sum(weight for _, weight in arms)
    for version, weight in arms:
        point -= weight
        if point < 0:
            return version
    return arms[-1][0]


def experiment_view(
    model: str, settings: ModelSettings, rollout: RolloutView | None, latest: int | None
) -> ExperimentView:
    """How ``model``'s unversioned requests are shared: by its rollout when it has one, else
    by its ``traffic`` split, else all to the ``latest`` AVAILABLE version."""
    if rollout is not None:
        percent = rollout.candidate_percent
        weights = {rollout.baseline: 100.0 - percent, rollout.candidate: percent}
        source = "rollout"
    elif settings.traffic:
        weights, source = arm_weights(settings.traffic, settings.version_labels), "traffic"
    else:
        weights, source = ({} if latest is None else {latest: 1.0}), "latest"
    total = sum(weights.values())
    shares = {v: w / total for v, w in sorted(weights.items())} if total > 0 else {}
    shadow = settings.shadow
    return ExperimentView(
        model,
        shares,
        source,
        settings.sticky_key,
        None if shadow is None else shadow.version,
        0.0 if shadow is None else shadow.fraction,
        rollout,
    )
