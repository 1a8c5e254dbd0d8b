"""The model registry and the benchmark catalogue: load, validate, select by name."""

from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import ValidationError

from harness.config.schema import BenchmarkSpec, ModelSpec, RegistryFile, read_yaml, validation_error_line
from harness.core.errors import HarnessInputError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# A wheel carries the default registry and benchmark YAMLs inside the package (setup.py copies them there);
# a source checkout has them at the top of the project, where the design card puts them.
_PACKAGED = Path(__file__).resolve().parents[1] / "defaults"
REGISTRY_FILE = "models_registry.yaml"
BENCHMARKS_DIR = "benchmarks"


def packaged_registry() -> Path:
    inside = _PACKAGED / REGISTRY_FILE
    return inside if inside.exists() else PROJECT_ROOT / REGISTRY_FILE


def packaged_benchmarks_dir() -> Path:
    inside = _PACKAGED / BENCHMARKS_DIR
    return inside if inside.is_dir() else PROJECT_ROOT / BENCHMARKS_DIR


def default_registry_path() -> Path:
    """``models_registry.yaml`` in the working directory when there is one, else the one shipped with the harness."""
    local = Path.cwd() / REGISTRY_FILE
    return local if local.is_file() else packaged_registry()


def benchmark_dirs(directory: Path | None = None) -> list[Path]:
    """Where benchmark YAMLs are looked up, first match wins: ``--benchmarks-dir`` alone when given, else
    ``./benchmarks`` in the working directory, then the benchmarks shipped with the harness."""
    if directory is not None:
        return [Path(directory)]
    dirs = [Path.cwd() / BENCHMARKS_DIR, packaged_benchmarks_dir()]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


# Kept for callers that want "the defaults as shipped" (tests, scripts).
DEFAULT_REGISTRY = packaged_registry()
DEFAULT_BENCHMARKS_DIR = packaged_benchmarks_dir()


def _did_you_mean(name: str, choices: list[str]) -> str:
    # Compare against each choice's prefix too, so 'bert-bse' finds 'bert-base-uncased' rather than 'roberta-base'.
    def score(choice: str) -> float:
        whole = difflib.SequenceMatcher(None, name, choice).ratio()
        prefix = difflib.SequenceMatcher(None, name, choice[: len(name) + 1]).ratio()
        return max(whole, prefix)

    best = max(choices, key=score, default=None)
    if best is not None and score(best) >= 0.6:
        return f"did you mean '{best}'?"
    return f"choose from: {', '.join(choices)}"


def load_registry(path: Path | None = None) -> dict[str, ModelSpec]:
    """Read and validate the registry; returns models by name, in file order.

    Each entry's ``family`` and ``params`` are checked by the family table that importing ``harness.models``
    registers (every command imports it first); without it they are checked when the model is built.
    """
    path = Path(path) if path is not None else default_registry_path()
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise HarnessInputError(str(path), "expected a mapping with a 'models' list", "start the file with 'models:'")
    raw_models = raw.get("models") if isinstance(raw.get("models"), list) else []

    def entry_of(loc: list) -> str | None:
        if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int) and loc[1] < len(raw_models):
            item = raw_models[loc[1]]
            name = item.get("name") if isinstance(item, dict) else None
            return f"model '{name}'" if name else f"models[{loc[1]}]"
        return None

    try:
        parsed = RegistryFile.model_validate(raw)
    except ValidationError as exc:
        raise validation_error_line(path, exc, entry_of, RegistryFile) from None
    models: dict[str, ModelSpec] = {}
    for spec in parsed.models:
        if spec.name in models:
            raise HarnessInputError(
                f"{path} [model '{spec.name}']", "duplicate model name", "give each entry a unique 'name'"
            )
        models[spec.name] = spec
    return models


def select_models(registry: dict[str, ModelSpec], selection: str, registry_path: Path | None = None) -> list[ModelSpec]:
    """Expand ``all`` or a comma-separated list of names; unknown names get a did-you-mean."""
    if selection.strip() == "all":
        return list(registry.values())
    names = [n.strip() for n in selection.split(",") if n.strip()]
    if not names:
        raise HarnessInputError("--models", "no model named", "pass 'all' or names such as 'tfidf-logreg'")
    chosen: list[ModelSpec] = []
    for name in names:
        if name not in registry:
            raise HarnessInputError(
                f"--models '{name}'", f"not in {registry_path}", _did_you_mean(name, list(registry))
            )
        if registry[name] not in chosen:
            chosen.append(registry[name])
    return chosen


def list_benchmarks(directory: Path | None = None) -> list[str]:
    return sorted({p.stem for d in benchmark_dirs(directory) for p in d.glob("*.yaml")})


def load_benchmark(name_or_path: str, directory: Path | None = None) -> tuple[BenchmarkSpec, Path]:
    """Load a benchmark by name (``<benchmarks dir>/<name>.yaml``) or by path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.is_file():
            raise HarnessInputError(f"--benchmark '{name_or_path}'", "no such YAML file", "check the path")
        path = candidate
    else:
        dirs = benchmark_dirs(directory)
        found = [d / f"{name_or_path}.yaml" for d in dirs if (d / f"{name_or_path}.yaml").is_file()]
        if not found:
            raise HarnessInputError(
                f"--benchmark '{name_or_path}'",
                f"no such benchmark in {', '.join(map(str, dirs)) or 'any benchmarks folder'}",
                _did_you_mean(name_or_path, list_benchmarks(directory)),
            )
        path = found[0]
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise HarnessInputError(str(path), "expected a mapping of benchmark fields", "see benchmarks/amazon_polarity.yaml")
    try:
        # Paths inside it (an extra metric's module) are relative to the file.
        spec = BenchmarkSpec.model_validate(raw, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise validation_error_line(
            path, exc, lambda loc: f"benchmark '{raw.get('name', path.stem)}'", BenchmarkSpec
        ) from None
    return spec, path
