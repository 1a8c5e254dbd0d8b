"""Per-group scores and the per-group leaderboard section, on hand-made predictions with exact values."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import image as mpimg

from harness.config.schema import BenchmarkSpec
from harness.metrics import stats
from harness.metrics.quality import group_metrics
from harness.report import board, groups, markdown, sections
from harness.report.board import PredictionFiles, RunSet
from harness.store.results_store import ResultsStore
from tests import synthetic

LABELS = ["negative", "neutral", "positive"]

# Group "web": true 0,0,1,1,2,2 predicted 0,1,1,1,2,0
#   class 0: tp 1, 2 true, 2 predicted -> F1 2/4;  class 1: tp 2, 2 true, 3 predicted -> F1 4/5;
#   class 2: tp 1, 2 true, 1 predicted -> F1 2/3;  macro = (1/2 + 4/5 + 2/3) / 3
# Group "news": true 0,1,2 predicted 0,1,2 -> macro 1.
WEB_F1 = (1 / 2 + 4 / 5 + 2 / 3) / 3
Y = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2])
PRED = np.array([0, 1, 1, 1, 2, 0, 0, 1, 2])
GROUPS = np.array(["web"] * 6 + ["news"] * 3)


def one_hot(pred: np.ndarray, k: int = 3, sure: float = 0.8) -> np.ndarray:
    probs = np.full((len(pred), k), (1 - sure) / (k - 1))
    probs[np.arange(len(pred)), pred] = sure
    return probs


def spec(group_columns: list[str]) -> BenchmarkSpec:
    return BenchmarkSpec(
        name="tiny_groups",
        dataset={"hub_id": "local/x"},
        label_names=LABELS,
        group_columns=group_columns,
        budgets={"quick": {}},
    )


CONFIG = synthetic.configuration(spec([]))


def store_run(
    store: ResultsStore, model: str, y, probs, groups_by_column: dict, seed: int = 42, variant=None
) -> None:
    synthetic.write_run(store, spec([]), CONFIG, model, seed, y, probs, groups_by_column, variant=variant)


def runs_of(store: ResultsStore) -> RunSet:
    return RunSet.read(store, "tiny_groups", CONFIG.label)


def first_of(store: ResultsStore) -> dict[str, groups.FirstRun]:
    """Each model's lowest-seed completed run with its predictions, as the leaderboard reads them."""
    return board.training_set(runs_of(store), None, PredictionFiles(len(LABELS))).first


def test_score_groups_matches_hand_computed_macro_f1():
    cells = groups.score_groups(Y, one_hot(PRED), GROUPS, n_boot=200)
    assert list(cells) == ["news", "web"]
    assert cells["web"].point == pytest.approx(WEB_F1)
    assert cells["news"].point == 1.0
    assert (cells["web"].n, cells["news"].n) == (6, 3)
    # The runner's per-group metrics (sklearn) and these (stats) agree to the last digit.
    runner = group_metrics(Y, one_hot(PRED), GROUPS, LABELS)
    assert runner["web"]["f1_macro"] == pytest.approx(cells["web"].point, abs=1e-12)
    assert runner["web"]["n"] == 6


def test_score_groups_resamples_within_each_group():
    cells = groups.score_groups(Y, one_hot(PRED), GROUPS, n_boot=300, seed=0)
    web = GROUPS == "web"
    alone = stats.bootstrap_ci(Y[web], one_hot(PRED)[web], stats.macro_f1, n_boot=300, seed=0)
    assert (cells["web"].low, cells["web"].high) == (alone["low"], alone["high"])
    assert cells["web"].low < cells["web"].point <= cells["web"].high


def test_per_group_section_any_column_table_heatmap_and_link(tmp_path):
    store = ResultsStore(tmp_path)
    # "domain", not a language: the same mechanism for any declared column.
    store_run(store, "model-a", Y, one_hot(PRED), {"domain": GROUPS})
    store_run(store, "model-b", Y, one_hot(Y), {"domain": GROUPS})
    out_dir = store.benchmark_dir("tiny_groups")
    scored = groups.per_group_scores(first_of(store), "domain", ["model-b", "model-a"])
    lines = markdown.section_lines(sections.per_group(spec(["domain"]), "domain", scored))
    text = "\n".join(lines)
    assert lines[0] == "## Macro-F1 per domain"
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    assert "news (n=3)" in header and "web (n=6)" in header
    rows = [line for line in lines if line.startswith("| model-")]
    assert [r.split("|")[1].strip() for r in rows] == ["model-b", "model-a"]
    a_cells = [c.strip() for c in rows[1].split("|")[1:-1]]
    assert a_cells[1].startswith("1.000 [")
    assert a_cells[2].startswith(f"{WEB_F1:.3f} [")
    assert a_cells[3] == f"{(1 + WEB_F1) / 2:.3f}"  # mean over groups
    assert a_cells[4] == f"web ({WEB_F1:.3f})"  # worst group
    assert "![macro-F1 per domain](plots/groups_domain_f1.png)" in text
    assert groups.per_group_figure("domain") == "plots/groups_domain_f1.png"
    png = out_dir / "plots" / "groups_domain_f1.png"
    png.parent.mkdir(parents=True)
    png.write_bytes(groups.per_group_png("tiny_groups", "domain", scored))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = mpimg.imread(png).shape
    assert width > height > 100


def test_without_group_predictions_falls_back_to_stored_metrics(tmp_path):
    store = ResultsStore(tmp_path)
    store_run(store, "model-a", Y, one_hot(PRED), {"domain": GROUPS})
    run_dir = store.run_dir("tiny_groups", CONFIG.label, "model-a", 42)
    frame = store.read_predictions(run_dir).drop(columns=["group_domain"])
    (run_dir / "predictions.csv").write_text(frame.to_csv(index=False))
    scored = groups.per_group_scores(first_of(store), "domain")
    assert scored[0].cells["web"].point == pytest.approx(WEB_F1)
    assert sections._cell(scored[0].cells["web"]) == f"{WEB_F1:.3f}"  # no interval without examples


def test_no_group_columns_no_sections(tmp_path):
    store = ResultsStore(tmp_path)
    store_run(store, "model-a", Y, one_hot(PRED), {})
    files = PredictionFiles(len(LABELS))
    assert board.group_tables(runs_of(store), spec([]), files) == {}
    assert board.transfer_tables(runs_of(store), spec([]), files) == {}


def test_lowest_completed_seed_is_the_one_shown(tmp_path):
    store = ResultsStore(tmp_path)
    store_run(store, "model-a", Y, one_hot(Y), {"domain": GROUPS}, seed=43)
    store_run(store, "model-a", Y, one_hot(PRED), {"domain": GROUPS}, seed=42)
    (scored,) = groups.per_group_scores(first_of(store), "domain")
    assert scored.seed == 42 and scored.cells["web"].point == pytest.approx(WEB_F1)


def test_hub_dataset_with_one_config_per_group_becomes_one_table(monkeypatch):
    """The multilingual benchmark's hub form (a config per language) reads as one table with a lang column."""
    import datasets

    from harness.config.registry import load_benchmark
    from harness.data.loading import load_benchmark_data

    calls = []

    def fake_load_dataset(hub_id, config, revision=None, split=None):
        calls.append((hub_id, config, split))
        n = 3 if split == "train" else 2
        return datasets.Dataset.from_dict({"text": [f"{config} tweet {i}" for i in range(n)], "label": [i % 3 for i in range(n)]})

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    spec, _ = load_benchmark("tweet_sentiment_multilingual")
    data = load_benchmark_data(spec, None)
    assert {c for _, c, _ in calls} == {"arabic", "german", "english", "spanish", "french", "hindi", "italian", "portuguese"}
    assert len(data.train) == 24 and len(data.eval) == 16
    assert sorted(set(data.eval.groups["lang"].tolist())) == ["ar", "de", "en", "es", "fr", "hi", "it", "pt"]
    assert data.eval.texts[data.eval.groups["lang"].tolist().index("hi")] == "hindi tweet 0"
