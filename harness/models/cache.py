"""Where the transformer family keeps what later runs reuse: tokenised splits and precision probes."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "TEXTCLF_BENCH_CACHE"


def cache_root() -> Path:
    """``TEXTCLF_BENCH_CACHE``, else ``~/.cache/textclf-bench``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "textclf-bench"))
