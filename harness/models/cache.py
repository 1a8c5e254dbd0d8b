"""Where the transformer family keeps what later runs reuse: tokenised splits and precision probes.

A tokenised split is reused only when it is exactly what was written: each entry holds a manifest of its files'
sizes and SHA-256 hashes (written before the entry is put in place), checked on every read; an entry that fails the
check (cut short, changed, files missing, written by an older harness) is rebuilt, with one line naming it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from harness.data.loading import file_sha256

CACHE_ENV = "TEXTCLF_BENCH_CACHE"
MANIFEST = "harness_cache.json"


def cache_root() -> Path:
    """Where the harness keeps its caches, read now (not at import):

    ``TEXTCLF_BENCH_CACHE`` when set; else ``$HF_HOME/textclf-bench`` when ``HF_HOME`` is set (the folder the
    user gave Hugging Face's caches, often a larger disk); else the platform's user cache folder through
    ``platformdirs`` (``$XDG_CACHE_HOME/textclf-bench``, by default ``~/.cache/textclf-bench`` on Linux,
    ``~/Library/Caches/textclf-bench`` on macOS, ``%LOCALAPPDATA%\\textclf-bench\\Cache`` on Windows).
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "textclf-bench"
    import platformdirs

    return platformdirs.user_cache_path("textclf-bench", appauthor=False)


def _files(entry: Path) -> list[Path]:
    return sorted(p for p in entry.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(entry: Path, rows: int) -> None:
    """Record what ``entry`` holds (call before it is renamed into place)."""
    files = {p.relative_to(entry).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)} for p in _files(entry)}
    (entry / MANIFEST).write_text(json.dumps({"rows": rows, "files": files}, sort_keys=True) + "\n")


def entry_problem(entry: Path, rows: int) -> str | None:
    """Why the cache entry is not exactly what was written for ``rows`` examples, or None when it is."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        files = manifest["files"]
        if not isinstance(files, dict) or not files:
            return f"{MANIFEST} lists no files"
    except FileNotFoundError:
        return f"no {MANIFEST} (cut short, or written by an older version)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{MANIFEST} cannot be read ({type(exc).__name__})"
    if manifest.get("rows") != rows:
        return f"it holds {manifest.get('rows')} rows, {rows} were asked for"
    present = {p.relative_to(entry).as_posix() for p in _files(entry)}
    if set(files) != present:
        missing, extra = sorted(set(files) - present), sorted(present - set(files))
        return f"files missing {missing}" if missing else f"unexpected files {extra}"
    for name, expected in files.items():
        path = entry / name
        try:
            size = path.stat().st_size
            if size != expected.get("size"):
                return f"{name} is {size} bytes, {expected.get('size')} were written"
            if file_sha256(path) != expected.get("sha256"):
                return f"{name} changed since it was written (SHA-256 differs)"
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
    return None


def discard(entry: Path) -> None:
    """Remove a damaged entry: renamed first, so no reader finds it half removed."""
    gone = entry.with_name(f"{entry.name}.damaged{os.getpid()}")
    with contextlib.suppress(OSError):
        os.replace(entry, gone)
        entry = gone
    shutil.rmtree(entry, ignore_errors=True)
