"""Live reload of the settings file: per-model settings change with no restart and no lost
request.

The reloader rebuilds the settings exactly as the server was started (the YAML file, then
the environment and flags over it), and when a reloadable field differs it copies the new
value onto the running ``Settings`` object every component reads, then lets the manager
act on it (new version policy, labels). A file that does not parse, does not validate, or
that a registered validator refuses changes nothing: the running settings stay, the error
is logged and ``primer_config_reloads_total{outcome="invalid"}`` counts it. Fields that
only take effect at start (ports, TLS, limits, ...) are reported as needing a restart.

The evaluation settings (payload-log rates, seed, redaction and rotation; feedback window,
capacity, accuracy window and alert margin; drift windows) are copied field by field onto
the running ``EvaluationSettings`` object the listeners hold, so they apply to the next
request; the payload log's folder and queue size are read at start.

It runs every ``poll_interval_s`` (as TF Serving polls its model config file), and on
demand (``reload``; ``primer-serve`` calls it on SIGHUP). ``apply_models`` takes the models
from a caller instead of the file (gRPC ``HandleReloadConfigRequest``), through the same
checks and the same rescan; as in TF Serving, the next read of a config file that differs
from what is served puts the file's models back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import yaml
from pydantic import ValidationError

from service.config import EvaluationSettings, ModelSettings, Settings
from service.metrics import Metrics

logger = logging.getLogger(__name__)

RELOADABLE = ("models", "model_paths", "batching", "request_timeout_s", "access_log", "evaluation")
"""Settings a reload applies to the running server (batching: to versions loaded after)."""
EVALUATION_AT_START = ("payload_log_dir", "queue_size", "max_inflight")
"""Evaluation settings only a restart applies (the payload log's writer is built at start)."""
Validator = Callable[[Settings], None]
"""Raises ``ValueError`` for settings the running server cannot take."""


class SettingsReloader:
    """Reloads the settings file into the running server.

    Args:
        load: builds fresh settings as at start (``Settings.load`` with the same file and
            flags); None when there is nothing to re-read (``apply_models`` still works).
        settings: the running settings (changed in place).
        on_change: awaited after a change is applied (the manager's rescan).
        metrics: the metric catalogue.
    """

    def __init__(
        self,
        load: Callable[[], Settings] | None,
        settings: Settings,
        on_change: Callable[[], Awaitable[None]],
        metrics: Metrics,
    ) -> None:
        self._load = load
        self._settings = settings
        self._on_change = on_change
        self._metrics = metrics
        self._validators: list[Validator] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def add_validator(self, validator: Validator) -> None:
        """Also refuse settings ``validator`` raises ``ValueError`` for."""
        self._validators.append(validator)

    async def reload(self) -> bool:
        """Read the settings now; True when a change was applied."""
        if self._load is None:
            return False
        async with self._lock:
            try:
                fresh = await asyncio.get_running_loop().run_in_executor(None, self._load)
                for validate in self._validators:
                    validate(fresh)
            except (ValidationError, ValueError, OSError, yaml.YAMLError) as exc:
                self._count("invalid")
                logger.error("settings reload refused, the running settings stay: %s", exc)
                return False
            changed = self._copy(fresh)
        if changed:
            await self._on_change()
        return bool(changed)

    async def apply_models(
        self, model_paths: dict[str, str], models: dict[str, ModelSettings]
    ) -> bool:
        """Serve exactly these models, with these policies and labels (TF Serving's
        ``HandleReloadConfigRequest``); True when that changed anything.

        Raises:
            ValueError: a registered validator refused them (nothing changed).
        """
        async with self._lock:
            fresh = self._settings.model_copy(update={"model_paths": model_paths, "models": models})
            try:
                for validate in self._validators:
                    validate(fresh)
            except ValueError as exc:
                self._count("invalid")
                logger.error("model config refused, the running models stay: %s", exc)
                raise
            changed = self._copy(fresh)
        if changed:
            await self._on_change()
        return bool(changed)

    def _copy(self, fresh: Settings) -> list[str]:
        """Copy what differs onto the running settings; the names of what changed."""
        running = self._settings
        changed = [
            f for f in RELOADABLE if f != "evaluation" and getattr(fresh, f) != getattr(running, f)
        ]
        evaluation = _differences(fresh.evaluation, running.evaluation)
        restart = [
            f
            for f in Settings.model_fields
            if f not in RELOADABLE and getattr(fresh, f) != getattr(running, f)
        ] + [f"evaluation.{f}" for f in evaluation if f in EVALUATION_AT_START]
        evaluation = [f for f in evaluation if f not in EVALUATION_AT_START]
        if restart:
            logger.warning("settings %s changed; they take effect after a restart", restart)
        if not changed and not evaluation:
            self._count("unchanged")
            return []
        for name in changed:
            setattr(running, name, getattr(fresh, name))
        for name in evaluation:  # in place: the listeners hold this object
            setattr(running.evaluation, name, getattr(fresh.evaluation, name))
        changed += [f"evaluation.{f}" for f in evaluation]
        self._count("applied")
        logger.info("settings reloaded: %s changed", changed)
        return changed

    def start(self, interval_s: float) -> None:
        """Reload every ``interval_s`` seconds in the background."""
        self._task = asyncio.get_running_loop().create_task(self._poll(interval_s))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _poll(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reload()
            except Exception:
                logger.exception("settings reload failed")

    def _count(self, outcome: str) -> None:
        self._metrics.config_reloads.labels(outcome).inc()


def _differences(fresh: EvaluationSettings, running: EvaluationSettings) -> list[str]:
    """The evaluation fields whose values differ."""
    return [f for f in EvaluationSettings.model_fields if getattr(fresh, f) != getattr(running, f)]
