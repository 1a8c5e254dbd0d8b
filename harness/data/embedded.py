"""Data samples shipped inside the package, so a benchmark runs with neither the hub nor ``--data-dir``.

A sample lives in ``harness/data/samples/<benchmark>/``: ``train.csv`` and ``test.csv`` with the benchmark's
columns, ``SOURCE.md`` saying where every row came from and how it was drawn, and ``LICENSE.md``. It is
installed as package data, so a wheel install has it too. Only data whose licence allows redistribution is
shipped.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

KIND = "embedded sample"

# benchmark name -> the hub dataset it is a sample of. A benchmark gets the sample only when both match, so a
# user's own YAML that happens to reuse a name never silently reads another data set.
SAMPLES: dict[str, str] = {
    "dbpedia14": "fancyzhx/dbpedia_14",
}


def _root() -> Path:
    # A wheel installs unpacked, so the package's resources are plain files with a path.
    return Path(str(resources.files("harness.data") / "samples"))


def sample_dir(benchmark: str, hub_id: str | None = None) -> Path | None:
    """The folder of the sample shipped for a benchmark, or None when it ships none.

    Args:
        benchmark: the benchmark's name.
        hub_id: the benchmark's ``dataset.hub_id``; when given, it must be the data set the sample was drawn
            from.
    """
    if benchmark not in SAMPLES or (hub_id is not None and hub_id != SAMPLES[benchmark]):
        return None
    folder = _root() / benchmark
    return folder if (folder / "SOURCE.md").is_file() else None


def sample_of(data_dir: Path | str) -> str | None:
    """The benchmark whose shipped sample ``data_dir`` is (passed explicitly as ``--data-dir``), or None."""
    try:
        resolved = Path(data_dir).resolve()
    except OSError:
        return None
    for name in SAMPLES:
        folder = sample_dir(name)
        if folder is not None and folder.resolve() == resolved:
            return name
    return None


def available() -> list[str]:
    """Benchmarks that ship a sample."""
    return [name for name in SAMPLES if sample_dir(name) is not None]
