"""Which versions exist: a scan of the model base path (TF Serving's Source role).

``<base>/<model>/<version>/saved_model.pb`` under the naming rules of ``contract.layout``;
anything else (staging folders, stray files, a symlink leading outside the base path) is
not a version. Models may instead each name their own folder of versions
(``scan_folders``, TF Serving's model config list). Blocking: the manager runs a scan in a
thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from contract.layout import SAVED_MODEL_FILE, is_model_name, is_version
from service.models import storage

logger = logging.getLogger(__name__)

OnDisk = dict[str, dict[int, str]]
"""Model name → {version: path of the version folder}."""


def scan(base: str) -> OnDisk:
    """Every servable version under ``base`` (a resolved base path)."""
    found: OnDisk = {}
    if not storage.exists(base):
        logger.error("model base path %s does not exist", base)
        return found
    for name in storage.list_dirs(base):
        if not is_model_name(name):
            continue
        versions = _versions(base, storage.join(base, name), name)
        if versions:
            found[name] = versions
    return found


def scan_folders(folders: Mapping[str, str]) -> OnDisk:
    """Every servable version of each model in its own folder (model name → folder)."""
    found: OnDisk = {}
    for name, folder in folders.items():
        root = storage.resolve_base(folder)
        if not storage.exists(root):
            logger.error("model %s: base path %s does not exist", name, folder)
            continue
        versions = _versions(root, root, name)
        if versions:
            found[name] = versions
    return found


def _versions(base: str, model_dir: str, name: str) -> dict[int, str]:
    """The version folders holding a SavedModel in ``model_dir``, kept inside ``base``."""
    versions: dict[int, str] = {}
    for version_name in storage.list_dirs(model_dir):
        if not is_version(version_name):
            continue
        path = storage.inside(base, storage.join(model_dir, version_name))
        if path is None:
            logger.warning(
                "ignoring %s/%s: it resolves outside the model base path", name, version_name
            )
        elif storage.exists(storage.join(path, SAVED_MODEL_FILE)):
            versions[int(version_name)] = path
    return versions
