"""What a result was produced with: harness version and source hash, git commit, library versions."""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from harness.core.version import __version__
from harness.store.results import Environment

LIBRARIES = ("torch", "transformers", "accelerate", "datasets", "tokenizers", "scikit-learn", "numpy", "pandas")
PACKAGE_DIR = Path(__file__).resolve().parents[1]


@functools.cache
def source_sha256() -> str:
    """A hash of the harness's own code (every .py file of the package), whatever its installation.

    This, not the git state, says whether two results came from the same code: it is the same in a wheel,
    an editable checkout or a copy, and YAML or data added beside the code do not change it.
    """
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR.parent), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    """The project's own commit and whether the harness's code differs from it; (None, None) elsewhere.

    Only a repository whose top level is the folder holding the package counts: a copy of the harness inside
    some other repository must not report that repository's commit. "Modified" looks at the package's code
    only, so a user who adds a benchmark YAML or data still runs the committed harness.
    """
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != PACKAGE_DIR.parent:
        return None, None
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return None, None
    changed = _git("status", "--porcelain", "--untracked-files=all", "--", PACKAGE_DIR.name)
    modified = any(line.strip().endswith(".py") for line in (changed or "").splitlines())
    return commit, modified


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> Environment:
    commit, modified = git_state()
    return Environment(
        harness_version=__version__,
        harness_source_sha256=source_sha256(),
        git_commit=commit,
        git_modified=modified,
        libraries=library_versions(),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
