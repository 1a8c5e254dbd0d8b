"""Load a benchmark's data (local CSV/Parquet or the hub), validate it, subsample it.

Everything downstream sees the same plain structure, whatever the source: texts, integer labels,
stable example ids and optional grouping columns (language, domain...).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from harness.config.schema import BenchmarkSpec
from harness.core.errors import DataChanged, HarnessInputError
from harness.data import embedded


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
    try:
        return _probe_split_file(data_dir, split_name)
    except OSError as exc:  # e.g. a folder this user may not enter
        problem = f"cannot look inside it ({exc.strerror or type(exc).__name__})"
        raise HarnessInputError(str(data_dir), problem, "check the folder and its permissions") from None


def _probe_split_file(data_dir: Path, split_name: str) -> Path:
    if not data_dir.is_dir():
        problem = "is a file, not a directory" if data_dir.exists() else "no such directory"
        raise HarnessInputError(str(data_dir), problem, "pass --data-dir a folder holding train/test files")
    found = [path for path in (data_dir / f"{split_name}{suffix}" for suffix in SUFFIXES) if path.exists()]
    if len(found) > 1:
        # Picking one by suffix order would train on whichever file happens to come first, silently.
        raise HarnessInputError(
            str(data_dir),
            f"{' and '.join(p.name for p in found)} both hold split '{split_name}'",
            "keep one file per split (move the others out of the folder)",
        )
    if not found:
        raise HarnessInputError(
            str(data_dir),
            f"no file for split '{split_name}' (looked for {', '.join(split_name + s for s in SUFFIXES)})",
            "put the split there or change 'splits' in the benchmark YAML",
        )
    if not found[0].is_file():
        kind = "a directory" if found[0].is_dir() else "not a regular file"
        raise HarnessInputError(
            str(found[0]), f"is {kind}, not a data file", f"put the {split_name} split there as a file"
        )
    return found[0]


# What a file really is when its first bytes say so: (magic bytes, what it is, how to get plain UTF-8 text).
# Longer marks first, so UTF-32's FF FE 00 00 is not taken for UTF-16's FF FE.
_SIGNATURES = (
    (b"\xff\xfe\x00\x00", "UTF-32 text (little-endian byte-order mark)", "iconv -f utf-32 -t utf-8"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (big-endian byte-order mark)", "iconv -f utf-32 -t utf-8"),
    (b"\xff\xfe", "UTF-16 text (little-endian byte-order mark)", "iconv -f utf-16 -t utf-8"),
    (b"\xfe\xff", "UTF-16 text (big-endian byte-order mark)", "iconv -f utf-16 -t utf-8"),
    (b"\x1f\x8b", "gzip-compressed", "decompress it first: gunzip -c FILE > plain file"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first: unxz"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first: unzstd"),
    (b"BZh", "bzip2-compressed", "decompress it first: bunzip2"),
    (b"PK\x03\x04", "a zip archive (or an .xlsx/.ods workbook)", "unzip it, or export the sheet as UTF-8 CSV"),
    (b"PAR1", "a Parquet file", "give it the .parquet suffix"),
)


def sniff_bytes(head: bytes, parquet: bool = False) -> tuple[str, str] | None:
    """(what the data is, how to fix it) when its first bytes show it is not plain UTF-8 text (or Parquet)."""
    for magic, what, fix in _SIGNATURES:
        if head.startswith(magic) and not (magic == b"PAR1" and parquet):
            if magic == b"BZh" and not head[3:4].isdigit():
                continue  # a text that merely starts with "BZh"
            return what, fix
    if not parquet and b"\x00" in head:
        return "binary or UTF-16/32 text without a byte-order mark (it holds NUL bytes)", "save it as UTF-8 text"
    if parquet and head and not head.startswith(b"PAR1"):
        try:
            head.decode("utf-8")
            what = "UTF-8 text"
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of the sample is still text.
            what = "UTF-8 text" if exc.start >= len(head) - 3 else "an unknown format (no PAR1 mark)"
        return what, "give it the suffix of its real format (.csv, .tsv, .jsonl)"
    return None


def _read_table(path: Path) -> pd.DataFrame:
    return _read_table_hashed(path)[0]


def _read_table_hashed(path: Path) -> tuple[pd.DataFrame, str]:
    """The table and the sha256 of the very bytes it was parsed from (read once: a file replaced meanwhile
    cannot give one version's hash and another's rows)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        digest = hashlib.sha256(raw).hexdigest()
        sniffed = sniff_bytes(raw[:4096], parquet=path.suffix == ".parquet")
        if sniffed is not None:
            what, fix = sniffed
            expected = "Parquet" if path.suffix == ".parquet" else "UTF-8 text"
            raise HarnessInputError(str(path), f"is {what}, not {expected}", fix)
        buffer = io.BytesIO(raw)
        del raw
        if path.suffix == ".parquet":
            return pd.read_parquet(buffer), digest
        if path.suffix == ".jsonl":
            return pd.read_json(buffer, lines=True, encoding="utf-8-sig"), digest
        sep = "\t" if path.suffix == ".tsv" else ","
        # keep_default_na=False: a review that says "NA" or "null" is text, not a missing value.
        # utf-8-sig: a byte-order mark from a spreadsheet export is not part of the first column's name.
        frame = pd.read_csv(buffer, sep=sep, encoding="utf-8-sig", keep_default_na=False, na_values=[""], dtype=str)
        return frame, digest
    except UnicodeDecodeError as exc:
        raise HarnessInputError(
            f"{path}:{_first_undecodable_line(path)}",
            f"bytes that are not UTF-8 ({exc.reason})",
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 for Latin-1 text)",
        ) from None
    except OSError as exc:
        problem = f"cannot read it ({exc.strerror or type(exc).__name__})"
        raise HarnessInputError(str(path), problem, "check the file and its permissions") from None
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
    """The file's sha256; every job's fingerprint asks for it, so it is hashed once per version of the file
    (path, size, modification and change times, inode: a file rewritten or replaced is hashed again)."""
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int, ctime_ns: int = 0, inode: int = 0) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hub_reachable(timeout: float = 4.0) -> bool:
    """Whether the hub answers (``harness.core.hub``: huggingface_hub's endpoint, offline flag and proxies)."""
    from harness.core import hub

    return hub.reachable(timeout)


def _hub_dataset(spec: BenchmarkSpec):
    """The benchmark's hub dataset; a benchmark without ``dataset.hub_id`` has local data only."""
    if not spec.dataset.hub_id:
        raise HarnessInputError(
            f"benchmark '{spec.name}'",
            "has no dataset.hub_id, so its data can only come from a local folder",
            "pass --data-dir DIR holding its train/test files (or add dataset.hub_id to the benchmark YAML)",
        )
    return spec.dataset


def _read_hub_split(spec: BenchmarkSpec, split_name: str, commit: str | None = None) -> pd.DataFrame:
    """One split from the hub, at ``commit`` (the one the configuration's fingerprint recorded) when known."""
    ds = _hub_dataset(spec)
    revision = commit or ds.revision
    where = f"dataset '{ds.hub_id}' (benchmark {spec.name})"
    fix = (
        "pass --data-dir DIR with train/test CSV or Parquet files (see ../shared/data for the layout), "
        "or run where the hub is reachable; set HF_HUB_OFFLINE=1 to use only the local hub cache"
    )
    from harness.core import hub

    if not hub.offline() and not hub_reachable():
        raise HarnessInputError(where, "cannot reach the Hugging Face hub to download it", fix)
    try:
        import datasets

        if ds.configs_as_column is None:
            frame = datasets.load_dataset(ds.hub_id, ds.config, revision=revision, split=split_name).to_pandas()
        else:
            # One config per group on the hub (e.g. per language): read each, tag its rows, stack them.
            column = ds.configs_as_column.column
            frame = pd.concat(
                [
                    datasets.load_dataset(ds.hub_id, config, revision=revision, split=split_name)
                    .to_pandas()
                    .assign(**{column: value})
                    for value, config in ds.configs_as_column.configs.items()
                ],
                ignore_index=True,
            )
    except Exception as exc:  # noqa: BLE001 - any fetch failure gets the same explanation
        raise HarnessInputError(where, f"could not be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", fix) from None
    return frame.rename(columns=ds.rename)


def _check_scalar_column(values: pd.Series, column: str, origin: str) -> None:
    """Refuse a column of lists, mappings or bytes (Parquet and JSONL can hold them): its text would be a repr."""
    if values.dtype != object:
        return
    containers = (list, tuple, set, dict, np.ndarray, bytes, bytearray)
    nested = values.map(lambda v: isinstance(v, containers)).to_numpy()
    if nested.any():
        first = int(np.flatnonzero(nested)[0])
        value = values.iloc[first]
        kind = "mappings" if isinstance(value, dict) else "bytes" if isinstance(value, (bytes, bytearray)) else "lists"
        raise HarnessInputError(
            origin,
            f"column '{column}' holds {kind}, not single values "
            f"({int(nested.sum())} row(s), first at data row {first + 1})",
            "store one string (or label) per cell: join or pick the part you mean, "
            "or choose another column in the benchmark YAML",
        )


_INTEGER = re.compile(r"^[+-]?\d+(\.0*)?$")


def _label_text(value) -> str:
    # A label as its user wrote it: 1 from JSONL and 1.0 from a float Parquet column both read "1".
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value)) if abs(value) < 2**53 else repr(float(value))
    return str(value).strip()


def _as_integer(text: str) -> int | None:
    # Python ints have no overflow: a label 10**23 is reported as itself, not as a wrapped int64.
    return int(text.split(".")[0]) if _INTEGER.match(text) else None


def label_indices(raw: pd.Series, spec: BenchmarkSpec, origin: str) -> np.ndarray:
    """The class index of every label, by one rule (``LABEL_RULE``); any value it cannot place is an error.

    Labels are class indices ``0..K-1`` in ``label_names`` order, or label names (when at least as many values
    are names as are valid indices).
    When any label name looks like an integer (``label_names: ['1', '0']``), a value "1" could be either a
    name or a position; then labels are matched by name only, so data label 1 is always class "1".
    """
    text = raw.map(_label_text)
    # The spellings of a missing value mean missing, unless the benchmark declares one of them as a class name.
    absent = [t for t in ("", "nan", "NaN", "None", "<NA>") if t not in spec.label_names]
    missing_label = raw.isna().to_numpy() | text.isin(absent).to_numpy()
    if missing_label.any():
        first = int(np.flatnonzero(missing_label)[0])
        raise HarnessInputError(
            origin,
            f"{int(missing_label.sum())} row(s) have no label in column '{spec.label_column}' "
            f"(first at data row {first + 1})",
            "label or remove those rows",
        )
    names = {n: i for i, n in enumerate(spec.label_names)}
    as_name = text.map(names)
    # A plain list: pandas would turn a None among ints into NaN and a huge int into a float.
    as_index = [_as_integer(t) for t in text]
    valid_index = np.array([v is not None and 0 <= v < spec.num_labels for v in as_index], dtype=bool)
    numeric_names = any(_INTEGER.match(n.strip()) for n in spec.label_names)
    by_name = numeric_names or as_name.notna().sum() >= valid_index.sum()
    bad = as_name.isna().to_numpy() if by_name else ~valid_index
    if bad.any():
        values = sorted(
            {v if v is not None else t for t, v, b in zip(text, as_index, bad, strict=True) if b},
            key=lambda v: (isinstance(v, str), v),
        )
        first = int(np.flatnonzero(bad)[0]) + 1
        if numeric_names:
            fix = (
                f"label_names {spec.label_names} look like integers, so labels are matched by name only, never by "
                "position: every label must be one of them; fix the data or label_names"
            )
        else:
            fix = (
                f"labels must be class indices 0..{spec.num_labels - 1} or names from {spec.label_names} "
                "(read as names when most values are names); fix the data or label_names"
            )
        raise HarnessInputError(
            origin,
            f"{int(bad.sum())} label(s) outside the declared label set: {values[:5]} (first at data row {first})",
            fix,
        )
    chosen = as_name if by_name else as_index
    return np.fromiter(chosen, dtype=np.int64, count=len(chosen))


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
    for column in dict.fromkeys(needed):
        _check_scalar_column(frame[column], column, origin)
    ids = np.arange(len(frame))
    parts = frame[spec.text_columns].fillna("").astype(str)
    texts = parts.iloc[:, 0] if len(spec.text_columns) == 1 else parts.agg(spec.text_separator.join, axis=1)
    texts = texts.str.strip()
    # With several text columns the separator alone (": ") is not a text: empty means every part is empty.
    blank = parts.apply(lambda column: column.str.strip() == "").all(axis=1)

    labels = label_indices(frame[spec.label_column], spec, origin)

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
    """Whether a copy of the hub data set lies in the local caches (what ``HF_HUB_OFFLINE=1`` reads): the hub
    cache as huggingface_hub scans it, or the ``datasets`` library's own cache."""
    from huggingface_hub import constants

    from harness.core import hub

    if hub.cached_repo(hub_id, "dataset") is not None:
        return True
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE", Path(constants.HF_HOME) / "datasets"))
    return (datasets_cache / hub_id.replace("/", "___")).is_dir()


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
    from harness.core import hub

    if hub.offline():
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
    test_seed: int | None = None,
    identity: dict | None = None,
    hold_out: float | None = None,
    evaluate_on: Literal["eval", "validation"] = "eval",
) -> BenchmarkData:
    """Read train and the evaluation split, validate them and apply filters and limits.

    Args:
        spec: the benchmark.
        data_dir: a folder with one file per split (``train.csv``, ``test.parquet``...); when None, the hub, or
            the sample shipped inside the package where the hub is out of reach (see ``resolve_source``).
        limit_train, limit_test: stratified fixed-seed subsample sizes (the CLI flags); more rows than the
            split has is an error.
        max_train, max_test: the budget's caps: the same subsample, but a smaller split is used whole.
        seed: the train subsample's seed (a run's seed, so each seed draws its own rows; or the budget's
            seed, so every seed sees the same rows).
        test_seed: the evaluation subsample's seed (default ``seed``); every run of a comparison must be
            scored on the same examples, so callers pass the budget's seed here.
        train_filter: keep train rows whose column value is listed (overrides the benchmark's).
        identity: the data fingerprint of the configuration being run (``data_identity``): hub data is read at
            the commit it recorded, not at whatever its revision names now. Local files are hashed as read
            (``source["train_sha256"]``...), for ``check_data_identity``.
        hold_out: a tuned budget's validation share: the validation rows (the benchmark's validation split, else
            this share of train carved with ``seed``) are kept out of train; ``source["validation"]`` says which.
        evaluate_on: ``validation`` (a tuning trial): the validation rows become the evaluation split (the
            benchmark's is read and sampled as for every run, so the train rows are the same, never scored).
    """
    asked_dir = data_dir
    kind, data_dir = resolve_source(spec, data_dir)
    source: dict = {"kind": kind}
    keys = ["train", spec.eval_split, *(["validation"] if hold_out is not None and has_validation_split(spec) else [])]
    splits, dropped = _read_splits(spec, data_dir, source, identity, keys)
    train, evaluation = splits["train"], splits[spec.eval_split]
    # What a sample is drawn from, so a card or a report can say "300 of 8,544 rows".
    source.update(train_split_rows=len(train), eval_split_rows=len(evaluation))
    if kind == embedded.KIND:
        source.update(data_dir=str(data_dir), note=_sample_note(spec, asked_dir, data_dir, train, evaluation))
    # The evaluation sample first: the leakage counted is that of the texts actually scored.
    eval_seed = test_seed if test_seed is not None else seed
    if limit_test is not None:
        evaluation = stratified_sample(evaluation, limit_test, eval_seed, "--limit-test")
    elif max_test is not None:
        evaluation = stratified_sample(evaluation, min(max_test, len(evaluation)), eval_seed, "test_examples")
    train, source["leakage"] = _leakage(train, evaluation, spec)
    filters = train_filter if train_filter is not None else spec.train_filter
    train = _filter_train(train, filters)
    if limit_train is not None:
        train = stratified_sample(train, limit_train, seed, "--limit-train")
    elif max_train is not None:
        train = stratified_sample(train, min(max_train, len(train)), seed, "train_examples")
    _require_two_classes(train, spec, "--limit-train" if limit_train is not None else "--train-filter" if filters else None)
    if hold_out is not None:
        # Read and sampled like any run's (the same train rows, the same leakage dropped), but a trial is
        # scored on the validation rows only.
        train, validation = _hold_out_validation(train, splits.get("validation"), hold_out, seed, source)
        _require_two_classes(train, spec, "validation_share")
        if evaluate_on == "validation":
            evaluation = validation
    source.update(
        classes_without_train_rows=untrained_classes(train.labels, evaluation.labels, spec.label_names),
        dropped_empty_texts=dropped,
        train_filter=filters,
        train_rows=len(train),
        eval_rows=len(evaluation),
        eval_split="validation" if evaluate_on == "validation" else spec.eval_split,
    )
    return BenchmarkData(train=train, eval=evaluation, label_names=list(spec.label_names), source=source)


def has_validation_split(spec: BenchmarkSpec) -> bool:
    """Whether tuning trials are scored on the benchmark's own validation split (one it has and does not report
    on); otherwise they are scored on a share of train."""
    return "validation" in spec.splits and spec.eval_split != "validation"


def _hold_out_validation(train: Split, split: Split | None, share: float, seed: int, source: dict) -> tuple[Split, Split]:
    """Train without the validation rows, and those rows: the benchmark's validation split as it is, else a
    stratified ``share`` of train drawn with ``seed`` (the same rows for every trial of a seed, never a test row)."""
    if split is not None:
        source["validation"] = f"the benchmark's validation split ({len(split):,} rows)"
        return train, split
    n = max(len(np.unique(train.labels)), round(share * len(train)))
    validation = stratified_sample(train, n, seed, "validation_share")
    rest = train.subset(np.flatnonzero(~np.isin(train.ids, validation.ids)))
    source["validation"] = f"a stratified {share:.0%} of train ({len(validation):,} rows), carved per seed"
    return rest, validation


def untrained_classes(train_labels, eval_labels, label_names: list[str]) -> dict[str, int]:
    """The classes the train rows (as trained on: after filters and sampling) never show, each with its rows in
    the evaluation split (0: named in ``label_names`` only): no model can learn them, and the runs still finish."""
    trained = set(np.unique(np.asarray(train_labels)).tolist())
    scored = np.bincount(np.asarray(eval_labels, dtype=np.int64), minlength=len(label_names))
    return {name: int(scored[k]) for k, name in enumerate(label_names) if k not in trained}


def untrained_warning(name: str, eval_rows: int, eval_split: str) -> str:
    """The line a leaderboard (``name`` escaped) and the run's stderr give a class without train rows (``untrained_classes``)."""
    where = (f"{eval_rows:,} row(s) of the '{eval_split}' split hold it" if eval_rows
             else f"nor has the '{eval_split}' split: it is named in label_names only")
    return f"class '{name}' has no training rows ({where}): no model learned it; check the data or label_names"


def normalized_text(text: str) -> str:
    """A text as leakage compares it: Unicode NFKC, every run of whitespace one space (none at the ends), casefolded."""
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def _leakage(train: Split, evaluation: Split, spec: BenchmarkSpec) -> tuple[Split, dict]:
    """The evaluation texts that also occur in the whole train split (before filters and sampling), counted overall
    and per group value; with ``dedupe: drop_from_train`` the train split without the rows holding them."""
    train_keys = [normalized_text(t) for t in train.texts]
    eval_keys = [normalized_text(t) for t in evaluation.texts]
    seen = set(train_keys) & set(eval_keys)
    in_train = np.array([k in seen for k in eval_keys], dtype=bool)
    matching = np.array([k in seen for k in train_keys], dtype=bool)
    by_group = {
        column: {str(v): int(in_train[values == v].sum()) for v in sorted(set(values.tolist()))}
        for column in spec.group_columns
        if (values := evaluation.groups.get(column)) is not None
    }
    record = {
        "eval_texts": len(evaluation), "in_train": int(in_train.sum()), "by_group": by_group,
        "train_rows_matching": int(matching.sum()), "dedupe": spec.dedupe, "dropped_from_train": 0,
    }
    if spec.dedupe == "drop_from_train" and matching.any():
        if matching.all():
            raise HarnessInputError(train.origin, "dedupe: drop_from_train removes every train row (all of them "
                                    "occur in the evaluation split)", "check the splits, or set dedupe: keep")
        record["dropped_from_train"] = int(matching.sum())
        train = train.subset(np.flatnonzero(~matching))
    return train, record


def _read_splits(spec: BenchmarkSpec, data_dir: Path | None, source: dict, identity: dict | None,
                 keys: list[str] | None = None) -> tuple[dict[str, Split], dict[str, int]]:
    """Train and the evaluation split, read from ``data_dir`` (each file hashed as read) or the hub (at the commit
    ``identity`` recorded), each validated and not empty; where they came from goes into ``source``. Returns the
    splits and the empty texts dropped from each."""
    splits: dict[str, Split] = {}
    dropped: dict[str, int] = {}
    for key in keys or ("train", spec.eval_split):
        split_name = spec.splits[key]
        if data_dir is not None:
            path = _find_file(Path(data_dir), split_name)
            frame, digest = _read_table_hashed(path)
            origin = str(path)
            source[f"{key}_file"] = str(path)
            source[f"{key}_sha256"] = digest
        else:
            commit = (identity or {}).get("commit")
            frame = _read_hub_split(spec, split_name, commit)
            origin = f"{spec.dataset.hub_id}:{split_name}"
            source.update(hub_id=spec.dataset.hub_id, config=spec.dataset.config, revision=spec.dataset.revision or "main",
                          commit=commit)
        splits[key], dropped[key] = _to_split(frame, spec, key, origin)
        if len(splits[key]) == 0:
            raise HarnessInputError(origin, "the split is empty (after dropping empty texts)", "check the file's contents")
    return splits, dropped


def _sample_note(spec: BenchmarkSpec, asked_dir: Path | None, data_dir: Path, train: Split,
                 evaluation: Split | None) -> str:
    """Said wherever the source is shown: these scores come from a small sample, not the benchmark's data set."""
    why = "passed as --data-dir" if asked_dir is not None else "the hub is out of reach and no --data-dir was given"
    return (
        f"{why}: read the {len(train):,}-train{f' / {len(evaluation):,}-{spec.eval_split}' if evaluation else ''} sample shipped "
        f"inside the package (harness/data/samples/{data_dir.name}/SOURCE.md), not the full {spec.dataset.hub_id}; "
        "scores are not comparable with runs on the full data"
    )


def _filter_train(train: Split, filters: dict[str, list[str]]) -> Split:
    """The train rows whose value in each filtered column is listed; a filter that leaves none is an error."""
    whole = train
    for column, values in filters.items():
        if column not in train.groups:
            raise HarnessInputError("--train-filter", f"unknown column '{column}'", f"use one of {list(train.groups)}")
        train = train.subset(np.flatnonzero(np.isin(train.groups[column], values)))
        if len(train) == 0:
            present = sorted(set(whole.groups[column].tolist()))
            raise HarnessInputError(
                "--train-filter", f"{column} in {values} leaves no train rows", f"choose values from {present}"
            )
    return train


def _require_two_classes(train: Split, spec: BenchmarkSpec, flag: str | None) -> None:
    """A classifier needs two classes: one left after sampling or filtering is named with the flag that did it."""
    classes = np.unique(train.labels)
    if len(classes) < 2:
        raise HarnessInputError(
            flag or train.origin,
            f"the train split holds a single class ({spec.label_names[int(classes[0])]!r}) in {len(train)} row(s)",
            "a classifier needs at least two classes: train on more rows or check the labels",
        )


def data_identity(spec: BenchmarkSpec, data_dir: Path | None, tuned: bool = False) -> dict:
    """What identifies the data without parsing it: file hashes for local data, hub id and revision otherwise.

    ``tuned``: the validation split the trials are scored on is hashed too (only then: untuned ids stay)."""
    # The same choice as the load makes, so a run on the shipped sample is never taken for one on the hub data.
    _, data_dir = resolve_source(spec, data_dir)
    if data_dir is None:
        from harness.core import hub

        ds = _hub_dataset(spec)
        revision = ds.revision or "main"
        # The commit the revision points at now: an upstream change of the data is a new configuration.
        return {"hub_id": ds.hub_id, "config": ds.config, "revision": revision,
                "commit": hub.resolve_revision(ds.hub_id, revision, "dataset")}
    identity = {}
    for key in dict.fromkeys(["train", spec.eval_split, *(["validation"] if tuned and has_validation_split(spec) else [])]):
        path = _find_file(Path(data_dir), spec.splits[key])
        try:
            identity[key] = file_sha256(path)
        except OSError as exc:
            problem = f"cannot read it ({exc.strerror or type(exc).__name__})"
            raise HarnessInputError(str(path), problem, "check the file and its permissions") from None
    return identity


def check_data_identity(source: dict, identity: dict, label: str) -> None:
    """Raise ``DataChanged`` when the files a run read are not the ones its configuration was made from.

    ``source`` is ``BenchmarkData.source`` (each file hashed as it was read), ``identity`` the configuration's
    ``data``. Hub data needs no check here: it is read at the commit the identity recorded.
    """
    for key, recorded in identity.items():
        read = source.get(f"{key}_sha256")
        if read is None or read == recorded:
            continue
        raise DataChanged(
            source.get(f"{key}_file", key),
            f"changed since configuration {label} was made from it (sha256 {read[:12]} now, {str(recorded)[:12]} "
            "then); this run would file numbers from other data under that configuration, so it is not run",
            "rerun the command to make a new configuration for the data as it is now (or restore the file)",
        )
