"""What a result was produced with: harness version, git commit, library versions, device."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata

from harness import __version__
from harness.registry import PROJECT_ROOT

LIBRARIES = ("torch", "transformers", "accelerate", "datasets", "tokenizers", "scikit-learn", "numpy", "pandas")


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        commit = out.stdout.strip()
        if not commit:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict:
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict:
    return {
        "harness_version": __version__,
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def fingerprint(payload: dict) -> str:
    """A stable hash of everything that makes two runs comparable (data, budget, model entry, seed)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
