"""The results store: one directory per (configuration, model, seed), written atomically.

Layout::

    <root>/<benchmark>/
        leaderboard.md, leaderboard.csv, leaderboard.json, errors.md, plots/
                                 the report of the configuration the last command ran (a copy)
        configs/<label>/         one comparison: runs that share data, budget values and limits
            configuration.json   the Configuration (harness.store.results) every run below shares
            leaderboard.*, errors.md, plots/   this configuration's report
            eval_texts.csv       id, text of its evaluation examples (for the error analysis)
            runs/<model>/seed-<seed>/
                result.json              the typed RunResult (harness.store.results): identity, metrics, costs
                                         (a tuned budget: the selected trial's model on test, with its study)
                evaluation_metrics.json  accuracy / F1 / precision / recall, the exercise's format
                predictions.csv          id, label, prob_<class>..., group columns (per-example)
                model/                   the fine-tuned model (not committed)
            trials/<model>/seed-<seed>/  a tuned budget's study: study.journal (Optuna) and one trial-<k>/ each,
                                         a run scored on validation only (result.json, predictions.csv, model/)
            transfer/train-lang-en/runs/<model>/seed-<seed>/   runs trained on a filtered train split
            superseded/<model>/seed-<seed>-<fingerprint>/      a run replaced after its registry entry changed

A rerun with another budget, limit or data lands in another ``configs/<label>``: nothing of an earlier
configuration is replaced. A run is complete when its ``result.json`` validates against the schema, names the
folder it lies in (benchmark, configuration, model, seed, train filter), says
``completed`` with the fingerprint being asked for, and its ``predictions.csv`` holds every evaluated example, with
ids and labels as the result counted them; anything else is redone, and the reason is said. ``report`` makes the
same check (:meth:`ResultsStore.validate_run`) and lists what fails it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from harness.config.schema import SAFE_NAME
from harness.core.errors import HarnessInputError
from harness.store.results import RESULT_FILE, Configuration, ResultReadError, RunResult, read_result

_UMASK = os.umask(0)
os.umask(_UMASK)
EVAL_TEXTS_FILE = "eval_texts.csv"
TRANSFER_DIR = "transfer"
TRIALS_DIR = "trials"
CONFIGS_DIR = "configs"
CONFIGURATION_FILE = "configuration.json"
CURRENT_FILE = "current-configuration.json"
SUPERSEDED_DIR = "superseded"
PREDICTIONS_FILE = "predictions.csv"
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


def write_result(path: Path, result: RunResult) -> None:
    """The one way a result reaches disk: validated by construction, written atomically."""
    atomic_write_bytes(path, result.to_json().encode("utf-8"))


class StoredRun:
    """A run read back from the store: where it lives, its typed result, its predictions on demand."""

    def __init__(self, run_dir: Path, result: RunResult, variant: str | None = None):
        self.run_dir = Path(run_dir)
        self.result = result
        self.variant = variant

    def __repr__(self) -> str:
        return f"StoredRun({self.result.model!r}, seed={self.result.seed}, {self.result.status}, {self.variant})"


class ResultsStore:
    """Reads and writes runs under one results root; every path it builds stays inside that root."""

    def __init__(self, root: Path):
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise HarnessInputError(str(root), "the results directory is a file", "pass a directory to --results-dir")
        self.root = root.resolve()

    def _inside(self, *parts: str) -> Path:
        for part in parts:
            if not SAFE_NAME.match(part) or ".." in part:
                raise HarnessInputError("results path", f"unsafe name {part!r}", "use letters, digits, '.', '_', '-'")
        path = self.root.joinpath(*parts).resolve()
        if self.root not in path.parents and path != self.root:
            raise HarnessInputError("results path", f"{path} leaves {self.root}", "use a plain name")
        return path

    # ----- where things are ------------------------------------------------------------------------

    def benchmark_dir(self, benchmark: str) -> Path:
        return self._inside(benchmark)

    def benchmarks(self) -> list[str]:
        """The benchmarks this store holds configurations of, sorted; reads only, creates nothing."""
        if not self.root.is_dir():
            return []
        return sorted(
            d.name for d in self.root.iterdir()
            if d.is_dir() and SAFE_NAME.match(d.name) and ".." not in d.name and (d / CONFIGS_DIR).is_dir()
        )

    def config_dir(self, benchmark: str, label: str) -> Path:
        return self._inside(benchmark, CONFIGS_DIR, label)

    def runs_dir(self, benchmark: str, label: str, variant: str | None = None) -> Path:
        """``configs/<label>/runs``, or ``configs/<label>/<variant>/runs`` for a filtered train split."""
        parts = variant.split("/") if variant else []
        return self._inside(benchmark, CONFIGS_DIR, label, *parts, "runs")

    def run_dir(self, benchmark: str, label: str, model: str, seed: int, variant: str | None = None) -> Path:
        return self.runs_dir(benchmark, label, variant) / _checked(model) / f"seed-{int(seed)}"

    def trials_dir(self, benchmark: str, label: str, model: str, seed: int, variant: str | None = None) -> Path:
        """``configs/<label>[/<variant>]/trials/<model>/seed-<seed>``: a tuning study's trials and its journal,
        beside (never inside) ``runs/``, so the leaderboard reads only the selected runs."""
        parts = variant.split("/") if variant else []
        return self._inside(benchmark, CONFIGS_DIR, label, *parts, TRIALS_DIR, _checked(model), f"seed-{int(seed)}")

    def trial_dir(self, benchmark: str, label: str, model: str, seed: int, number: int,
                  variant: str | None = None) -> Path:
        return self.trials_dir(benchmark, label, model, seed, variant) / f"trial-{int(number)}"

    def variants(self, benchmark: str, label: str) -> list[str]:
        """The filtered-training sub-trees of a configuration that hold at least one run, sorted."""
        base = self.config_dir(benchmark, label) / TRANSFER_DIR
        if not base.is_dir():
            return []
        return sorted(
            f"{TRANSFER_DIR}/{d.name}"
            for d in base.iterdir()
            if d.is_dir() and SAFE_NAME.match(d.name) and (d / "runs").is_dir()
        )

    # ----- configurations ----------------------------------------------------------------------------

    def write_configuration(self, configuration: Configuration) -> Path:
        """Write the configuration's file; one that does not hold it (damaged, edited, deleted) is rewritten.

        The folder is named by the configuration's own hash, so the command's configuration is the truth for
        it: rewriting the file loses nothing, and its runs are then found again.
        """
        path = self.config_dir(configuration.benchmark, configuration.label) / CONFIGURATION_FILE
        stored, problem = self.read_configuration(path)
        if stored != configuration:
            atomic_write_bytes(path, (configuration.model_dump_json(indent=2) + "\n").encode("utf-8"))
            if problem or stored is not None:
                import logging

                logging.getLogger("harness").warning(
                    f"rewrote {path}: {problem or 'it held another configuration'}; the runs beside it are kept"
                )
        return path

    @staticmethod
    def read_configuration(path: Path) -> tuple[Configuration | None, str | None]:
        """A configuration file read and validated: ``(configuration, None)``, ``(None, why not)``, or
        ``(None, None)`` when there is no file."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except (OSError, UnicodeDecodeError) as exc:
            return None, f"cannot be read ({type(exc).__name__})"
        try:
            return Configuration.model_validate_json(text), None
        except ValueError as exc:
            errors = getattr(exc, "errors", None)
            first = errors()[0] if callable(errors) and errors() else None
            where = ".".join(str(p) for p in first["loc"]) if first and first.get("loc") else ""
            reason = f"field '{where}': {first['msg']}" if where else (first["msg"] if first else type(exc).__name__)
            return None, f"does not hold a valid configuration ({reason})"

    def _configuration_files(self, benchmark: str) -> Iterator[tuple[Path, Configuration | None, str | None]]:
        """Every ``configs/*/configuration.json`` of a benchmark as ``(path, configuration, None)``, or as
        ``(path, None, label it names)`` when it cannot be used (see :meth:`configuration_problem`).

        A configuration is trusted only in its own folder (named by its label) and under its own benchmark: a
        folder renamed or copied by hand would otherwise be reported from the folder its label names.
        """
        base = self.benchmark_dir(benchmark) / CONFIGS_DIR
        for path in sorted(base.glob(f"*/{CONFIGURATION_FILE}")) if base.is_dir() else []:
            configuration, _ = self.read_configuration(path)
            where = (benchmark, path.parent.name)
            if configuration is not None and (configuration.benchmark, configuration.label) != where:
                yield path, None, configuration.label
            else:
                yield path, configuration, None

    def _misfiled(self, path: Path, benchmark: str) -> HarnessInputError:
        """The one line on a configuration file that cannot be used where it is."""
        configuration, problem = self.read_configuration(path)
        if configuration is None:
            return HarnessInputError(
                str(path), problem or "is missing",
                "rerun the command that made it: the file is rewritten and the finished runs beside it are kept",
            )
        if configuration.benchmark != benchmark:
            return HarnessInputError(
                str(path), f"is a configuration of benchmark '{configuration.benchmark}', not '{benchmark}'",
                f"move the folder under {self.root / configuration.benchmark / CONFIGS_DIR}",
            )
        return HarnessInputError(
            str(path), f"holds configuration '{configuration.label}' but sits in folder '{path.parent.name}'",
            f"rename the folder back to {configuration.label}",
        )

    def configurations(self, benchmark: str) -> list[Configuration]:
        """Every configuration of a benchmark in the store, oldest first (by the time its folder was made).

        A file that does not validate, or that sits in another folder than its label, is left out (never
        trusted); :meth:`configuration_problem` says why.
        """
        found = []
        for path, configuration, _ in self._configuration_files(benchmark):
            if configuration is None:
                continue
            try:
                found.append((path.stat().st_mtime, configuration))
            except OSError:
                continue
        return [c for _, c in sorted(found, key=lambda item: (item[0], item[1].label))]

    def configuration_problem(self, benchmark: str, label: str | None) -> HarnessInputError | None:
        """Why the configuration ``label`` (a label or a prefix of one; None: any) is not among
        :meth:`configurations`: the one line on its damaged or misplaced file, or None when there is none."""
        for path, configuration, claimed in self._configuration_files(benchmark):
            if configuration is not None:
                continue
            names = [path.parent.name, *([claimed] if claimed else [])]
            if label is None or any(name.startswith(label) for name in names):
                return self._misfiled(path, benchmark)
        return None

    def set_current(self, configuration: Configuration) -> None:
        """Remember the configuration the last command ran: the default of ``report``."""
        atomic_write_json(self.benchmark_dir(configuration.benchmark) / CURRENT_FILE, {"label": configuration.label})

    def current_label(self, benchmark: str) -> str | None:
        path = self.benchmark_dir(benchmark) / CURRENT_FILE
        try:
            label = read_json(path).get("label")
        except (OSError, ValueError, AttributeError):
            return None
        return label if isinstance(label, str) and SAFE_NAME.match(label) else None

    def find_configuration(self, benchmark: str, label: str | None) -> Configuration | None:
        """The configuration named by ``label`` (or a unique prefix of it), else the last command's."""
        configs = self.configurations(benchmark)
        label = label or self.current_label(benchmark)
        if label is None:
            return configs[-1] if configs else None
        exact = [c for c in configs if c.label == label or c.id == label]
        if exact:
            return exact[0]
        prefix = [c for c in configs if c.label.startswith(label)]
        return prefix[0] if len(prefix) == 1 else None

    # ----- runs ------------------------------------------------------------------------------------------

    def load_result(self, run_dir: Path) -> RunResult | None:
        """The run's typed result, or None when there is none, it does not validate or is not this folder's."""
        try:
            return self.read_run_result(run_dir)
        except ResultReadError:
            return None

    def read_run_result(self, run_dir: Path) -> RunResult:
        """The result in ``run_dir``, validated and checked against its folder (raises ``ResultReadError``).

        A result names its benchmark, configuration, model, seed and train filter; the store files it under
        exactly those. One that says otherwise (edited to another model or seed, copied from another
        configuration) is not this folder's run, whatever it scored, and is never shown under its name.
        """
        path = Path(run_dir) / RESULT_FILE
        result = read_result(path)
        problem = self.placement_problem(Path(run_dir), result)
        if problem is not None:
            raise ResultReadError(f"{path}: {problem}; the run is redone")
        return result

    def placement_problem(self, run_dir: Path, result: RunResult) -> str | None:
        """Why ``result`` cannot be the run stored in ``run_dir``, or None when its identity matches the folder."""
        try:
            parts = run_dir.resolve().relative_to(self.root).parts
        except ValueError:
            return f"lies outside the results store {self.root}"
        trial = len(parts) >= 7 and parts[-4] == TRIALS_DIR and parts[-1].startswith("trial-")
        if trial:
            # A tuning trial: <label>/trials/<model>/seed-<seed>/trial-<k>, its result naming that trial.
            if result.trial is None or parts[-1] != f"trial-{result.trial.number}":
                return f"is not the result of tuning trial {parts[-1].removeprefix('trial-')!r}"
            parts = (*parts[:-4], "runs", *parts[-3:-1])
        elif result.trial is not None:
            return "is a tuning trial's result (scored on validation), not a run's"
        if len(parts) < 6 or parts[1] != CONFIGS_DIR or parts[-3] != "runs":
            return "does not lie in a run folder (<benchmark>/configs/<label>/runs/<model>/seed-<seed>)"
        benchmark, label, model, seed = parts[0], parts[2], parts[-2], parts[-1]
        variant = "/".join(parts[3:-3]) or None
        configuration = result.configuration
        try:
            result_variant = filter_variant(result.train_filter)
        except HarnessInputError:
            result_variant = "(unusable train filter)"
        mismatches = [
            f"{what} {said!r} (the folder's is {found!r})"
            for what, said, found in (
                ("model", result.model, model),
                ("seed", result.seed, seed.removeprefix("seed-")),
                ("benchmark", result.benchmark, benchmark),
                ("configuration", configuration.label, label),
                ("train filter", result_variant, variant),
            )
            if str(said) != str(found)
        ]
        if not mismatches and configuration.benchmark != benchmark:
            mismatches.append(f"configuration of benchmark {configuration.benchmark!r}")
        if not mismatches and not label.endswith(f"-{configuration.id}"):
            mismatches.append(f"configuration id {configuration.id!r} (the label's is {label.rsplit('-', 1)[-1]!r})")
        if not mismatches:
            recorded = self._configuration_file(benchmark, label)
            # The seed of a budget is each run's; everything else of the configuration is shared by its runs.
            if recorded is not None and _shared(recorded) != _shared(configuration):
                mismatches.append(f"a configuration that differs from {CONFIGURATION_FILE}")
        if mismatches:
            return f"says {', '.join(mismatches)}: not this folder's run"
        return None

    def _configuration_file(self, benchmark: str, label: str) -> Configuration | None:
        path = self.config_dir(benchmark, label) / CONFIGURATION_FILE
        try:
            return Configuration.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing or damaged: the folder's label and id still check the result

    def validate_run(self, run_dir: Path) -> tuple[RunResult | None, str | None]:
        """The one check of a stored run, used by ``run`` (skip or redo it) and ``report`` (use or list it).

        Returns ``(result, None)`` for a run that can be used, ``(None, reason)`` for one that cannot, and
        ``(None, None)`` where there is no result at all. The result must validate against the schema; a
        completed one must also have the predictions that back its metrics (:meth:`predictions_problem`).
        """
        path = Path(run_dir) / RESULT_FILE
        if not path.exists():
            return None, None
        try:
            result = self.read_run_result(run_dir)
        except ResultReadError as exc:
            return None, str(exc)
        if result.completed and (problem := self.predictions_problem(run_dir, result)) is not None:
            return None, problem
        return result, None

    def check_run(self, run_dir: Path, fingerprint: str) -> tuple[bool, str | None]:
        """Is the stored run the finished run being asked for? ``(done, reason it is not)``.

        Trust nothing: the run must pass :meth:`validate_run` (the check ``report`` makes too), be completed
        and carry this fingerprint.
        """
        result, problem = self.validate_run(run_dir)
        if result is None:
            return False, problem
        if result.fingerprint != fingerprint:
            return False, "stored with another registry entry or settings"
        if not result.completed:
            return False, "the stored run failed"
        return True, None

    def predictions_problem(self, run_dir: Path, result: RunResult) -> str | None:
        """Why the run's predictions.csv cannot back its metrics, or None when it can.

        They feed every interval, paired test and plot, so they must be the examples the result scored: one
        row per scored example (as many as the result's test size), unique whole-number ids, labels among the
        classes and counted per class as the result counted them, finite probabilities for every class.
        """
        path = Path(run_dir) / PREDICTIONS_FILE
        metrics = result.metrics
        if metrics is None:
            return None
        if result.data is not None and result.data.eval_rows != metrics.n:
            return f"{Path(run_dir) / RESULT_FILE}: scored {metrics.n} examples of {result.data.eval_rows} evaluated"
        if not path.exists():
            return f"{path} is missing"
        try:
            frame = self.read_predictions(run_dir)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            return f"{path} cannot be read ({type(exc).__name__})"
        k = len(metrics.per_class)
        columns = ["id", "label", *(f"prob_{i}" for i in range(k))]
        if missing := [c for c in columns if c not in frame.columns]:
            return f"{path} lacks the column(s) {', '.join(missing)}"
        if len(frame) != metrics.n:
            return f"{path} holds {len(frame)} rows, the result scored {metrics.n}"
        numbers = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64) for c in columns}
        for column in ("id", "label"):
            values = numbers[column]
            if not (np.isfinite(values).all() and (values == np.round(values)).all()):
                return f"{path}: column {column} holds values that are not whole numbers"
        ids, counts = np.unique(numbers["id"], return_counts=True)
        if (counts > 1).any():
            return f"{path}: id {int(ids[counts > 1][0])} occurs more than once"
        labels = numbers["label"].astype(np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            return f"{path}: labels outside 0..{k - 1}"
        found = np.bincount(labels, minlength=k).tolist()
        scored = [scores.support for scores in metrics.per_class.values()]
        if found != scored:
            return f"{path}: labels count {found} per class, the result scored {scored}"
        for column in columns[2:]:
            if not np.isfinite(numbers[column]).all():
                return f"{path}: column {column} holds values that are not finite numbers"
        return None

    def supersede(self, run_dir: Path, label: str, benchmark: str) -> Path | None:
        """Move a finished run of another registry entry aside instead of overwriting it."""
        result = self.load_result(run_dir)
        if result is None or not result.completed:
            return None
        target = self.config_dir(benchmark, label) / SUPERSEDED_DIR / run_dir.parent.name / f"{run_dir.name}-{result.fingerprint}"
        if target.exists():
            import shutil

            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(run_dir, target)
        return target

    def iter_runs(
        self, benchmark: str, label: str, variant: str | None = None, check_predictions: bool = True
    ) -> Iterator[StoredRun | tuple[Path, str]]:
        """Every run of a configuration (one variant), sorted by model then seed.

        Yields a :class:`StoredRun` per run that passes :meth:`validate_run` (the check ``run`` makes before it
        skips a run) and ``(run_dir, reason)`` for one that does not, so a report can say which runs it could
        not use instead of dropping them silently. ``check_predictions=False`` reads the results alone (the
        time forecast, which needs only their timings).
        """
        base = self.runs_dir(benchmark, label, variant)
        for path in sorted(base.glob(f"*/seed-*/{RESULT_FILE}"), key=_run_sort_key):
            if check_predictions:
                result, problem = self.validate_run(path.parent)
            else:
                try:
                    result, problem = self.read_run_result(path.parent), None
                except ResultReadError as exc:
                    result, problem = None, str(exc)
            if result is not None:
                yield StoredRun(path.parent, result, variant)
            elif problem is not None:
                yield path.parent, problem

    def write_predictions(self, run_dir: Path, ids, labels, probs, label_names, groups=None) -> Path:
        frame = pd.DataFrame({"id": np.asarray(ids), "label": np.asarray(labels)})
        probs = np.asarray(probs)
        for k in range(len(label_names)):
            frame[f"prob_{k}"] = np.round(probs[:, k], 6)
        for column, values in (groups or {}).items():
            frame[f"group_{column}"] = values
        path = Path(run_dir) / PREDICTIONS_FILE
        atomic_write_text(path, frame.to_csv(index=False))
        return path

    @staticmethod
    def read_predictions(run_dir: Path) -> pd.DataFrame:
        return pd.read_csv(Path(run_dir) / PREDICTIONS_FILE, keep_default_na=False)

    # ----- evaluation texts -------------------------------------------------------------------------

    def eval_texts_path(self, benchmark: str, label: str) -> Path:
        return self.config_dir(benchmark, label) / EVAL_TEXTS_FILE

    def write_eval_texts(self, benchmark: str, label: str, ids, texts) -> Path:
        """Keep a configuration's evaluation texts, so the error analysis rebuilds from the store alone."""
        frame = pd.DataFrame({"id": np.asarray(ids, dtype=np.int64), "text": list(texts)})
        path = self.eval_texts_path(benchmark, label)
        atomic_write_text(path, frame.sort_values("id").to_csv(index=False))
        return path

    def read_eval_texts(self, benchmark: str, label: str) -> pd.DataFrame | None:
        """The ``id,text`` table written by :meth:`write_eval_texts`, or None when there is none."""
        path = self.eval_texts_path(benchmark, label)
        if not path.exists():
            return None
        try:
            return pd.read_csv(path, keep_default_na=False, dtype={"text": str})
        except (OSError, ValueError, pd.errors.ParserError):
            return None

    def legacy_runs(self, benchmark: str) -> Path | None:
        """A ``<benchmark>/runs`` tree from before configurations (schema 1), which is no longer read."""
        path = self.benchmark_dir(benchmark) / "runs"
        return path if path.is_dir() else None

    # ----- one writer per run, one writer of a benchmark's report ------------------------------------

    @contextlib.contextmanager
    def run_lock(self, run_dir: Path) -> Iterator[str | None]:
        """Hold one run for this process: yields None when held, else who holds it ("pid N on host").

        The lock file sits beside the run's folder, not in it, so moving a superseded run aside never moves
        the lock. The lock is the ``filelock`` package's (flock on POSIX, LockFileEx on Windows): advisory and
        per open file, it works across processes on one machine and, on a shared filesystem that supports it
        (NFSv4, Lustre, CephFS), across machines. Who holds it is written beside it (``.<seed>.holder``), read by
        the one refused.
        """
        run_dir = Path(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = run_dir.parent / f".{run_dir.name}.lock"
        with _held(lock_path, wait=False) as holder:
            if holder is not None:
                yield holder
                return
            _write_holder(lock_path, f"pid {os.getpid()} on {_host()}")
            # A writer of this run killed mid-write left only temporary files; no one else writes here now.
            for stale in run_dir.glob(".*.tmp") if run_dir.is_dir() else []:
                with contextlib.suppress(OSError):
                    stale.unlink()
            yield None

    def runs_in_progress(self, benchmark: str, label: str) -> list[tuple[str | None, str, int]]:
        """The runs of a configuration some process is working on now (its :meth:`run_lock` is held), as
        ``(variant, model, seed)`` sorted; a report written meanwhile says its rows may still change.

        Each lock is tried without waiting and let go at once; one that cannot be opened (a read-only store) is
        not counted.
        """
        base = self.config_dir(benchmark, label)
        found = []
        for lock_path in base.rglob(".seed-*.lock") if base.is_dir() else []:
            seed = lock_path.name.removeprefix(".seed-").removesuffix(".lock")
            runs = lock_path.parent.parent
            if not seed.lstrip("-").isdigit() or runs.name != "runs":
                continue
            try:
                lock = _acquire(lock_path, wait=False)
            except OSError:
                continue
            if lock is not None:
                lock.release()
                continue
            variant = "/".join(runs.parent.relative_to(base).parts) or None
            found.append((variant, lock_path.parent.name, int(seed)))
        return sorted(found, key=lambda f: (f[0] or "", f[1], f[2]))

    @contextlib.contextmanager
    def lock(self, benchmark: str, wait: bool = False) -> Iterator[None]:
        """One writer at a time of a benchmark's shared files (configurations, leaderboards, plots).

        Runs do not hold it while they train: each run has its own lock (:meth:`run_lock`), so several commands,
        processes or machines can work through one grid together. A command holds this lock only to set up a
        configuration and to write a report. ``wait``: queue behind the current holder (a run's short sections);
        otherwise refuse at once with one line (``report``, so it never overwrites a newer leaderboard).
        """
        directory = self.benchmark_dir(benchmark)
        lock_path = directory / ".run.lock"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            held = _acquire(lock_path, wait=False)
            holder = None if held is not None else _holder(lock_path)
            if held is None and wait:
                import logging

                logging.getLogger("harness").info(f"waiting for {holder} to finish writing {directory}")
                held = _acquire(lock_path, wait=True)
        except OSError as exc:
            raise HarnessInputError(
                str(directory), f"cannot write to the results directory ({exc.strerror or exc})",
                "pass a writable --results-dir",
            ) from None
        if held is None:
            raise HarnessInputError(
                str(directory),
                f"another run is writing here ({holder})",
                "wait for it to finish, or pass a different --results-dir",
            ) from None
        try:
            _write_holder(lock_path, f"pid {os.getpid()}")
            # A writer killed mid-write leaves only its temporary file, never a half target: sweep those of the
            # benchmark's shared files now that no one else writes them. Files inside runs/ belong to the run's
            # own writer (which may be working right now) and are swept under its run lock.
            for stale in directory.rglob(".*.tmp"):
                if stale.is_file() and "runs" not in stale.relative_to(directory).parts:
                    with contextlib.suppress(OSError):
                        stale.unlink()
            yield
        finally:
            held.release()


def _host() -> str:
    return platform.node() or "this host"


def _holder_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name.removesuffix(".lock") + ".holder")


def _write_holder(lock_path: Path, text: str) -> None:
    with contextlib.suppress(OSError):
        _holder_path(lock_path).write_text(text)


def _acquire(lock_path: Path, wait: bool) -> FileLock | None:
    """``lock_path`` taken (release it when done), or None when another holds it and ``wait`` is False."""
    lock = FileLock(lock_path, timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


def _holder(lock_path: Path) -> str:
    try:
        return _holder_path(lock_path).read_text().strip() or "another process"
    except OSError:
        return "another process"


@contextlib.contextmanager
def _held(lock_path: Path, wait: bool) -> Iterator[str | None]:
    """Hold ``lock_path``: yields None once held; without ``wait``, who holds it when another does."""
    lock = _acquire(lock_path, wait)
    if lock is None:
        yield _holder(lock_path)
        return
    try:
        yield None
    finally:
        lock.release()


def _shared(configuration: Configuration) -> dict:
    return configuration.model_dump(mode="json", exclude={"budget": {"seed"}})


def _checked(name: str) -> str:
    if not SAFE_NAME.match(name) or ".." in name:
        raise HarnessInputError("results path", f"unsafe name {name!r}", "use letters, digits, '.', '_', '-'")
    return name


def _run_sort_key(path: Path) -> tuple[str, int]:
    seed = path.parent.name.removeprefix("seed-")
    return path.parent.parent.name, int(seed) if seed.lstrip("-").isdigit() else 0
