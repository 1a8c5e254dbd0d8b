"""Shared fixtures: small hand-written datasets and an offline environment for every test."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# No test may touch the network: fail fast instead of waiting ~50 s for name resolution.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"


def write_csv(path: Path, rows: list[tuple], header: str = "text,label") -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header.split(","))
        writer.writerows(rows)
    return path


@pytest.fixture
def binary_dir() -> Path:
    return FIXTURES / "binary"


@pytest.fixture
def three_class_dir() -> Path:
    return FIXTURES / "three_class"


@pytest.fixture
def multilingual_dir() -> Path:
    return FIXTURES / "multilingual"


@pytest.fixture
def bench_dir() -> Path:
    return FIXTURES / "benchmarks"


def shared_data(name: str) -> Path:
    path = SHARED_DATA / name
    if not (path / "train.csv").exists():
        pytest.skip(f"real data not present at {path} (it lives beside the repository, in ../shared/data)")
    return path


def tiny_binary_cli_args(registry: Path, results: Path, *extra: str) -> list[str]:
    """CLI arguments for every model of ``registry`` on the binary fixture, with a short latency sample."""
    return [
        "--models", "all", "--registry", str(registry), "--benchmark", "tiny_binary",
        "--benchmarks-dir", str(FIXTURES / "benchmarks"), "--data-dir", str(FIXTURES / "binary"),
        "--results-dir", str(results), "--latency-samples", "3", *extra,
    ]


def run_path(results: Path, benchmark: str, model: str, seed: int = 42, variant: str | None = None) -> Path:
    """The store folder of one run, whatever configuration it belongs to (the test's store holds one)."""
    middle = f"{variant}/runs" if variant else "runs"
    found = sorted(Path(results).glob(f"{benchmark}/configs/*/{middle}/{model}/seed-{seed}"))
    assert len(found) == 1, f"expected one run of {model} seed {seed} under {results}/{benchmark}, found {found}"
    return found[0]


def has_runs(results: Path, benchmark: str) -> bool:
    """Whether any run of the benchmark reached the store."""
    return any(Path(results).glob(f"{benchmark}/configs/*/runs/*/seed-*"))


# Leaderboard columns that measure time or memory differ between any two runs; everything else must match.
TIMING_COLUMN = re.compile(r"\bms\b|/s\b| s$|MiB|RSS")
# What the machine was doing while a run was timed (harness.report.conditions): a fact of the moment, like timings.
CONDITION_NOTE = re.compile(r"(; )?(seeds? [\d, ]+: )?(measured while the machine was busy: .*? not comparable"
                            r"|(another run|other runs), .*?, trained at the same time)")


def without_condition_notes(cell: str) -> str:
    return CONDITION_NOTE.sub("", cell).removeprefix("; ")


def masked_models_table(board: Path) -> list[dict[str, str]]:
    """A leaderboard's 'Models' table as rows of cells, with the columns that measure time or memory masked."""
    lines = Path(board).read_text().splitlines()
    start = lines.index("## Models") + 2
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append({h: "<masked>" if TIMING_COLUMN.search(h) else without_condition_notes(c) if h == "notes" else c
                     for h, c in zip(header, cells, strict=True)})
    return rows
