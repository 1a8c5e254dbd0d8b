"""The leaderboard's intervals, tie marks, plots and error analysis, built from a store written by hand.

A synthetic store (three models, planted differences) gives exact expectations; one TF-IDF run through
the CLI checks that the runner leaves what the report needs and that ``--report-only`` rebuilds it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.config.registry import load_benchmark
from harness.metrics import stats
from harness.report import analysis
from harness.report import publish as report
from harness.report.error_sections import length_buckets
from harness.store.results_store import ResultsStore
from tests import synthetic

PLOTS = [
    "quality_vs_latency.png",
    "per_class_f1.png",
    "roc_curves.png",
    "confusion_matrices.png",
    "loss_curves.png",
    "reliability.png",
]
LANGS = np.array(["en", "fr", "de"])
N = 300


def _probs(rng, labels: np.ndarray, accuracy: float, k: int = 3) -> np.ndarray:
    right = rng.random(len(labels)) < accuracy
    predicted = np.where(right, labels, (labels + rng.integers(1, k, len(labels))) % k)
    confidence = rng.uniform(0.4, 0.95, len(labels))
    probs = np.full((len(labels), k), 0.0)
    probs[:] = ((1 - confidence) / (k - 1))[:, None]
    probs[np.arange(len(labels)), predicted] = confidence
    return probs


def write_run(store, spec, model, seed, labels, probs, langs, *, loss=None, latency=1.0, memory_mib=100):
    synthetic.write_run(store, spec, CONFIG[spec.name], model, seed, labels, probs, {"lang": langs},
                        loss=loss, latency=latency, memory_mib=memory_mib)


def run_dir(store, spec, model, seed):
    return store.run_dir(spec.name, CONFIG[spec.name].label, model, seed)


CONFIG: dict = {}


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    """alpha (best, two seeds, loss curves), beta (alpha with 3 answers flipped: tied), gamma (clearly worse)."""
    root = tmp_path_factory.mktemp("store")
    spec, _ = load_benchmark("tiny_multilingual", Path(__file__).parent / "fixtures" / "benchmarks")
    store = ResultsStore(root)
    CONFIG[spec.name] = synthetic.configuration(spec)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, N)
    langs = LANGS[np.arange(N) % 3]
    # Lengths 1..30 words; word i of example j is "w{j}": lengths drive the length buckets.
    lengths = 1 + np.arange(N) % 30
    texts = [" ".join([f"w{j}"] * int(lengths[j])) for j in range(N)]
    texts[7] = "PLANTED most confident mistake " + texts[7]
    store.write_eval_texts(spec.name, CONFIG[spec.name].label, np.arange(N), texts)

    alpha = _probs(rng, labels, 0.85)
    wrong = (labels[7] + 1) % 3
    alpha[7] = 0.005
    alpha[7, wrong] = 0.99
    beta = alpha.copy()
    flip = np.flatnonzero(alpha.argmax(axis=1) == labels)[:3]
    beta[flip] = np.roll(
        beta[flip], 1, axis=1
    )  # the confident class moves to the next one: three more errors
    curve = [{"step": s, "examples": 16 * s, "loss": 1.1 / (1 + s / 5)} for s in range(1, 30)]
    write_run(store, spec, "alpha", 1, labels, alpha, langs, loss=curve, latency=8.0, memory_mib=400)
    write_run(store, spec, "alpha", 2, labels, _probs(rng, labels, 0.84), langs, loss=curve[::2], latency=8.2)
    write_run(store, spec, "beta", 1, labels, beta, langs, latency=3.0, memory_mib=300)
    write_run(store, spec, "gamma", 1, labels, _probs(rng, labels, 0.55), langs, latency=0.5, memory_mib=50)
    store.set_current(CONFIG[spec.name])
    path = report.write_report(store, spec)
    return store, spec, path, labels, texts


def _row(board: str, model: str) -> list[str]:
    line = next(line for line in board.splitlines() if re.match(rf"\|\s*\d+\s*\|\s*{model}\s*\|", line))
    return [cell.strip() for cell in line.strip("|").split("|")]


def _column(board: str, name: str) -> int:
    header = next(line for line in board.splitlines() if line.startswith("| rank"))
    return [cell.strip() for cell in header.strip("|").split("|")].index(name)


def test_every_plot_is_written_and_every_link_resolves(synthetic_store):
    store, spec, path, *_ = synthetic_store
    for name in PLOTS:
        png = path.parent / "plots" / name
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, name
    board = path.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", board)
    assert {f"plots/{name}" for name in PLOTS} <= set(links)
    assert "errors.md" in links
    for link in links:
        assert (path.parent / link).is_file(), link


def test_intervals_are_of_the_mean_over_seeds_resampling_examples(synthetic_store):
    store, spec, path, labels, _ = synthetic_store
    board = path.read_text()
    runs = [analysis.read_predictions(run_dir(store, spec, "alpha", s), "alpha", s, 3) for s in (1, 2)]
    ci = stats.seed_mean_bootstrap_cis(labels, [r.probs for r in runs], analysis.CI_METRICS, n_boot=analysis.N_BOOT)
    f1 = [stats.macro_f1(r.labels, r.probs) for r in runs]
    assert ci["f1_macro"]["point"] == pytest.approx(np.mean(f1))
    row = _row(board, "alpha")
    expected = f"{np.mean(f1):.4f} ± {np.std(f1, ddof=1):.4f} [{ci['f1_macro']['low']:.4f}, {ci['f1_macro']['high']:.4f}]"
    assert row[_column(board, "macro-F1")] == expected
    assert row[_column(board, "accuracy")].endswith(
        f"[{ci['accuracy']['low']:.4f}, {ci['accuracy']['high']:.4f}]"
    )
    # The mean of two seeds varies less over resamples than one seed alone.
    alone = stats.bootstrap_cis(labels, runs[0].probs, analysis.CI_METRICS, n_boot=analysis.N_BOOT)
    assert ci["f1_macro"]["high"] - ci["f1_macro"]["low"] < alone["f1_macro"]["high"] - alone["f1_macro"]["low"]
    ece = [stats.expected_calibration_error(r.labels, r.probs) for r in runs]
    brier = [stats.brier_score(r.labels, r.probs) for r in runs]
    assert row[_column(board, "ECE")] == f"{np.mean(ece):.3f} ± {np.std(ece, ddof=1):.3f}"
    assert row[_column(board, "Brier")] == f"{np.mean(brier):.3f} ± {np.std(brier, ddof=1):.3f}"
    # one seed: no ± part
    assert re.fullmatch(r"0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]", _row(board, "gamma")[_column(board, "macro-F1")])
    assert "bootstrap CI of that mean over test examples (10,000 resamples" in board


def test_tie_marks_follow_the_paired_test_over_every_seed(synthetic_store):
    store, spec, path, *_ = synthetic_store
    board = path.read_text()
    col = _column(board, "vs best")
    assert _row(board, "alpha")[0] == "1" and _row(board, "alpha")[col] == "best"
    leader = [analysis.read_predictions(run_dir(store, spec, "alpha", s), "alpha", s, 3) for s in (1, 2)]
    beta = analysis.read_predictions(run_dir(store, spec, "beta", 1), "beta", 1, 3)
    test = stats.paired_seed_mean_bootstrap(
        leader[0].labels, [beta.probs], [r.probs for r in leader], stats.macro_f1, n_boot=analysis.N_BOOT
    )
    assert test["p_value"] >= 0.05
    assert _row(board, "beta")[col] == f"tied (p {test['p_value']:.3f})"
    # gamma is far below: the p-value sits at the test's floor and is printed as a bound, not as a finding
    assert _row(board, "gamma")[col] == "below (p <1e-04 (resampling floor))"
    section = board.split("## Paired tests against the best model (every seed)")[1]
    beta_line = next(line for line in section.splitlines() if line.startswith("| beta"))
    # McNemar per seed pair: beta (one seed) against each of alpha's two seeds; against seed 1 beta is
    # never right where alpha is wrong, and is wrong on the 3 flipped answers.
    cells = [c.strip() for c in beta_line.strip("|").split("|")]
    assert cells[3].split("; ")[0] == "0/3" and len(cells[3].split("; ")) == 2
    assert cells[4].split("; ")[0] == f"{stats._binom_two_sided(0, 3):.3f}"
    assert cells[5] == "tied"


def test_error_analysis_finds_the_planted_mistake_and_counts_by_length_and_group(synthetic_store):
    store, spec, path, labels, texts = synthetic_store
    errors = (path.parent / "errors.md").read_text()
    alpha_section = errors.split("### alpha (seed 1)")[1].split("###")[0]
    first_row = [line for line in alpha_section.splitlines() if line.startswith("| ")][1]
    assert (
        first_row.startswith("| 7 ")
        and "| 0.990 " in first_row
        and "PLANTED most confident mistake" in first_row
    )
    leader = analysis.read_predictions(run_dir(store, spec, "alpha", 1), "alpha", 1, 3)
    wrong = leader.predicted != leader.labels
    assert f"{int(wrong.sum()):,} errors in {N:,} examples" in errors
    # Length buckets are quantiles of the word counts; check the table against a direct count.
    words = np.array([len(t.split()) for t in texts])
    bucket, names = length_buckets(words)
    length_table = errors.split("## Error rate by input length")[1].split("##")[0]
    for b, name in enumerate(names):
        mask = bucket == b
        line = next(line for line in length_table.splitlines() if line.startswith(f"| {name} "))
        assert line.split("|")[2].strip() == f"{100 * wrong[mask].mean():.1f}% ({mask.sum()})"
    lang_table = errors.split("## Error rate by lang")[1].split("##")[0]
    langs = LANGS[np.arange(N) % 3]
    for lang in LANGS:
        mask = langs == lang
        line = next(line for line in lang_table.splitlines() if line.startswith(f"| {lang} "))
        assert line.split("|")[2].strip() == f"{100 * wrong[mask].mean():.1f}% ({mask.sum()})"
    preds = np.stack(
        [
            analysis.read_predictions(run_dir(store, spec, m, 1), m, 1, 3).predicted
            for m in ("alpha", "beta", "gamma")
        ]
    )
    differ = int((preds != preds[0]).any(axis=0).sum())
    assert f"the models disagree on {differ:,} " in errors


def test_report_only_rebuilds_the_same_report_from_the_store(synthetic_store, tmp_path, bench_dir):
    store, spec, path, *_ = synthetic_store
    copy = tmp_path / "copy"
    shutil.copytree(store.root, copy)
    bench = copy / spec.name
    before = path.read_text()
    (bench / "leaderboard.md").unlink()
    (bench / "errors.md").unlink()
    shutil.rmtree(bench / "plots")
    argv = [
        "--report-only",
        "--benchmark",
        spec.name,
        "--benchmarks-dir",
        str(bench_dir),
        "--results-dir",
        str(copy),
    ]
    assert main(argv) == 0
    assert (bench / "leaderboard.md").read_text() == before
    assert (bench / "errors.md").read_text() == (path.parent / "errors.md").read_text()
    assert set(PLOTS) <= {p.name for p in (bench / "plots").glob("*.png")}


def test_pareto_front_keeps_points_no_other_beats():
    from harness.report.figures import pareto_front

    latency = [1.0, 2.0, 3.0, 1.5, 4.0]
    quality = [0.80, 0.85, 0.84, 0.79, 0.90]
    assert pareto_front(latency, quality) == [0, 1, 4]


def test_a_tfidf_run_leaves_texts_and_a_report_without_loss_curves(tmp_path, bench_dir, multilingual_dir):
    argv = [
        "--models", "tfidf-logreg", "--benchmark", "tiny_multilingual", "--benchmarks-dir", str(bench_dir),
        "--data-dir", str(multilingual_dir), "--results-dir", str(tmp_path), "--quiet", "--no-isolate",
    ]  # fmt: skip
    assert main(argv) == 0
    bench = tmp_path / "tiny_multilingual"
    (texts_file,) = bench.glob("configs/*/eval_texts.csv")  # kept per configuration, not per benchmark
    texts = pd.read_csv(texts_file, keep_default_na=False)
    source = pd.read_csv(multilingual_dir / "test.csv", keep_default_na=False)
    assert texts["id"].tolist() == list(range(len(source)))
    assert texts["text"].tolist() == source["text"].tolist()
    board = (bench / "leaderboard.md").read_text()
    assert "loss_curves.png" not in board and not (bench / "plots" / "loss_curves.png").exists()
    for link in re.findall(r"\]\(([^)\s]+)\)", board):
        assert (bench / link).is_file(), link
    errors = (bench / "errors.md").read_text()
    assert "## Error rate by lang" in errors and "Only one model has predictions" in errors
    assert "(text not in the store)" not in errors
