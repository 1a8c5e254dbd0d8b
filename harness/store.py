"""The results store: one directory per (benchmark, model, seed), written atomically.

Layout::

    <root>/<benchmark>/runs/<model>/seed-<seed>/
        result.json              status, metrics, budget, timings, environment (the record of the run)
        evaluation_metrics.json  accuracy / F1 / precision / recall, the exercise's format
        predictions.csv          id, label, prob_<class>..., group columns (per-example, for statistics)
        model/                   the fine-tuned model (not committed)
    <root>/<benchmark>/eval_texts.csv   id, text of the evaluation examples (for the error analysis)

A run trained on a subset of the train split (``--train-filter lang=en``, ``--transfer-matrix lang``) is
a different experiment from the run trained on all of it, so it lives in its own tree and never replaces it::

    <root>/<benchmark>/transfer/train-lang-en/runs/<model>/seed-<seed>/...

A run is complete when its ``result.json`` exists with status ``completed`` and the same fingerprint
(benchmark, data, budget, model entry) as the run being asked for; anything else is redone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from harness.config import SAFE_NAME
from harness.errors import HarnessInputError

RESULT_FILE = "result.json"
_UMASK = os.umask(0)
os.umask(_UMASK)
EVAL_TEXTS_FILE = "eval_texts.csv"
TRANSFER_DIR = "transfer"
# Pieces that can be written into a variant name as they are; with '-' and '_' kept out of them,
# "train-<col>-<v1>_<v2>__<col2>-<v>" reads back unambiguously.
_PLAIN_PIECE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.]{0,39}$")


def normalize_filter(train_filter: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
    """The filter with columns and values sorted and values deduplicated: equal filters, equal keys."""
    if not train_filter:
        return None
    return {column: sorted(set(map(str, values))) for column, values in sorted(train_filter.items())}


def filter_variant(train_filter: dict[str, list[str]] | None) -> str | None:
    """The store sub-tree of runs trained on a filtered train split; ``None`` for the whole split.

    ``{"lang": ["en"]}`` gives ``transfer/train-lang-en``; ``{"lang": ["en", "fr"]}`` gives
    ``transfer/train-lang-en_fr``. Names or values outside a plain alphabet (spaces, '/', '-', non-ASCII)
    get a readable stem plus a hash of the exact filter, so two different filters never share a directory
    and no value can steer a path out of the store.
    """
    normalized = normalize_filter(train_filter)
    if normalized is None:
        return None
    readable = "__".join(f"{column}-{'_'.join(values)}" for column, values in normalized.items())
    pieces = [piece for column, values in normalized.items() for piece in (column, *values)]
    if all(_PLAIN_PIECE.match(piece) and ".." not in piece for piece in pieces) and len(readable) <= 80:
        name = f"train-{readable}"
    else:
        digest = hashlib.sha256(json.dumps(normalized, sort_keys=True).encode("utf-8")).hexdigest()[:10]
        stem = re.sub(r"[^A-Za-z0-9]+", ".", readable).strip(".")[:60].rstrip(".") or "filter"
        name = f"train-{stem}--h{digest}"  # "--" never occurs in a plain name: the two forms cannot meet
    if not SAFE_NAME.match(name):
        raise HarnessInputError("--train-filter", f"cannot name a results directory for {train_filter}", "use plain values")
    return f"{TRANSFER_DIR}/{name}"


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; results are meant to be read by others, so use the usual umask-based mode.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, payload) -> None:
    text = json.dumps(payload, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: Path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class ResultsStore:
    """Reads and writes runs under one results root; every path it builds stays inside that root."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def _inside(self, *parts: str) -> Path:
        for part in parts:
            if not SAFE_NAME.match(part) or ".." in part:
                raise HarnessInputError("results path", f"unsafe name {part!r}", "use letters, digits, '.', '_', '-'")
        path = self.root.joinpath(*parts).resolve()
        if self.root not in path.parents and path != self.root:
            raise HarnessInputError("results path", f"{path} leaves {self.root}", "use a plain name")
        return path

    def benchmark_dir(self, benchmark: str) -> Path:
        return self._inside(benchmark)

    def runs_dir(self, benchmark: str, variant: str | None = None) -> Path:
        """``<benchmark>/runs``, or ``<benchmark>/<variant>/runs`` for runs on a filtered train split."""
        parts = variant.split("/") if variant else []
        return self._inside(benchmark, *parts, "runs")

    def run_dir(self, benchmark: str, model: str, seed: int, variant: str | None = None) -> Path:
        parts = variant.split("/") if variant else []
        return self._inside(benchmark, *parts, "runs", model, f"seed-{int(seed)}")

    def variants(self, benchmark: str) -> list[str]:
        """The filtered-training sub-trees of a benchmark that hold at least one run, sorted."""
        base = self.benchmark_dir(benchmark) / TRANSFER_DIR
        if not base.is_dir():
            return []
        return sorted(
            f"{TRANSFER_DIR}/{d.name}" for d in base.iterdir() if d.is_dir() and SAFE_NAME.match(d.name) and (d / "runs").is_dir()
        )

    def load_result(self, benchmark: str, model: str, seed: int, variant: str | None = None) -> dict | None:
        path = self.run_dir(benchmark, model, seed, variant) / RESULT_FILE
        if not path.exists():
            return None
        try:
            return read_json(path)
        except (json.JSONDecodeError, OSError):
            return None  # unreadable means not done; the run is redone, nothing is trusted

    def is_complete(self, benchmark: str, model: str, seed: int, fingerprint: str, variant: str | None = None) -> bool:
        result = self.load_result(benchmark, model, seed, variant)
        return bool(result and result.get("status") == "completed" and result.get("fingerprint") == fingerprint)

    def write_predictions(self, run_dir: Path, ids, labels, probs, label_names, groups=None) -> Path:
        frame = pd.DataFrame({"id": np.asarray(ids), "label": np.asarray(labels)})
        probs = np.asarray(probs)
        for k in range(len(label_names)):
            frame[f"prob_{k}"] = np.round(probs[:, k], 6)
        for column, values in (groups or {}).items():
            frame[f"group_{column}"] = values
        path = run_dir / "predictions.csv"
        atomic_write_text(path, frame.to_csv(index=False))
        return path

    @staticmethod
    def read_predictions(run_dir: Path) -> pd.DataFrame:
        return pd.read_csv(Path(run_dir) / "predictions.csv", keep_default_na=False)

    def eval_texts_path(self, benchmark: str) -> Path:
        return self.benchmark_dir(benchmark) / EVAL_TEXTS_FILE

    def write_eval_texts(self, benchmark: str, ids, texts) -> Path:
        """Keep the evaluation texts once per benchmark, so error analysis rebuilds from the store alone.

        Rows already there are kept and these are merged in by id (an id is a row of the eval split
        file, so a run on another subsample adds rows without contradicting earlier ones).
        """
        frame = pd.DataFrame({"id": np.asarray(ids, dtype=np.int64), "text": list(texts)})
        old = self.read_eval_texts(benchmark)
        if old is not None:
            frame = pd.concat([old[~old["id"].isin(frame["id"])], frame])
        path = self.eval_texts_path(benchmark)
        atomic_write_text(path, frame.sort_values("id").to_csv(index=False))
        return path

    def read_eval_texts(self, benchmark: str) -> pd.DataFrame | None:
        """The ``id,text`` table written by :meth:`write_eval_texts`, or None when there is none."""
        path = self.eval_texts_path(benchmark)
        if not path.exists():
            return None
        return pd.read_csv(path, keep_default_na=False, dtype={"text": str})

    def iter_results(self, benchmark: str, variant: str | None = None) -> Iterator[tuple[Path, dict]]:
        """Every readable result of a benchmark (of one filtered-training variant), sorted by model then seed."""
        base = self.runs_dir(benchmark, variant)
        for path in sorted(base.glob(f"*/seed-*/{RESULT_FILE}")):
            try:
                yield path.parent, read_json(path)
            except (json.JSONDecodeError, OSError):
                continue

    @contextlib.contextmanager
    def lock(self, benchmark: str) -> Iterator[None]:
        """One writer per benchmark directory; a second run gets a clear message instead of corrupting it."""
        directory = self.benchmark_dir(benchmark)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ".run.lock"
        handle = open(path, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise HarnessInputError(
                    str(directory),
                    f"another run is writing here ({holder})",
                    "wait for it to finish, or pass a different --results-dir",
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            # A writer killed mid-write leaves only its temporary file, never a half target: sweep those now
            # that no one else can be writing here.
            for stale in directory.rglob(".*.tmp"):
                if stale.is_file():
                    with contextlib.suppress(OSError):
                        stale.unlink()
            yield
        finally:
            handle.close()
