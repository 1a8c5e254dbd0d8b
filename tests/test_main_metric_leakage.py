"""A benchmark's main metric (ordering, paired test, suite ranks), extra metrics from evaluate modules, and the
evaluation texts that also occur in train (counted, and dropped from train on request)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.config.registry import PROJECT_ROOT, load_benchmark
from harness.config.schema import BenchmarkSpec
from harness.config.suites import Suite
from harness.core.errors import HarnessInputError
from harness.data.loading import load_benchmark_data, normalized_text
from harness.report import markdown, ranks, sections
from harness.report.board import Leaderboard
from harness.store.results import Configuration, benchmark_definition, benchmark_hash
from harness.store.results_store import ResultsStore
from harness.suite import BenchmarkOutcome, SuiteSummary, summary_sections
from tests import synthetic
from tests.conftest import FIXTURES, masked_models_table, run_path, write_csv

ERROR_RATE = FIXTURES / "evaluate_metrics" / "error_rate.py"

# 30 test examples, 20 of class a: "constant" always says a (accuracy 0.667, macro-F1 0.267); "balanced" gets b
# and c right and 8 of the a's (12 a's called b): accuracy 0.6, macro-F1 0.675. The two metrics disagree.
LABELS = np.array([0] * 20 + [1] * 5 + [2] * 5)
CONSTANT = np.zeros(30, dtype=int)
BALANCED = np.r_[[0] * 8, [1] * 12, [1] * 5, [2] * 5]


def _spec(**fields) -> BenchmarkSpec:
    return BenchmarkSpec.model_validate(
        {"name": "skewed", "label_names": ["a", "b", "c"], "budgets": {"tiny": {}}, "default_budget": "tiny", **fields}
    )


def _probs(predicted: np.ndarray) -> np.ndarray:
    probs = np.full((len(predicted), 3), 0.1)
    probs[np.arange(len(predicted)), predicted] = 0.8
    return probs


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ResultsStore:
    """Both models' runs under one configuration: a main metric does not change the configuration."""
    store = ResultsStore(tmp_path_factory.mktemp("main_metric") / "results")
    spec = _spec()
    configuration = synthetic.configuration(spec)
    for model, predicted in (("constant", CONSTANT), ("balanced", BALANCED)):
        synthetic.write_run(store, spec, configuration, model, 42, LABELS, _probs(predicted), family="tfidf")
    return store


def _board(store: ResultsStore, **fields) -> Leaderboard:
    return Leaderboard.from_store(store, _spec(**fields), n_boot=200)


def test_accuracy_as_main_metric_orders_the_leaderboard_by_accuracy(store):
    by_f1, by_accuracy = _board(store), _board(store, main_metric="accuracy")
    assert [r.model for r in by_f1.rows] == ["balanced", "constant"]
    assert [r.model for r in by_accuracy.rows] == ["constant", "balanced"]
    assert by_accuracy.rows[0].mean("accuracy") == pytest.approx(20 / 30)
    # The paired test against the leader is on accuracy: its difference is the accuracy gap, exactly.
    assert by_accuracy.rows[1].vs_best["paired_bootstrap"]["diff"] == pytest.approx(18 / 30 - 20 / 30, abs=1e-12)
    text = markdown.render(sections.leaderboard(by_accuracy, None))
    assert "Sorted by accuracy, the benchmark's main metric (mean over seeds when several)." in text
    assert "| Δ accuracy vs best [95% CI] |" in text.replace("   ", " ").replace("  ", " ")
    assert "Sorted by macro-F1 (mean over seeds when several)." in markdown.render(sections.leaderboard(by_f1, None))


def test_a_main_metric_outside_the_headline_columns_is_shown_and_tested(store):
    board = _board(store, main_metric="f1_weighted")
    assert "f1_weighted" in [c.name for c in board.table_columns]
    # Weighted F1: constant 0.8 * 20/30 = 0.533; balanced (0.571 * 20 + 0.455 * 5 + 1.0 * 5) / 30 = 0.623.
    assert [r.model for r in board.rows] == ["balanced", "constant"]
    assert board.rows[0].stats["ci"]["f1_weighted"]["point"] == pytest.approx((16 / 28 * 20 + 10 / 22 * 5 + 5) / 30)


def test_the_suite_ranks_each_benchmark_by_its_own_main_metric(store, tmp_path):
    boards = {"acc1": _board(store, main_metric="accuracy"), "f1": _board(store),
              "acc2": _board(store, main_metric="accuracy")}
    table = ranks.summarize(boards, ["constant", "balanced"], n_boot=200).set_index("model")
    assert table.loc["constant", "rank[acc1]"] == 1.0 and table.loc["constant", "rank[f1]"] == 2.0
    assert table.loc["constant", "mean_rank"] == pytest.approx(4 / 3)
    assert table.loc["balanced", "score[acc1]"] == pytest.approx(0.6)
    assert table.loc["balanced", "score[f1]"] == pytest.approx(boards["f1"].rows[0].f1_macro)
    outcomes = [BenchmarkOutcome(name=name, data_dir=None, board=board) for name, board in boards.items()]
    summary = SuiteSummary(Suite("mixed", []), ["constant", "balanced"], outcomes, table.reset_index())
    text = markdown.render(summary_sections(summary, tmp_path, None))
    ranked_by = [line.split("|")[4].strip() for line in text.splitlines() if line.startswith(("| acc", "| f1 "))]
    assert ranked_by == ["accuracy", "macro-F1", "accuracy"]


def test_an_unknown_main_metric_is_one_line_naming_the_file_and_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nlabel_names: [a, b]\nmain_metric: acuracy\nbudgets: {quick: {}}\n")
    with pytest.raises(HarnessInputError) as caught:
        load_benchmark(str(path))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path} [benchmark 'bad']: ")
    assert "field 'main_metric': 'acuracy' is not a metric (did you mean 'accuracy'?)" in message
    assert "use one of accuracy, f1_macro," in message and "balanced_accuracy" in message


def test_an_evaluate_module_from_a_local_path_adds_a_column_with_its_exact_value(store, tmp_path):
    shutil.copy(ERROR_RATE, tmp_path / "error_rate.py")
    path = tmp_path / "skewed.yaml"
    path.write_text(
        "name: skewed\nlabel_names: [a, b, c]\ndefault_budget: tiny\nbudgets: {tiny: {}}\nmain_metric: error_rate\n"
        "extra_metrics:\n  - {name: error_rate, module: ./error_rate.py, args: {scale: 100.0}, label: error %,"
        " higher_is_better: false, digits: 2}\n"
    )
    spec, _ = load_benchmark(str(path))
    assert spec.extra_metrics[0].module == str((tmp_path / "error_rate.py").resolve())
    assert benchmark_hash(spec) == benchmark_hash(_spec())  # extra metrics score the same runs
    board = Leaderboard.from_store(store, spec, n_boot=200)
    frame = board.to_pandas().set_index("model")
    assert frame.loc["constant", "error_rate"] == 100.0 * 10 / 30
    assert frame.loc["balanced", "error_rate"] == 100.0 * 12 / 30
    # Lower is better: the constant model leads; the paired test falls back to macro-F1 and says why.
    assert [r.model for r in board.rows] == ["constant", "balanced"]
    text = markdown.render(sections.leaderboard(board, None))
    assert "Sorted by error %, the benchmark's main metric (lower is better; mean over seeds when several)." in text
    assert "macro-F1 (error %, the main metric, has no interval function)" in text
    (tmp_path / "leaderboard.md").write_text(text)
    rows = masked_models_table(tmp_path / "leaderboard.md")
    assert [(r["model"], r["error %"]) for r in rows] == [("constant", "33.33"), ("balanced", "40.00")]


def test_an_evaluate_hub_id_out_of_reach_is_one_line(store):
    spec = _spec(extra_metrics=[{"name": "hub_accuracy", "module": "accuracy"}])
    with pytest.raises(HarnessInputError) as caught:
        Leaderboard.from_store(store, spec, n_boot=50)
    message = str(caught.value)
    assert "\n" not in message and "cannot load evaluate module 'accuracy'" in message
    assert "give its local path as module" in message


# ----- leakage ---------------------------------------------------------------------------------------------

TRAIN = [
    ("the striker scored twice in the final", "0", "en"),
    ("The  Cat SAT on the mat", "1", "en"),  # a test text again, in other case and spacing
    ("le chat dort sur le canapé", "1", "fr"),  # a test text again, exactly
    ("ﬁnal whistle blown", "0", "en"),  # NFKC: the ligature ﬁ is "fi"
    ("ﬁnal whistle blown", "0", "en"),  # twice in train: two train rows, one eval text
    ("a goal in the last minute", "0", "en"),
    ("la soupe est froide", "1", "fr"),
    ("un but magnifique", "0", "fr"),
    ("the keeper saved a penalty", "0", "en"),
    ("the cat sat on a mat", "1", "en"),  # one word differs: not the same text
]
TEST = [
    ("the cat sat on the mat", "1", "en"),
    ("le chat dort sur le canapé", "1", "fr"),
    ("final whistle blown", "0", "en"),
    ("a new striker signed today", "0", "en"),
    ("le match est fini", "0", "fr"),
    ("the soup was cold", "1", "en"),
]
REPEATED = {normalized_text(t) for t, _, _ in TEST[:3]}


@pytest.fixture(scope="module")
def leaky(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("leaky")
    write_csv(folder / "data" / "train.csv", TRAIN, "text,label,lang")
    write_csv(folder / "data" / "test.csv", TEST, "text,label,lang")
    for dedupe in ("keep", "drop_from_train"):
        (folder / f"leaky_{dedupe}.yaml").write_text(
            f"name: leaky\nlabel_names: [sport, other]\ngroup_columns: [lang]\ndedupe: {dedupe}\n"
            "default_budget: tiny\nbudgets: {tiny: {}}\n"
        )
    return folder


def _leaky_spec(folder: Path, dedupe: str) -> BenchmarkSpec:
    return load_benchmark(str(folder / f"leaky_{dedupe}.yaml"))[0]


def test_eval_texts_also_in_train_are_counted_per_benchmark_and_per_group(leaky):
    data = load_benchmark_data(_leaky_spec(leaky, "keep"), leaky / "data")
    assert data.source["leakage"] == {
        "eval_texts": 6, "in_train": 3, "by_group": {"lang": {"en": 2, "fr": 1}}, "train_rows_matching": 4,
        "dedupe": "keep", "dropped_from_train": 0,
    }
    assert len(data.train) == len(TRAIN)


def test_dedupe_drop_from_train_trains_without_them(leaky, tmp_path):
    data = load_benchmark_data(_leaky_spec(leaky, "drop_from_train"), leaky / "data")
    assert len(data.train) == len(TRAIN) - 4 and data.source["leakage"]["dropped_from_train"] == 4
    assert not REPEATED & {normalized_text(t) for t in data.train.texts}
    assert "the cat sat on a mat" in data.train.texts  # a near miss stays
    # The whole command: the run trains on the 6 rows left, records the count and says it in the leaderboard.
    results = tmp_path / "results"
    code = main(["run", "--benchmark", str(leaky / "leaky_drop_from_train.yaml"), "--data-dir", str(leaky / "data"),
                 "--models", "tfidf-logreg", "--registry", str(PROJECT_ROOT / "models_registry.yaml"),
                 "--results-dir", str(results), "--latency-samples", "3", "--quiet"])
    assert code == 0
    result = json.loads((run_path(results, "leaky", "tfidf-logreg") / "result.json").read_text())
    assert result["data"]["train_rows"] == 6
    assert result["data"]["leakage"]["in_train"] == 3 and result["data"]["leakage"]["dropped_from_train"] == 4
    text = (results / "leaky" / "leaderboard.md").read_text()
    assert ("**Leakage**: 3 of 6 test texts also occur in the train split (exact after Unicode NFKC, whitespace and "
            "case normalisation); per lang: en 2, fr 1; the 4 train row(s) holding them were removed "
            "(dedupe: drop_from_train)") in text


def test_the_default_keeps_every_configuration_id(leaky):
    keep, drop = _leaky_spec(leaky, "keep"), _leaky_spec(leaky, "drop_from_train")
    assert "dedupe" not in benchmark_definition(keep) and "extra_metrics" not in benchmark_definition(keep)
    assert "main_metric" not in benchmark_definition(keep)
    assert benchmark_hash(drop) != benchmark_hash(keep)  # dropping rows changes what every model trains on
    # The committed results' configurations rebuild to the ids they were stored under, main metrics now set.
    for stored in sorted((PROJECT_ROOT / "results").glob("*/configs/*/configuration.json")):
        configuration = Configuration.model_validate_json(stored.read_text())
        spec, _ = load_benchmark(configuration.benchmark)
        rebuilt = Configuration.build(
            benchmark=spec.name, benchmark_definition=benchmark_definition(spec),
            budget_profile=configuration.budget_profile, budget=configuration.budget,
            limit_train=configuration.limit_train, limit_test=configuration.limit_test,
            train_sample=configuration.train_sample, data=configuration.data,
        )
        assert (rebuilt.id, rebuilt.label) == (configuration.id, configuration.label)
    assert load_benchmark("amazon_polarity")[0].main_metric == "accuracy"
