"""Load a benchmark's data (local CSV/Parquet or the hub), validate it, subsample it.

Everything downstream sees the same plain structure, whatever the source: texts, integer labels,
stable example ids and optional grouping columns (language, domain...).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness import embedded
from harness.config import BenchmarkSpec
from harness.errors import HarnessInputError


@dataclass(frozen=True)
class Split:
    """One split, ready for models: parallel arrays, one entry per example."""

    name: str
    texts: list[str]
    labels: np.ndarray
    ids: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    origin: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray) -> Split:
        index = np.asarray(index)
        return Split(
            name=self.name,
            texts=[self.texts[i] for i in index],
            labels=self.labels[index],
            ids=self.ids[index],
            groups={k: v[index] for k, v in self.groups.items()},
            origin=self.origin,
        )


@dataclass(frozen=True)
class BenchmarkData:
    train: Split
    eval: Split
    label_names: list[str]
    source: dict = field(default_factory=dict)


SUFFIXES = (".csv", ".parquet", ".tsv", ".jsonl")


def _find_file(data_dir: Path, split_name: str) -> Path:
    if not data_dir.is_dir():
        raise HarnessInputError(str(data_dir), "no such directory", "pass --data-dir a folder holding train/test files")
    for suffix in SUFFIXES:
        candidate = data_dir / f"{split_name}{suffix}"
        if candidate.exists():
            return candidate
    raise HarnessInputError(
        str(data_dir),
        f"no file for split '{split_name}' (looked for {', '.join(split_name + s for s in SUFFIXES)})",
        "put the split there or change 'splits' in the benchmark YAML",
    )


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        sep = "\t" if path.suffix == ".tsv" else ","
        # keep_default_na=False: a review that says "NA" or "null" is text, not a missing value.
        return pd.read_csv(path, sep=sep, encoding="utf-8", keep_default_na=False, na_values=[""], dtype=str)
    except UnicodeDecodeError as exc:
        raise HarnessInputError(
            f"{path}:{_first_undecodable_line(path)}",
            f"bytes that are not UTF-8 ({exc.reason})",
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
        ) from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise HarnessInputError(str(path), f"cannot parse: {str(exc).splitlines()[0]}", "check the file format") from None


def _first_undecodable_line(path: Path) -> int | str:
    # The decoder's own offset is relative to a parser chunk; the user needs the line in the file.
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return "?"


def file_sha256(path: Path) -> str:
    """The file's sha256; every job's fingerprint asks for it, so it is hashed once per (path, size, mtime)."""
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hub_reachable(timeout: float = 4.0) -> bool:
    """A name lookup here can hang for ~50 s when offline; probe it in a thread with a short timeout."""

    def probe() -> bool:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(probe)
        try:
            return future.result(timeout=timeout + 1)
        except Exception:
            return False


def _read_hub_split(spec: BenchmarkSpec, split_name: str) -> pd.DataFrame:
    ds = spec.dataset
    where = f"dataset '{ds.hub_id}' (benchmark {spec.name})"
    fix = (
        "pass --data-dir DIR with train/test CSV or Parquet files (see ../shared/data for the layout), "
        "or run where the hub is reachable; set HF_HUB_OFFLINE=1 to use only the local hub cache"
    )
    if os.environ.get("HF_HUB_OFFLINE") != "1" and not hub_reachable():
        raise HarnessInputError(where, "cannot reach the Hugging Face hub to download it", fix)
    try:
        import datasets

        if ds.configs_as_column is None:
            frame = datasets.load_dataset(ds.hub_id, ds.config, revision=ds.revision, split=split_name).to_pandas()
        else:
            # One config per group on the hub (e.g. per language): read each, tag its rows, stack them.
            column = ds.configs_as_column.column
            frame = pd.concat(
                [
                    datasets.load_dataset(ds.hub_id, config, revision=ds.revision, split=split_name)
                    .to_pandas()
                    .assign(**{column: value})
                    for value, config in ds.configs_as_column.configs.items()
                ],
                ignore_index=True,
            )
    except Exception as exc:  # noqa: BLE001 - any fetch failure gets the same explanation
        raise HarnessInputError(where, f"could not be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", fix) from None
    return frame.rename(columns=ds.rename)


def _to_split(frame: pd.DataFrame, spec: BenchmarkSpec, split_key: str, origin: str) -> tuple[Split, int]:
    """Validate columns and labels, build the text, drop (or reject) empty texts."""
    needed = [*spec.text_columns, spec.label_column, *spec.group_columns, *spec.train_filter]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise HarnessInputError(
            origin,
            f"missing column(s) {missing}; the file has {list(frame.columns)}",
            "rename the columns or set text_columns/label_column in the benchmark YAML",
        )
    ids = np.arange(len(frame))
    parts = frame[spec.text_columns].fillna("").astype(str)
    texts = parts.iloc[:, 0] if len(spec.text_columns) == 1 else parts.agg(spec.text_separator.join, axis=1)
    texts = texts.str.strip()
    # With several text columns the separator alone (": ") is not a text: empty means every part is empty.
    blank = parts.apply(lambda column: column.str.strip() == "").all(axis=1)

    raw = frame[spec.label_column]
    as_text = raw.astype(str).str.strip()
    missing_label = raw.isna() | as_text.isin(["", "nan", "NaN", "None"])
    if missing_label.any():
        first = int(np.flatnonzero(missing_label.to_numpy())[0])
        raise HarnessInputError(
            origin,
            f"{int(missing_label.sum())} row(s) have no label in column '{spec.label_column}' (first at data row {first + 1})",
            "label or remove those rows",
        )
    names = {n: i for i, n in enumerate(spec.label_names)}
    numeric = pd.to_numeric(as_text, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        labels = numeric.astype(np.int64).to_numpy()
        bad = (labels < 0) | (labels >= spec.num_labels)
        bad_values = sorted(set(labels[bad].tolist()))
    else:
        mapped = as_text.map(names)
        bad = mapped.isna().to_numpy()
        if numeric.notna().mean() > 0.5 and not as_text.isin(list(names)).any():
            # Mostly class indices with a few strays: name the strays, not every index.
            bad = (numeric.isna() | (numeric != numeric.round())).to_numpy()
        bad_values = sorted(set(as_text[bad].tolist()))
        labels = mapped.fillna(-1).astype(np.int64).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0]) + 1
        raise HarnessInputError(
            origin,
            f"{int(bad.sum())} label(s) outside the declared label set: {bad_values[:5]} (first at data row {first})",
            f"labels must be 0..{spec.num_labels - 1} or one of {spec.label_names}; fix the data or label_names",
        )

    empty = blank.to_numpy()
    if empty.any() and spec.empty_text == "error":
        raise HarnessInputError(
            origin,
            f"{int(empty.sum())} empty or whitespace-only text(s) (first at data row {int(np.flatnonzero(empty)[0]) + 1})",
            "remove them, or set empty_text: drop in the benchmark YAML",
        )
    keep = ~empty
    groups = {c: frame[c].astype(str).to_numpy()[keep] for c in dict.fromkeys([*spec.group_columns, *spec.train_filter])}
    split = Split(
        name=split_key,
        texts=texts[keep].tolist(),
        labels=labels[keep],
        ids=ids[keep],
        groups=groups,
        origin=origin,
    )
    return split, int(empty.sum())


def stratified_sample(split: Split, n: int, seed: int, flag: str) -> Split:
    """A fixed-seed sample of ``n`` rows keeping class proportions; the whole split when n equals its size."""
    if n > len(split):
        raise HarnessInputError(
            flag,
            f"asks for {n:,} rows but {split.origin} has {len(split):,} usable (after empty texts and filters)",
            f"use at most {len(split)} or drop the flag",
        )
    if n == len(split):
        return split
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(split.labels, return_counts=True)
    # Largest-remainder allocation: exact total n, proportions kept, deterministic for a seed.
    quotas = counts * n / len(split)
    take = np.floor(quotas).astype(int)
    for i in np.argsort(-(quotas - take), kind="stable")[: n - take.sum()]:
        take[i] += 1
    chosen = [rng.choice(np.flatnonzero(split.labels == c), size=k, replace=False) for c, k in zip(classes, take, strict=False)]
    index = np.sort(np.concatenate(chosen))
    return split.subset(index)


@functools.lru_cache(maxsize=1)
def _hub_reachable_once() -> bool:
    # Asked once per process: every job's fingerprint asks where its data comes from, and the answer must not
    # change between the fingerprint and the load.
    return hub_reachable()


def _in_local_hub_cache(hub_id: str) -> bool:
    """Whether a copy of the hub data set lies in the local caches (what ``HF_HUB_OFFLINE=1`` reads)."""
    from huggingface_hub import constants

    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE", Path(constants.HF_HOME) / "datasets"))
    return (Path(constants.HF_HUB_CACHE) / f"datasets--{hub_id.replace('/', '--')}").is_dir() or (
        datasets_cache / hub_id.replace("/", "___")
    ).is_dir()


def resolve_source(spec: BenchmarkSpec, data_dir: Path | None) -> tuple[str, Path | None]:
    """Where the data comes from: ``("local", dir)``, ``("embedded sample", dir)`` or ``("hub", None)``.

    ``--data-dir`` wins. Without it the hub is used when it can be: reachable, or (under ``HF_HUB_OFFLINE=1``)
    already in the local cache. Otherwise a benchmark that ships a sample inside the package reads that sample;
    one that ships none goes to the hub and fails there with its one-line error.
    """
    if data_dir is not None:
        return (embedded.KIND if embedded.sample_of(data_dir) else "local"), Path(data_dir)
    hub_id = spec.dataset.hub_id if spec.dataset is not None else None
    sample = embedded.sample_dir(spec.name, hub_id) if hub_id else None
    if sample is not None and hub_out_of_reach(hub_id):
        return embedded.KIND, sample
    return "hub", None


def hub_out_of_reach(hub_id: str) -> bool:
    """Whether the hub cannot serve this data set now: under ``HF_HUB_OFFLINE=1`` without a cached copy, or
    with no connection to the hub (probed once per process)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return not _in_local_hub_cache(hub_id)
    return not _hub_reachable_once()


def load_benchmark_data(
    spec: BenchmarkSpec,
    data_dir: Path | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
    seed: int = 42,
    train_filter: dict[str, list[str]] | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
) -> BenchmarkData:
    """Read train and the evaluation split, validate them and apply filters and limits.

    Args:
        spec: the benchmark.
        data_dir: a folder with one file per split (``train.csv``, ``test.parquet``...); when None, the hub, or
            the sample shipped inside the package where the hub is out of reach (see ``resolve_source``).
        limit_train, limit_test: stratified fixed-seed subsample sizes (the CLI flags); more rows than the
            split has is an error.
        max_train, max_test: the budget's caps: the same subsample, but a smaller split is used whole.
        seed: subsampling seed (the benchmark budget's seed, so every model sees the same rows).
        train_filter: keep train rows whose column value is listed (overrides the benchmark's).
    """
    asked_dir = data_dir
    kind, data_dir = resolve_source(spec, data_dir)
    source: dict = {"kind": kind}
    splits: dict[str, Split] = {}
    dropped: dict[str, int] = {}
    for key in ("train", spec.eval_split):
        split_name = spec.splits[key]
        if data_dir is not None:
            path = _find_file(Path(data_dir), split_name)
            frame = _read_table(path)
            origin = str(path)
            source[f"{key}_file"] = str(path)
            source[f"{key}_sha256"] = file_sha256(path)
        else:
            frame = _read_hub_split(spec, split_name)
            origin = f"{spec.dataset.hub_id}:{split_name}"
            source.update(hub_id=spec.dataset.hub_id, config=spec.dataset.config, revision=spec.dataset.revision or "main")
        splits[key], dropped[key] = _to_split(frame, spec, key, origin)
        if len(splits[key]) == 0:
            raise HarnessInputError(origin, "the split is empty (after dropping empty texts)", "check the file's contents")

    train, evaluation = splits["train"], splits[spec.eval_split]
    if kind == embedded.KIND:
        # Said wherever the source is shown: these scores come from a small sample, not the benchmark's data set.
        why = "passed as --data-dir" if asked_dir is not None else "the hub is out of reach and no --data-dir was given"
        source.update(
            data_dir=str(data_dir),
            note=f"{why}: read the {len(train):,}-train / {len(evaluation):,}-{spec.eval_split} sample shipped "
            f"inside the package (harness/samples/{data_dir.name}/SOURCE.md), not the full {spec.dataset.hub_id}; "
            "scores are not comparable with runs on the full data",
        )
    filters = train_filter if train_filter is not None else spec.train_filter
    for column, values in filters.items():
        if column not in train.groups:
            raise HarnessInputError("--train-filter", f"unknown column '{column}'", f"use one of {list(train.groups)}")
        train = train.subset(np.flatnonzero(np.isin(train.groups[column], values)))
        if len(train) == 0:
            present = sorted(set(splits["train"].groups[column].tolist()))
            raise HarnessInputError(
                "--train-filter", f"{column} in {values} leaves no train rows", f"choose values from {present}"
            )
    if limit_train is not None:
        train = stratified_sample(train, limit_train, seed, "--limit-train")
    elif max_train is not None:
        train = stratified_sample(train, min(max_train, len(train)), seed, "train_examples")
    classes = np.unique(train.labels)
    if len(classes) < 2:
        flag = "--limit-train" if limit_train is not None else "--train-filter" if filters else train.origin
        raise HarnessInputError(
            flag,
            f"the train split holds a single class ({spec.label_names[int(classes[0])]!r}) in {len(train)} row(s)",
            "a classifier needs at least two classes: train on more rows or check the labels",
        )
    if limit_test is not None:
        evaluation = stratified_sample(evaluation, limit_test, seed, "--limit-test")
    elif max_test is not None:
        evaluation = stratified_sample(evaluation, min(max_test, len(evaluation)), seed, "test_examples")
    source.update(
        dropped_empty_texts=dropped,
        train_filter=filters,
        train_rows=len(train),
        eval_rows=len(evaluation),
        eval_split=spec.eval_split,
    )
    return BenchmarkData(train=train, eval=evaluation, label_names=list(spec.label_names), source=source)


def data_identity(spec: BenchmarkSpec, data_dir: Path | None) -> dict:
    """What identifies the data without parsing it: file hashes for local data, hub id and revision otherwise."""
    # The same choice as the load makes, so a run on the shipped sample is never taken for one on the hub data.
    _, data_dir = resolve_source(spec, data_dir)
    if data_dir is None:
        ds = spec.dataset
        return {"hub_id": ds.hub_id, "config": ds.config, "revision": ds.revision or "main"}
    keys = dict.fromkeys(["train", spec.eval_split])
    return {key: file_sha256(_find_file(Path(data_dir), spec.splits[key])) for key in keys}
