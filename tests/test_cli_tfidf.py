"""The CLI end to end with the TF-IDF baseline on the hand-written fixtures: store, leaderboard, skip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.store.results_store import ResultsStore
from tests.conftest import ROOT, has_runs, run_path


def run_cli(*args: str) -> int:
    return main(list(args))


def bench_args(bench_dir: Path, name: str, data_dir: Path, results: Path) -> list[str]:
    return [
        "--benchmark", name, "--benchmarks-dir", str(bench_dir), "--data-dir", str(data_dir),
        "--results-dir", str(results), "--quiet", "--no-isolate",
    ]


def test_tfidf_end_to_end_writes_store_and_leaderboard(tmp_path, bench_dir, three_class_dir):
    code = run_cli("--models", "tfidf-logreg", *bench_args(bench_dir, "tiny_three", three_class_dir, tmp_path))
    assert code == 0
    run_dir = run_path(tmp_path, "tiny_three", "tfidf-logreg", 42)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed"
    assert result["metrics"]["n"] == 24
    assert set(result["metrics"]["per_class"]) == {"sports", "tech", "food"}
    exercise = json.loads((run_dir / "evaluation_metrics.json").read_text())
    assert set(exercise) == {"accuracy", "f1", "precision", "recall", "average"}
    assert exercise["accuracy"] == result["metrics"]["accuracy"]
    # the topics are separable by vocabulary: the baseline must learn them
    assert result["metrics"]["accuracy"] >= 0.9
    preds = pd.read_csv(run_dir / "predictions.csv")
    assert list(preds.columns) == ["id", "label", "prob_0", "prob_1", "prob_2"]
    assert len(preds) == 24 and preds[["prob_0", "prob_1", "prob_2"]].sum(axis=1).round(4).eq(1).all()
    for key in ("harness_version", "git_commit", "libraries"):
        assert key in result["environment"]
    assert result["budget"]["seed"] == 42 and result["data"]["train_rows"] == 48
    board = (tmp_path / "tiny_three" / "leaderboard.md").read_text()
    assert "| 1      | tfidf-logreg |" in board
    assert "F1 sports" in board and "F1 food" in board


def test_rerun_skips_completed_and_force_redoes(tmp_path, bench_dir, binary_dir, capsys):
    args = ["--models", "tfidf-logreg", *bench_args(bench_dir, "tiny_binary", binary_dir, tmp_path)]
    assert run_cli(*args) == 0
    result_path = run_path(tmp_path, "tiny_binary", "tfidf-logreg", 42) / "result.json"
    first = result_path.stat().st_mtime_ns
    args_loud = [a for a in args if a != "--quiet"]
    assert run_cli(*args_loud) == 0
    assert "already complete, skipped" in capsys.readouterr().err
    assert result_path.stat().st_mtime_ns == first
    assert run_cli(*args, "--force") == 0
    assert result_path.stat().st_mtime_ns != first


def test_every_configuration_is_kept_and_reported_apart(tmp_path, bench_dir, binary_dir, capsys):
    """One model under two limits and two budgets: four runs side by side, four leaderboards, one list."""
    bench = tmp_path / "benches"
    bench.mkdir()
    yaml = (bench_dir / "tiny_binary.yaml").read_text()
    (bench / "tiny_binary.yaml").write_text(yaml + "  other: {epochs: 1, max_length: 16, batch_size: 4, eval_batch_size: 8}\n")
    base = ["--models", "tfidf-logreg", *bench_args(bench, "tiny_binary", binary_dir, tmp_path)]
    commands = [[], ["--limit-train", "20"], ["--budget", "other"], ["--budget", "other", "--limit-train", "20"]]
    boards = []
    for extra in commands:
        assert run_cli(*base, *extra) == 0
        boards.append((tmp_path / "tiny_binary" / "leaderboard.md").read_text())
    store = ResultsStore(tmp_path)
    configurations = store.configurations("tiny_binary")
    assert len(configurations) == 4 and len({c.id for c in configurations}) == 4
    results = sorted(tmp_path.glob("tiny_binary/configs/*/runs/tfidf-logreg/seed-42/result.json"))
    assert len(results) == 4
    assert sorted(json.loads(p.read_text())["data"]["train_rows"] for p in results) == [20, 20, 48, 48]
    # each leaderboard shows its own configuration only, and names the others
    for extra, board, configuration in zip(commands, boards, configurations, strict=True):
        assert f"**Configuration**: `{configuration.label}`" in board
        rows = [line for line in board.split("## Models")[1].split("##")[0].splitlines() if "| tfidf-logreg |" in line]
        assert len(rows) == 1
        expected_rows = "20" if "--limit-train" in extra else "48"
        assert f"- **Data**: {expected_rows} train rows" in board
    assert all(c.label in boards[-1] for c in configurations)
    # report lists all four and rebuilds the one named
    capsys.readouterr()
    args = ["report", "--benchmark", "tiny_binary", "--benchmarks-dir", str(bench), "--results-dir", str(tmp_path)]
    assert main([*args, "--configuration", configurations[0].label]) == 0
    out = capsys.readouterr().err
    assert all(c.label in out for c in configurations)
    assert f"**Configuration**: `{configurations[0].label}`" in (tmp_path / "tiny_binary" / "leaderboard.md").read_text()


def test_report_only_rebuilds_from_store(tmp_path, bench_dir, binary_dir):
    assert run_cli("--models", "tfidf-logreg", *bench_args(bench_dir, "tiny_binary", binary_dir, tmp_path)) == 0
    board = tmp_path / "tiny_binary" / "leaderboard.md"
    board.unlink()
    assert run_cli("--report-only", "--benchmark", "tiny_binary", "--benchmarks-dir", str(bench_dir),
                   "--results-dir", str(tmp_path)) == 0
    assert "tfidf-logreg" in board.read_text()


def test_list_prints_models_and_benchmarks(capsys):
    assert run_cli("--list") == 0
    out = capsys.readouterr().out
    assert "tfidf-logreg" in out and "xlm-roberta-base" in out and "amazon_polarity" in out and "sst5" in out


def test_predict_subcommand_uses_saved_model(tmp_path, bench_dir, binary_dir, capsys):
    assert run_cli("--models", "tfidf-logreg", *bench_args(bench_dir, "tiny_binary", binary_dir, tmp_path)) == 0
    model_dir = run_path(tmp_path, "tiny_binary", "tfidf-logreg", 42) / "model"
    capsys.readouterr()
    assert run_cli("predict", "--model-dir", str(model_dir), "--json",
                   "The blender is excellent, great value.", "The tent broke after two days, terrible.") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == ["positive", "negative"]
    assert all(abs(sum(line["probabilities"].values()) - 1) < 1e-6 for line in lines)


def test_tfidf_path_imports_no_torch(tmp_path, bench_dir, binary_dir):
    code = (
        "import sys; from harness.cli import main; "
        f"rc = main({bench_args(bench_dir, 'tiny_binary', binary_dir, tmp_path) + ['--models', 'tfidf-logreg']!r}); "
        "assert rc == 0; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("models", ["tfidf-logreg,nope"])
def test_cli_bad_model_exits_2_with_one_line(tmp_path, bench_dir, binary_dir, models):
    out = subprocess.run(
        [sys.executable, "run_benchmark.py", "--models", models, *bench_args(bench_dir, "tiny_binary", binary_dir, tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "--models 'nope'" in out.stderr
    assert not has_runs(tmp_path, "tiny_binary")
