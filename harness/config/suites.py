"""Which benchmarks a suite runs: a comma list (``--benchmark sst5,ag_news``) or a suite YAML (``--suite NAME|PATH``,
schema :class:`~harness.config.schema.SuiteSpec`), each benchmark loaded and its data folder resolved.

Running the suite and its summary are ``harness.suite``; this module only reads and checks what to run.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from harness.config.registry import benchmark_dirs, load_benchmark
from harness.config.schema import SAFE_NAME, BenchmarkSpec, SuiteSpec, read_yaml, validation_error_line
from harness.core.errors import HarnessInputError

SUITES_DIR = "suites"  # <results>/suites/<suite>/ and <benchmarks dir>/suites/<suite>.yaml


@dataclass
class SuiteMember:
    """One benchmark of a suite, resolved: what to hand to the pipeline and where its data lies."""

    benchmark: str  # a benchmark name or a YAML path, as ``--benchmark`` takes it
    spec: BenchmarkSpec
    data_dir: Path | None


@dataclass
class Suite:
    name: str
    members: list[SuiteMember]
    description: str = ""
    source: Path | None = None  # the suite YAML, if any

    @property
    def names(self) -> list[str]:
        return [m.spec.name for m in self.members]


@dataclass
class _Entries:
    """What the command line or the YAML lists, before any benchmark is loaded."""

    name: str
    entries: list[tuple[str, str | None]]  # (benchmark name or path, its data_dir)
    where: str  # how errors name the list
    base: Path | None = None  # the suite file's folder: relative paths start there
    root: Path | None = None  # the data root
    description: str = ""


def wants_suite(benchmark: str | None, suite: str | None) -> bool:
    """Whether the command line asks for a suite: ``--suite``, or a comma list in ``--benchmark``."""
    return suite is not None or (benchmark is not None and "," in benchmark)


def find_suite_file(name_or_path: str, benchmarks_dir: Path | None = None) -> Path:
    """A suite YAML by path, or by name in ``<benchmarks dir>/suites/`` (the shipped ones included)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.is_file():
            raise HarnessInputError(f"--suite '{name_or_path}'", "no such YAML file", "check the path")
        return candidate
    dirs = [d / SUITES_DIR for d in benchmark_dirs(benchmarks_dir)]
    for directory in dirs:
        if (directory / f"{name_or_path}.yaml").is_file():
            return directory / f"{name_or_path}.yaml"
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise HarnessInputError(
        f"--suite '{name_or_path}'",
        f"no such suite in {', '.join(map(str, dirs)) or 'any benchmarks folder'}",
        f"choose from {known} or pass a path to a suite YAML" if known else "pass a path to a suite YAML",
    )


def load_suite_file(path: Path) -> SuiteSpec:
    """Read and validate a suite YAML; any problem is one line naming the file, the entry and the field."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise HarnessInputError(
            str(path), "expected a mapping with 'name' and 'benchmarks'", "see benchmarks/suites/"
        )
    entries = raw.get("benchmarks") if isinstance(raw.get("benchmarks"), list) else []

    def entry_of(loc: list) -> str | None:
        if len(loc) >= 2 and loc[0] == "benchmarks" and isinstance(loc[1], int) and loc[1] < len(entries):
            item = entries[loc[1]]
            name = (
                item if isinstance(item, str) else item.get("benchmark") if isinstance(item, dict) else None
            )
            return f"benchmark '{name}'" if name else f"benchmarks[{loc[1]}]"
        return None

    try:
        return SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        raise validation_error_line(path, exc, entry_of, SuiteSpec) from None


def _from_file(suite: str, root: Path | None, benchmarks_dir: Path | None) -> _Entries:
    path = find_suite_file(suite, benchmarks_dir)
    parsed = load_suite_file(path)
    base = path.resolve().parent
    if root is None and parsed.data_root is not None:
        root = base / Path(parsed.data_root).expanduser()
    entries = [(e.benchmark, e.data_dir) for e in parsed.benchmarks]
    return _Entries(parsed.name, entries, str(path), base, root, parsed.description)


def _short_hash(payload) -> str:
    # The same 8 characters as harness.store.results.stable_hash(payload, 8), which this layer cannot import.
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _from_list(benchmark: str | None, root: Path | None) -> _Entries:
    names = [n.strip() for n in (benchmark or "").split(",")]
    if not all(names):
        raise HarnessInputError(
            f"--benchmark '{benchmark}'", "has an empty name in its comma list", "write e.g. --benchmark sst5,ag_news"
        )
    name = "+".join(names)
    if len(name) > 100 or not all(SAFE_NAME.match(n) for n in names):
        # Paths or long lists: a readable head and a hash keep the folder name short and unique.
        stems = (re.sub(r"[^A-Za-z0-9._-]", "_", Path(n).stem).strip("._-") or "b" for n in names)
        name = "+".join(stems)[:80] + "-" + _short_hash(names)
    return _Entries(name, [(n, None) for n in names], "--benchmark", root=root)


def _member(listed: _Entries, entry: str, entry_dir: str | None, benchmarks_dir: Path | None) -> SuiteMember:
    as_path = Path(entry).expanduser()
    looks_like_path = as_path.suffix in (".yaml", ".yml") or "/" in entry
    base = listed.base
    target = str(base / as_path) if looks_like_path and base is not None and not as_path.is_absolute() else entry
    spec, _ = load_benchmark(target, benchmarks_dir)
    if spec.name == SUITES_DIR:
        raise HarnessInputError(
            f"{listed.where} [benchmark '{spec.name}']",
            f"a benchmark named '{SUITES_DIR}' would share its results folder with the suite summaries",
            "rename the benchmark",
        )
    return SuiteMember(benchmark=target, spec=spec, data_dir=_member_data_dir(entry_dir, listed.root, base, spec))


def resolve_suite(
    *,
    suite: str | None,
    benchmark: str | None,
    data_root: Path | None,
    data_dir: Path | None,
    benchmarks_dir: Path | None = None,
) -> Suite:
    """The suite the command line names, every benchmark loaded and its data folder resolved.

    Data folders: ``--data-root`` (or the suite's ``data_root``, relative to the suite file) holds one folder
    per benchmark, named after it unless the suite entry gives ``data_dir`` (relative to the root, or to the
    suite file when there is no root). Without a root and without ``data_dir``, the data comes from the hub as
    for a single benchmark. ``--data-dir`` names one benchmark's files, so it does not apply to a suite.
    """
    if data_dir is not None:
        raise HarnessInputError(
            "--data-dir",
            "names one benchmark's files; a suite runs several",
            "pass --data-root DIR holding one folder per benchmark (e.g. DIR/sst5, DIR/ag_news)",
        )
    if suite is not None and benchmark is not None:
        raise HarnessInputError(
            "--suite", "cannot be combined with --benchmark", "list the benchmarks in the suite YAML"
        )
    root = Path(data_root).expanduser() if data_root is not None else None
    listed = _from_file(suite, root, benchmarks_dir) if suite is not None else _from_list(benchmark, root)
    members: list[SuiteMember] = []
    for entry, entry_dir in listed.entries:
        member = _member(listed, entry, entry_dir, benchmarks_dir)
        if member.spec.name in [m.spec.name for m in members]:
            raise HarnessInputError(
                f"{listed.where} [benchmark '{member.spec.name}']", "listed twice", "list each benchmark once"
            )
        members.append(member)
    return Suite(listed.name, members, listed.description, Path(listed.where) if suite else None)


def _member_data_dir(
    entry_dir: str | None, root: Path | None, base: Path | None, spec: BenchmarkSpec
) -> Path | None:
    if entry_dir is not None:
        folder = Path(entry_dir).expanduser()
        if folder.is_absolute():
            return folder
        return (root if root is not None else base) / folder
    return root / spec.name if root is not None else None
