"""Hugging Face hub settings, read the way huggingface_hub reads them, and revisions pinned to commits.

Everything about reaching the hub goes through huggingface_hub: its endpoint (``HF_ENDPOINT``), its offline
flag (``HF_HUB_OFFLINE`` = 1/true/yes/on), its HTTP session (proxies, certificates) and its cache layout.
A run records the commit a revision resolved to, so an upstream change of weights or data changes the run's
fingerprint instead of silently mixing numbers from two versions.
"""

from __future__ import annotations

import concurrent.futures
import os

from huggingface_hub import constants

PROBE_TIMEOUT_S = 4.0
_REACHABLE: dict[str, bool] = {}  # endpoint -> answer: one probe per process, not one per model


def offline() -> bool:
    """The user's offline flag, with huggingface_hub's own notion of true (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in constants.ENV_VARS_TRUE_VALUES


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub answers within ``timeout`` seconds; False at once when the user said offline.

    Without a network, name resolution alone can hang for ~50 s: the probe runs in a thread and is abandoned
    after the timeout. It uses huggingface_hub's session, so the user's proxy settings apply.
    """
    if offline():
        return False
    if endpoint() in _REACHABLE:
        return _REACHABLE[endpoint()]

    def probe() -> bool:
        from huggingface_hub import get_session

        get_session().head(endpoint(), timeout=timeout)
        return True

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        answer = pool.submit(probe).result(timeout=timeout + 1)
    except Exception:  # noqa: BLE001 - any failure to answer means "not reachable"
        answer = False
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    _REACHABLE[endpoint()] = answer
    return answer


def cached_repo(repo_id: str, repo_type: str):
    """huggingface_hub's description of the local cache's copy of a repo (``CachedRepoInfo``), or None."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001 - no cache folder (CacheNotFound) or one we cannot read: nothing cached
        return None
    for repo in info.repos:
        if repo.repo_id == repo_id and repo.repo_type == repo_type:
            return repo
    return None


def cached_commit(repo_id: str, revision: str | None, repo_type: str) -> str | None:
    """The commit the local hub cache holds for ``revision`` (offline resolution), or None."""
    revision = revision or "main"
    if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    repo = cached_repo(repo_id, repo_type)
    if repo is None:
        return None
    cached = repo.refs.get(revision)
    return cached.commit_hash if cached is not None else None


def resolve_revision(repo_id: str, revision: str | None, repo_type: str = "model") -> str | None:
    """The commit hash a hub revision points at now: asked of the hub, else the local cache, else None."""
    revision = revision or "main"
    if reachable():
        try:
            from huggingface_hub import HfApi

            info = HfApi(endpoint=endpoint()).repo_info(repo_id, revision=revision, repo_type=repo_type)
            return info.sha
        except Exception:  # noqa: BLE001 - a repo we cannot see now resolves like an offline one
            pass
    return cached_commit(repo_id, revision, repo_type)
