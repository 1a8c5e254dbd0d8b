"""A run trains exactly the benchmark the command validated: ``--benchmark PATH`` is read once, and the job
carries that spec into the model's process, never a name to look up again in ``--benchmarks-dir``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import FIXTURES

REGISTRY = "models:\n  - {name: tfidf-logreg, family: tfidf, tfidf: {min_df: 1}}\n"


def benchmark_yaml(directory: Path, name: str, budget: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ndataset: {{hub_id: local/{name}}}\ntext_columns: [text]\nlabel_names: [negative, positive]\n"
        f"default_budget: tiny\nbudgets:\n  tiny: {budget}\n"
    )
    return path


def argv(tmp_path: Path, benchmark: Path, *extra: str) -> list[str]:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    return [
        "--models", "all", "--registry", str(registry), "--benchmark", str(benchmark),
        # the built-in tiny_binary.yaml lives here: a name lookup would find it instead of the given file
        "--benchmarks-dir", str(FIXTURES / "benchmarks"), "--data-dir", str(FIXTURES / "binary"),
        "--results-dir", str(tmp_path / "results"), "--latency-samples", "3", "--quiet", *extra,
    ]


def stored_results(results: Path) -> list[dict]:
    # Any store layout: the test must fail on what was trained, not on where it was written.
    return [json.loads(p.read_text()) for p in sorted(results.rglob("result.json"))]


@pytest.mark.parametrize("isolate", [True, False], ids=["isolated", "in-process"])
def test_benchmark_path_named_like_a_builtin_trains_with_the_given_yaml(tmp_path, isolate):
    """The given file says 20 train rows and 10 test rows; the built-in of the same name says all 48 and 24."""
    given = benchmark_yaml(tmp_path / "elsewhere", "tiny_binary",
                           "{epochs: 1, max_length: 32, batch_size: 8, train_examples: 20, test_examples: 10}")
    assert main(argv(tmp_path, given, *([] if isolate else ["--no-isolate"]))) == 0
    (result,) = stored_results(tmp_path / "results")
    assert result["status"] == "completed"
    assert (result["data"]["train_rows"], result["data"]["eval_rows"], result["metrics"]["n"]) == (20, 10, 10)
    assert (result["budget"]["train_examples"], result["budget"]["epochs"]) == (20, 1)
    rows = (tmp_path / "results" / "tiny_binary" / "leaderboard.csv").read_text().splitlines()
    header, row = rows[0].split(","), rows[1].split(",")
    assert (row[header.index("train_rows")], row[header.index("eval_rows")]) == ("20", "10")


def test_benchmark_path_with_a_new_name_runs(tmp_path):
    """A valid file whose name is in no benchmarks folder: it used to fail inside the run ('no such benchmark')
    after the lock was taken and the evaluation texts written."""
    given = benchmark_yaml(tmp_path / "elsewhere", "my_reviews", "{epochs: 1, max_length: 32, batch_size: 8}")
    assert main(argv(tmp_path, given)) == 0
    (result,) = stored_results(tmp_path / "results")
    assert (result["benchmark"], result["status"], result["data"]["train_rows"]) == ("my_reviews", "completed", 48)


def test_benchmark_path_with_a_new_name_that_fails_validation_writes_nothing(tmp_path, capsys):
    given = benchmark_yaml(tmp_path / "elsewhere", "my_reviews", "{epochs: 0, max_length: 32, batch_size: 8}")
    assert main(argv(tmp_path, given)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith(f"error: {given}") and "epochs" in err
    assert not (tmp_path / "results").exists()  # no lock taken, no evaluation texts, no configuration
