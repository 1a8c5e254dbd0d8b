"""Suites: several benchmarks in one command and one summary across them (harness/suite.py).

The three hand-made fixtures with two TF-IDF entries: the summary's per-benchmark numbers are each benchmark's own
leaderboard numbers, the ranks are exact, a benchmark whose data cannot be read fails alone, and bad suite input
stops before anything runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from harness import suite
from harness.cli import main
from harness.config.registry import PROJECT_ROOT
from harness.metrics import stats
from harness.metrics.columns import column
from harness.report import ranks
from harness.report.analysis import Predictions
from tests.conftest import FIXTURES, has_runs, shared_data
from tests.test_plots import check_figure

REGISTRY = """\
models:
  - name: tfidf-logreg
    family: tfidf
    tfidf: {ngram_max: 2, min_df: 2, sublinear_tf: true, C: 4.0}
  - name: tfidf-1gram
    family: tfidf
    tfidf: {ngram_max: 1, min_df: 1, sublinear_tf: true, C: 1.0}
  - name: tfidf-broken
    family: tfidf
    tfidf: {min_df: 100000}
"""
FOLDERS = {"tiny_binary": "binary", "tiny_three": "three_class", "tiny_multilingual": "multilingual"}


def suite_yaml(tmp_path: Path, folders: dict[str, str], name: str = "tiny") -> Path:
    entries = "".join(f"  - {{benchmark: {b}, data_dir: {d}}}\n" for b, d in folders.items())
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ndescription: the hand-made fixtures\ndata_root: {FIXTURES}\nbenchmarks:\n{entries}"
    )
    return path


def run(tmp_path: Path, *args: str) -> int:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    return main(
        [
            *args,
            "--registry",
            str(registry),
            "--benchmarks-dir",
            str(FIXTURES / "benchmarks"),
            "--results-dir",
            str(tmp_path / "results"),
            "--latency-samples",
            "3",
            "--no-isolate",
            "--quiet",
        ]
    )


def read_summary(tmp_path: Path, name: str = "tiny") -> tuple[pd.DataFrame, dict, str]:
    out = tmp_path / "results" / "suites" / name
    table = pd.read_csv(out / "summary.csv").set_index("model")
    return table, json.loads((out / "summary.json").read_text()), (out / "summary.md").read_text()


def leaderboard_f1(tmp_path: Path, benchmark: str, configuration: str) -> dict[str, float]:
    frame = pd.read_csv(tmp_path / "results" / benchmark / "configs" / configuration / "leaderboard.csv")
    return dict(zip(frame["model"], frame["f1_macro"], strict=True))


def test_suite_of_the_three_fixtures_matches_each_leaderboard(tmp_path):
    code = run(
        tmp_path, "--suite", str(suite_yaml(tmp_path, FOLDERS)), "--models", "tfidf-logreg,tfidf-1gram"
    )
    assert code == 0
    table, payload, markdown = read_summary(tmp_path)
    assert [b["benchmark"] for b in payload["benchmarks"]] == list(FOLDERS)
    assert all(b["status"] == "ran" and b["error"] is None for b in payload["benchmarks"])
    for entry in payload["benchmarks"]:
        board = leaderboard_f1(tmp_path, entry["benchmark"], entry["configuration"])
        for model in ("tfidf-logreg", "tfidf-1gram"):
            # The very number of the benchmark's leaderboard, not a recomputation of it.
            assert table.loc[model, f"f1_macro[{entry['benchmark']}]"] == board[model]
    # Binary: bigrams beat unigrams (23/24 against 18/24 right); the other two are solved by both (a tie: 1.5 each).
    assert (
        table.loc["tfidf-logreg", "f1_macro[tiny_binary]"] > table.loc["tfidf-1gram", "f1_macro[tiny_binary]"]
    )
    assert table.loc[
        "tfidf-logreg", ["rank[tiny_binary]", "rank[tiny_three]", "rank[tiny_multilingual]"]
    ].tolist() == [
        1.0,
        1.5,
        1.5,
    ]
    assert table.loc[
        "tfidf-1gram", ["rank[tiny_binary]", "rank[tiny_three]", "rank[tiny_multilingual]"]
    ].tolist() == [
        2.0,
        1.5,
        1.5,
    ]
    assert table.loc["tfidf-logreg", "mean_rank"] == pytest.approx(4 / 3, abs=1e-12)
    assert table.loc["tfidf-1gram", "mean_rank"] == pytest.approx(5 / 3, abs=1e-12)
    assert list(table.index) == ["tfidf-logreg", "tfidf-1gram"]  # sorted by mean rank
    for model in table.index:
        row = table.loc[model]
        assert 1.0 <= row["mean_rank_low"] <= row["mean_rank"] <= row["mean_rank_high"] <= 2.0
        assert (row["best_rank"], row["worst_rank"], row["benchmarks_completed"]) == (
            min(row[f"rank[{b}]"] for b in FOLDERS),
            max(row[f"rank[{b}]"] for b in FOLDERS),
            3,
        )
        assert row["latency_p50_ms"] > 0 and row["train_seconds"] > 0 and row["peak_rss_mib"] > 0
    binary = table.loc["tfidf-logreg", "f1_macro[tiny_binary]"]
    assert f"| {binary:.4f} (1)" in markdown and "| 1.0000 (1.5)" in markdown
    assert "tiny\\_binary" in markdown  # names go through markdown.escape
    assert "percentile bootstrap over test examples" in markdown
    assert (tmp_path / "results" / "suites" / "tiny" / "summary.png").stat().st_size > 0
    # Links to each benchmark's leaderboard resolve from the summary's folder.
    out = tmp_path / "results" / "suites" / "tiny"
    for entry in payload["benchmarks"]:
        link = f"../../{entry['benchmark']}/configs/{entry['configuration']}/leaderboard.md"
        assert f"]({link})" in markdown and (out / link).is_file()
        # The summary's page links to each benchmark's page, which sits beside its leaderboard.md.
        page = link.replace("leaderboard.md", "leaderboard.html")
        assert f'href="{page}"' in (out / "summary.html").read_text() and (out / page).is_file()


def test_a_benchmark_whose_data_cannot_be_read_fails_alone(tmp_path, capsys):
    folders = {**FOLDERS, "tiny_three": "no_such_folder"}
    code = run(
        tmp_path, "--suite", str(suite_yaml(tmp_path, folders)), "--models", "tfidf-logreg,tfidf-1gram"
    )
    assert code == 1
    assert "benchmark tiny_three" in capsys.readouterr().err
    table, payload, markdown = read_summary(tmp_path)
    status = {b["benchmark"]: b for b in payload["benchmarks"]}
    assert status["tiny_three"]["status"] == "failed" and "no such directory" in status["tiny_three"]["error"]
    assert status["tiny_binary"]["status"] == status["tiny_multilingual"]["status"] == "ran"
    assert "f1_macro[tiny_three]" not in table.columns and "f1_macro[tiny_multilingual]" in table.columns
    assert table.loc["tfidf-logreg", "mean_rank"] == pytest.approx(
        1.25
    )  # ranks 1 and 1.5 over the two that ran
    assert "FAILED" in markdown and "## Failures" in markdown
    assert not has_runs(tmp_path / "results", "tiny_three") and has_runs(
        tmp_path / "results", "tiny_multilingual"
    )


def test_a_model_that_failed_takes_the_last_place(tmp_path):
    folders = {k: FOLDERS[k] for k in ("tiny_binary", "tiny_three")}
    code = run(
        tmp_path, "--suite", str(suite_yaml(tmp_path, folders)), "--models", "tfidf-broken,tfidf-1gram"
    )
    assert code == 1  # failed runs, as for one benchmark
    table, _, markdown = read_summary(tmp_path)
    broken = table.loc["tfidf-broken"]
    assert broken["rank[tiny_binary]"] == broken["rank[tiny_three]"] == broken["mean_rank"] == 2.0
    assert broken["mean_rank_low"] == broken["mean_rank_high"] == 2.0
    assert broken["benchmarks_completed"] == 0 and np.isnan(broken["f1_macro[tiny_binary]"])
    assert table.loc["tfidf-1gram", "mean_rank"] == 1.0
    assert "failed (2)" in markdown and "0/2" in markdown


def test_a_comma_list_reads_one_folder_per_benchmark_under_data_root(tmp_path):
    root = tmp_path / "data"
    for benchmark in ("tiny_binary", "tiny_three"):
        shutil.copytree(FIXTURES / FOLDERS[benchmark], root / benchmark)
    code = run(
        tmp_path, "--benchmark", "tiny_binary,tiny_three", "--data-root", str(root), "--models", "tfidf-1gram"
    )
    assert code == 0
    table, payload, _ = read_summary(tmp_path, "tiny_binary+tiny_three")
    assert [b["data_dir"] for b in payload["benchmarks"]] == [
        str(root / "tiny_binary"),
        str(root / "tiny_three"),
    ]
    assert table.loc["tfidf-1gram", "mean_rank"] == 1.0


def test_the_python_api_runs_a_suite_and_returns_the_table(tmp_path):
    from harness import run_suite
    from harness.config.schema import ModelSpec

    root = tmp_path / "data"
    for benchmark in ("tiny_binary", "tiny_three"):
        shutil.copytree(FIXTURES / FOLDERS[benchmark], root / benchmark)
    result = run_suite(
        ["tiny_binary", "tiny_three"],
        models=[ModelSpec(name="tfidf-uni", family="tfidf", tfidf={"ngram_max": 1, "min_df": 1})],
        data_root=root,
        results_dir=tmp_path / "results",
        benchmarks_dir=FIXTURES / "benchmarks",
        isolate=False,
        latency_samples=3,
    )
    assert (
        not result.failed
        and result.path == tmp_path / "results" / "suites" / "tiny_binary+tiny_three" / "summary.md"
    )
    assert [o.name for o in result.outcomes] == ["tiny_binary", "tiny_three"]
    row = result.table.set_index("model").loc["tfidf-uni"]
    assert (
        row["f1_macro[tiny_binary]"] == result.outcomes[0].board.rows[0].f1_macro and row["mean_rank"] == 1.0
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--benchmark", "tiny_binary,tiny_three", "--data-dir", "x"], "--data-root"),
        (["--benchmark", "tiny_binary,tiny_thre"], "did you mean 'tiny_three'?"),
        (["--benchmark", "tiny_binary,,tiny_three"], "empty name"),
        (["--benchmark", "tiny_binary,tiny_binary"], "listed twice"),
        (
            ["--benchmark", "tiny_binary,tiny_three", "--budget", "quick"],
            "not a budget of benchmark tiny_binary",
        ),
        (
            ["--benchmark", "tiny_binary,tiny_three", "--models", "tfidf-1gramm"],
            "did you mean 'tfidf-1gram'?",
        ),
        (["--benchmark", "tiny_binary", "--data-root", "x"], "applies to several benchmarks"),
        (["--suite", "no_such_suite"], "no such suite"),
        (["--benchmark", "tiny_binary,tiny_three", "--report-only"], "rerun the suite command"),
    ],
)
def test_bad_suite_input_is_one_line_before_anything_runs(tmp_path, capsys, args, expected):
    assert run(tmp_path, *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("result.json"))


def test_a_misspelt_suite_key_is_named_with_did_you_mean(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nbenchmark:\n  - tiny_binary\n")
    assert run(tmp_path, "--suite", str(path)) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: unknown field 'benchmark' (did you mean 'benchmarks'?)" in err
    path.write_text("name: bad\nbenchmarks:\n  - {benchmark: tiny_binary, datadir: binary}\n")
    assert run(tmp_path, "--suite", str(path)) == 2
    assert (
        "[benchmark 'tiny_binary']: unknown field 'datadir' (did you mean 'data_dir'?)"
        in capsys.readouterr().err
    )


def test_the_shipped_suite_resolves_one_folder_per_benchmark(tmp_path):
    members = suite.resolve_suite(
        suite="sentiment",
        benchmark=None,
        data_root=tmp_path,
        data_dir=None,
        benchmarks_dir=PROJECT_ROOT / "benchmarks",
    )
    assert members.name == "sentiment" and members.names == ["sst2", "sst5", "imdb", "amazon_polarity"]
    assert [m.data_dir for m in members.members] == [tmp_path / n for n in members.names]
    no_root = suite.resolve_suite(
        suite="sentiment",
        benchmark=None,
        data_root=None,
        data_dir=None,
        benchmarks_dir=PROJECT_ROOT / "benchmarks",
    )
    assert all(m.data_dir is None for m in no_root.members)  # the hub, as for one benchmark


def _fake_board(labels: np.ndarray, predicted: dict[str, list[np.ndarray]], num_labels: int):
    rows = []
    ids = np.arange(len(labels))
    for model, seeds in predicted.items():
        preds = [
            Predictions(model=model, seed=s, ids=ids, labels=labels, probs=np.eye(num_labels)[p])
            for s, p in enumerate(seeds)
        ]
        f1 = float(np.mean([stats.macro_f1(labels, p.probs) for p in preds]))
        rows.append(SimpleNamespace(model=model, results=[object()], predictions=preds, f1_macro=f1))
    return SimpleNamespace(rows=rows, spec=SimpleNamespace(num_labels=num_labels), main=column("f1_macro"))


def test_the_pattern_bootstrap_draws_as_resampling_examples_does():
    """Grouping examples by (label, predictions) and drawing patterns is the example bootstrap, only cheaper."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, 300)
    noisy = [np.where(rng.random(300) < 0.3, rng.integers(0, 3, 300), labels) for _ in range(2)]
    # b makes a's first seed's mistakes and some of its own: their scores move together over resamples.
    board = _fake_board(labels, {"a": noisy, "b": [np.where(rng.random(300) < 0.2, 0, noisy[0])]}, 3)
    patterns = ranks.score_resamples(board, ["a", "b", "missing"], 4000, np.random.default_rng(0))
    assert np.isneginf(patterns[:, 2]).all()
    direct = np.empty((4000, 2))
    draw = np.random.default_rng(1)
    for i in range(4000):
        idx = draw.integers(0, 300, 300)
        direct[i, 0] = np.mean([stats.macro_f1(labels[idx], np.eye(3)[p[idx]]) for p in noisy])
        direct[i, 1] = stats.macro_f1(labels[idx], np.eye(3)[board.rows[1].predictions[0].predicted[idx]])
    assert np.allclose(patterns[:, :2].mean(axis=0), direct.mean(axis=0), atol=0.003)
    assert np.allclose(patterns[:, :2].std(axis=0), direct.std(axis=0), rtol=0.08)
    # Paired: the same draw for every model, so the scores of the two models correlate as they do in the direct
    # bootstrap (drawn apart, they would not correlate at all).
    paired = np.corrcoef(patterns[:, 0], patterns[:, 1])[0, 1]
    assert paired > 0.3 and paired == pytest.approx(np.corrcoef(direct[:, 0], direct[:, 1])[0, 1], abs=0.05)


def test_a_model_right_everywhere_has_rank_one_on_every_resample():
    # 80 examples: a resample that misses all of a model's 40 mistakes (and ties it with the right one) is 2^-80.
    labels = np.tile([0, 1, 0, 1, 1, 0, 1, 0], 10)
    wrong = 1 - labels
    half = np.r_[labels[:40], wrong[40:]]
    boards = [_fake_board(labels, {"right": [labels], "half": [half], "wrong": [wrong]}, 2)] * 3
    resampled = ranks.rank_resamples(boards, ["wrong", "right", "half"], n_boot=500)
    assert (
        (resampled[:, 1] == 1.0).all() and (resampled[:, 2] == 2.0).all() and (resampled[:, 0] == 3.0).all()
    )


def test_the_summary_figure_keeps_values_and_names_inside():
    table = pd.DataFrame(
        {
            "model": ["distilbert-base-uncased", "tfidf-logreg", "minilm-l6"],
            "mean_rank": [1.33, 1.67, 3.0],
            "mean_rank_low": [1.0, 1.33, 2.67],
            "mean_rank_high": [1.67, 2.0, 3.0],
            "f1_macro[sst5]": [0.52, 0.41, np.nan],
            "f1_macro[ag_news]": [0.91, 0.88, 0.90],
            "f1_macro[amazon_polarity]": [1.0, 0.86, 0.89],
        }
    )
    check_figure(suite.summary_figure(table, ["sst5", "ag_news", "amazon_polarity"]))


@pytest.mark.slow
def test_a_suite_of_three_real_benchmarks(tmp_path):
    for name in ("sst5", "ag_news", "amazon_polarity"):
        shared_data(name)
    root = Path(shared_data("sst5")).parent
    code = main(
        [
            "--benchmark",
            "sst5,ag_news,amazon_polarity",
            "--data-root",
            str(root),
            "--models",
            "tfidf-logreg",
            "--limit-train",
            "1000",
            "--limit-test",
            "500",
            "--results-dir",
            str(tmp_path),
            "--quiet",
            "--latency-samples",
            "5",
        ]
    )
    assert code == 0
    table = pd.read_csv(tmp_path / "suites" / "sst5+ag_news+amazon_polarity" / "summary.csv")
    assert table["benchmarks_completed"].tolist() == [3]
    assert 0.2 < table["f1_macro[sst5]"][0] < table["f1_macro[ag_news]"][0]
