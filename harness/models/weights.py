"""The identity of local weights: a manifest of every file behind ``source.path`` or ``source.package``.

A hub model is pinned by the commit its revision resolves to; weights in a local folder have no such name, so
their run's fingerprint carries a hash of the folder's manifest (each file's relative path, size and sha256).
Weights rebuilt in place make a new fingerprint, and the run is redone instead of "already complete, skipped".

Hashing gigabytes for every command would be slow: a file's hash is kept in the harness cache root
(``weights-manifest.json``), keyed by its path and what ``stat`` says of it (size, modification and change
times, inode), and read again only when one of those changes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from pathlib import Path

from harness.config.schema import ModelSource, ModelSpec
from harness.data.loading import file_sha256
from harness.models.cache import cache_root
from harness.store.results import stable_hash

CACHE_FILE = "weights-manifest.json"
CACHE_VERSION = 1


def local_folder(source: ModelSource | None) -> Path | None:
    """The folder a local source loads from (``path``, or ``package``/``package_subdir``), or None.

    The package is found without importing it (as the transformer family finds it), and a ``package_subdir``
    that leads outside the package gives None: the run itself refuses it with its own message.
    """
    if source is None:
        return None
    if source.path:
        return Path(source.path).expanduser()
    if source.package:
        try:
            found = importlib.util.find_spec(source.package)
        except (ImportError, ValueError):
            return None
        if found is None or not found.submodule_search_locations:
            return None
        root = Path(list(found.submodule_search_locations)[0]).resolve()
        folder = (root / source.package_subdir).resolve()
        return folder if folder.is_relative_to(root) else None
    return None


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _file_sha256(path: Path) -> str:
    return file_sha256(path)  # the data files' hash (cached by stat); one name here, so a test can count calls


def _read_cache(path: Path) -> dict[str, list]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(payload, dict) or payload.get("version") != CACHE_VERSION or not isinstance(payload.get("files"), dict):
        return {}
    return {k: v for k, v in payload["files"].items() if isinstance(v, list) and len(v) == 5 and isinstance(v[4], str)}


def _write_cache(path: Path, files: dict[str, list]) -> None:
    from harness.store.results_store import atomic_write_bytes

    # A cache that cannot be written (read-only home) only costs the next command a re-hash.
    with contextlib.suppress(OSError):
        atomic_write_bytes(path, json.dumps({"version": CACHE_VERSION, "files": files}).encode("utf-8"))


def manifest(folder: Path) -> list[dict]:
    """Every file under ``folder``, sorted: ``{"path": relative posix path, "size": bytes, "sha256": hex}``.

    A file that cannot be read is listed with ``"sha256": None`` and the error's name, so it still counts.
    """
    folder = Path(folder)
    cache_path = cache_root() / CACHE_FILE
    cache = _read_cache(cache_path)
    changed = False
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        try:
            stat = path.stat()
            key = str(path.resolve())
            known = cache.get(key)
            if known is not None and known[:4] == _stat_key(stat):
                sha = known[4]
            else:
                sha = _file_sha256(path)
                cache[key] = [*_stat_key(stat), sha]
                changed = True
            entries.append({"path": relative, "size": stat.st_size, "sha256": sha})
        except OSError as exc:
            entries.append({"path": relative, "size": None, "sha256": None, "error": type(exc).__name__})
    if changed:
        _write_cache(cache_path, cache)
    return entries


def identity(spec: ModelSpec) -> str | None:
    """The hash of a model entry's local weights (its manifest), or None for hub or TF-IDF entries.

    A local folder that is missing gives None: its run fails on load with its own message.
    """
    folder = local_folder(spec.source)
    if folder is None or not folder.is_dir():
        return None
    return stable_hash(manifest(folder))
