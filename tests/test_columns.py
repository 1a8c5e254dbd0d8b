"""The catalogue of metric columns (harness/metrics/columns.py): MCC and balanced accuracy added through it alone.

Exact values on hand-made arrays against the hand computation, the columns in every file of the report and in the
schema, results written before the columns (the fixture store, results/) still read and get the columns computed
from their predictions, and a further column added in a fresh interpreter as one catalogue entry reaches the schema,
the CSV and the markdown with nothing else changed.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.config.registry import load_benchmark
from harness.metrics import columns as catalogue
from harness.metrics.quality import classification_metrics
from harness.report import publish
from harness.report.board import Leaderboard
from harness.report.publish import render_markdown, write_leaderboard
from harness.run.model_card import build_model_card
from harness.run.trackers import final_metrics
from harness.store.results import json_schema, read_result
from harness.store.results_store import ResultsStore
from tests import synthetic

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MCC = catalogue.columns()[[c.name for c in catalogue.columns()].index("mcc")]
BALANCED = catalogue.columns()[[c.name for c in catalogue.columns()].index("balanced_accuracy")]
ADDED = ("mcc", "balanced_accuracy")

# Three classes, six examples. Confusion (rows true, columns predicted): [[2, 1, 0], [0, 1, 1], [0, 0, 1]].
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])
# MCC (Gorodkin): c = 4 correct of s = 6, true counts t = (3, 2, 1), predicted p = (2, 2, 2):
# (c*s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)) = (24 - 12) / sqrt((36 - 12)(36 - 14)) = 12 / sqrt(528).
HAND_MCC = 12 / math.sqrt(528)
# Recall per class 2/3, 1/2, 1/1: mean 13/18.
HAND_BALANCED = 13 / 18


def probs_of(predicted: np.ndarray, k: int = 3) -> np.ndarray:
    probs = np.full((len(predicted), k), 0.1)
    probs[np.arange(len(predicted)), predicted] = 1 - 0.1 * (k - 1)
    return probs


# ----- exact values -----------------------------------------------------------------------------------------


def test_mcc_and_balanced_accuracy_equal_the_hand_computation_three_classes():
    assert MCC.score(Y_TRUE, probs_of(Y_PRED)) == pytest.approx(HAND_MCC, abs=1e-15)
    assert BALANCED.score(Y_TRUE, probs_of(Y_PRED)) == pytest.approx(HAND_BALANCED, abs=1e-15)
    metrics = classification_metrics(Y_TRUE, probs_of(Y_PRED), ["a", "b", "c"])
    assert metrics["mcc"] == pytest.approx(HAND_MCC, abs=1e-15)
    assert metrics["balanced_accuracy"] == pytest.approx(HAND_BALANCED, abs=1e-15)


def test_binary_mcc_is_the_phi_coefficient_and_balanced_accuracy_the_mean_of_the_two_recalls():
    # TP 3, FN 1, TN 4, FP 2: (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 10 / sqrt(600).
    y_true = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    assert MCC.score(y_true, probs_of(y_pred, 2)) == pytest.approx(10 / math.sqrt(600), abs=1e-15)
    assert BALANCED.score(y_true, probs_of(y_pred, 2)) == pytest.approx((3 / 4 + 4 / 6) / 2, abs=1e-15)


def test_a_class_predicted_but_absent_from_the_split_and_a_constant_prediction():
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    # Confusion [[1, 0, 1], [0, 2, 0], [0, 0, 0]]: c 3, s 4, t (2, 2, 0), p (1, 2, 1): 6 / sqrt(10 * 8).
    assert MCC.score(y_true, probs_of(y_pred)) == pytest.approx(6 / math.sqrt(80), abs=1e-15)
    # Class 2 has no true example: balanced accuracy averages the recalls of classes 0 and 1 (1/2 and 1).
    assert BALANCED.score(y_true, probs_of(y_pred)) == pytest.approx(0.75, abs=1e-15)
    constant = np.zeros(6, dtype=int)
    assert MCC.score(Y_TRUE, probs_of(constant)) == 0.0
    assert BALANCED.score(Y_TRUE, probs_of(constant)) == pytest.approx(1 / 3, abs=1e-15)


def test_every_interval_form_gives_the_stored_number_and_resamples_by_weights():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, 200)
    probs = rng.dirichlet(np.ones(4), 200)
    for column in catalogue.columns():
        if column.interval is None:
            continue
        assert column.interval(y_true, probs) == pytest.approx(column.score(y_true, probs), abs=1e-12), column.name
        # A resample is a vector of counts: counts of 2 on half the examples equal scoring them twice.
        counts = np.r_[np.full(100, 2.0), np.zeros(100)][None, :]
        doubled = np.r_[np.arange(100), np.arange(100)]
        assert column.interval.weighted(y_true, probs, counts)[0] == pytest.approx(
            column.score(y_true[doubled], probs[doubled]), abs=1e-12
        ), column.name


# ----- the schema and results written before the columns ----------------------------------------------------


def test_the_schema_has_the_columns_as_optional_fields_and_the_docs_say_so():
    for schema in (json_schema(), json.loads((ROOT / "docs" / "result.schema.json").read_text())):
        metrics = schema["$defs"]["Metrics"]
        for name in ADDED:
            assert metrics["properties"][name]["default"] is None
            assert name not in metrics["required"]
        assert {"accuracy", "f1_macro", "roc_auc"} <= set(metrics["required"])


def test_results_written_before_the_columns_still_read():
    stored = sorted((FIXTURES / "store").rglob("result.json")) + sorted((ROOT / "results").rglob("result.json"))
    # The committed runs of tfidf-logreg and minilm-l6 (and the fixture store) predate the columns.
    older = [p for p in stored if "/runs/tfidf-logreg/" in p.as_posix() or "/runs/minilm-l6/" in p.as_posix()]
    assert len(older) >= 10
    for path in older:
        result = read_result(path)
        if result.completed:
            assert result.metrics.mcc is None and "mcc" not in result.metrics.model_fields_set, path
            assert result.metrics.balanced_accuracy is None


# ----- the report ------------------------------------------------------------------------------------------


def _write_store(root: Path, *, strip: bool) -> tuple[ResultsStore, object]:
    """``hand`` (the arrays above), ``constant`` (always class 0); ``strip``: written before the columns."""
    spec, _ = load_benchmark("tiny_three", FIXTURES / "benchmarks")
    store = ResultsStore(root)
    config = synthetic.configuration(spec)
    runs = [
        synthetic.write_run(store, spec, config, "hand", 1, Y_TRUE, probs_of(Y_PRED), family="tfidf"),
        synthetic.write_run(store, spec, config, "constant", 1, Y_TRUE, probs_of(np.zeros(6, int)), family="tfidf"),
        # A second seed scored on other examples (a store edited by hand) is left out of the statistics.
        synthetic.write_run(store, spec, config, "constant", 2, Y_TRUE[:4], probs_of(np.zeros(4, int)), family="tfidf"),
    ]
    if strip:
        for run_dir in runs:
            raw = json.loads((run_dir / "result.json").read_text())
            for name in ADDED:
                del raw["metrics"][name]
            (run_dir / "result.json").write_text(json.dumps(raw, indent=2))
    store.set_current(config)
    return store, spec


@pytest.fixture(scope="module")
def written_before(tmp_path_factory) -> Path:
    """The report files of a store whose results were written before the columns existed."""
    store, spec = _write_store(tmp_path_factory.mktemp("columns"), strip=True)
    board = Leaderboard.from_store(store, spec, n_boot=200)
    out = store.config_dir(spec.name, board.configuration.label)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish, "draw_figures", lambda board: [])  # not what this file tests
        write_leaderboard(board, out)
    return out


def _table(markdown: str) -> dict[str, dict[str, str]]:
    """The rows of the "Models" table, by model."""
    lines = [line for line in markdown.split("## Models")[1].split("## ")[0].splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)) for line in lines[2:]]
    return {row["model"]: row for row in rows}


def test_the_columns_are_in_the_markdown_csv_and_json(written_before):
    models = _table((written_before / "leaderboard.md").read_text())
    assert models["hand"]["MCC"].startswith(f"{HAND_MCC:.4f} [")
    assert models["hand"]["balanced accuracy"].startswith(f"{HAND_BALANCED:.4f} [")
    # Seed 2 of "constant" was left out of the statistics: nothing to compute its columns from, so only seed 1.
    assert models["constant"]["MCC"] == "0.0000 [0.0000, 0.0000]"
    assert models["constant"]["balanced accuracy"].startswith("0.3333 [")
    # Stored for both seeds; seed 2's four rows hold no class 2, left out of its macro-F1: (6/7 + 0) / 2.
    assert models["constant"]["macro-F1"].startswith(f"{np.mean([2 / 9, 3 / 7]):.4f} ±")
    csv = pd.read_csv(written_before / "leaderboard.csv").set_index(["model", "seed"])
    rows = {(r["model"], r["seed"]): r for r in json.loads((written_before / "leaderboard.json").read_text())["rows"]}
    header = list(csv.columns)
    assert header[header.index("roc_auc") + 1 : header.index("roc_auc") + 3] == list(ADDED)
    for source, digits in ((csv.loc[("hand", 1)], 1e-15), (rows[("hand", 1)], 1e-10)):  # the JSON has 10 decimals
        assert source["mcc"] == pytest.approx(HAND_MCC, abs=digits)
        assert source["balanced_accuracy"] == pytest.approx(HAND_BALANCED, abs=digits)
    assert math.isnan(csv.loc[("constant", 2), "mcc"]) and rows[("constant", 2)]["mcc"] is None


def test_stored_columns_are_shown_as_stored(tmp_path):
    store, spec = _write_store(tmp_path, strip=False)
    board = Leaderboard.from_store(store, spec, n_boot=200)
    models = _table(render_markdown(board))
    assert models["hand"]["MCC"].startswith(f"{HAND_MCC:.4f} [")
    # Both seeds of "constant" stored their scores: 1/3 and 1/2 (classes 0 and 1 of its four examples).
    assert models["constant"]["balanced accuracy"].startswith(f"{np.mean([1 / 3, 1 / 2]):.4f} ± ")
    frame = board.to_pandas().set_index(["model", "seed"])
    assert frame.loc[("constant", 2), "balanced_accuracy"] == 0.5


def test_trackers_and_model_card_take_the_table_columns(tmp_path):
    store, spec = _write_store(tmp_path, strip=False)
    result = Leaderboard.from_store(store, spec, n_boot=10).rows[0].results[0]
    final = final_metrics(result)
    assert final["eval/mcc"] == pytest.approx(HAND_MCC) and final["eval/balanced_accuracy"] == pytest.approx(HAND_BALANCED)
    from harness.config.schema import ModelSpec

    # A card claims results on the hub dataset only for its whole evaluation split: score this run as one.
    hub_data = result.data.model_copy(update={"kind": "hub", "eval_split_rows": result.data.eval_rows})
    card = build_model_card(spec, ModelSpec(name="tfidf", family="tfidf"), result.model_copy(update={"data": hub_data}))
    hub = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert hub["matthews_correlation"] == pytest.approx(HAND_MCC, abs=1e-6)
    assert hub["balanced_accuracy"] == pytest.approx(HAND_BALANCED, abs=1e-6)
    assert f"MCC {HAND_MCC:.4f}, balanced accuracy {HAND_BALANCED:.4f}" in card.text


def test_a_suite_summary_has_the_mean_of_each_suite_column(tmp_path):
    from harness.report.ranks import summarize

    store, spec = _write_store(tmp_path, strip=True)
    board = Leaderboard.from_store(store, spec, n_boot=10)
    table = summarize({spec.name: board}, ["hand", "constant"], n_boot=20).set_index("model")
    assert table.loc["hand", "mean_mcc"] == pytest.approx(HAND_MCC)
    assert table.loc["hand", "mean_balanced_accuracy"] == pytest.approx(HAND_BALANCED)
    assert list(table.columns).index("mean_f1_macro") + 1 == list(table.columns).index("mean_mcc")


# ----- one more column is one entry ---------------------------------------------------------------------------

_ONE_MORE = """
import json, sys
from sklearn.metrics import cohen_kappa_score
from harness.metrics import columns as catalogue
catalogue.COLUMNS = (*catalogue.COLUMNS, catalogue.MetricColumn(
    "kappa", "Cohen's kappa", catalogue.sklearn_metric(cohen_kappa_score), "Cohen's kappa of the arg-max"))
from harness.config.registry import load_benchmark
from harness.report.board import Leaderboard
from harness.report.publish import render_markdown
from harness.store.results import json_schema
from harness.store.results_store import ResultsStore
spec, _ = load_benchmark("tiny_three", sys.argv[2])
board = Leaderboard.from_store(ResultsStore(sys.argv[1]), spec, n_boot=200)
print(json.dumps({"markdown": render_markdown(board), "csv": board.to_pandas().to_csv(index=False),
                  "schema": json_schema()["$defs"]["Metrics"]["properties"]["kappa"]}))
"""


def _without_column(text: str, label: str) -> str:
    """The markdown with the tables' column ``label`` cut out (tabulate sizes every column on its own)."""
    out, drop = [], None
    for line in text.split("\n"):
        if not line.startswith("|"):
            out.append(line)
            drop = None
            continue
        cells = re.split(r"(?<!\\)\|", line)
        if drop is None:
            drop = {i for i, cell in enumerate(cells) if cell.strip() == label}
        out.append("|".join(cell for i, cell in enumerate(cells) if i not in drop))
    return "\n".join(out)


def test_one_catalogue_entry_adds_a_column_to_the_schema_the_csv_and_the_markdown(tmp_path):
    from sklearn.metrics import cohen_kappa_score

    store, spec = _write_store(tmp_path, strip=False)
    process = subprocess.run(
        [sys.executable, "-c", _ONE_MORE, str(tmp_path), str(FIXTURES / "benchmarks")],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    out = json.loads(process.stdout)
    assert out["schema"]["default"] is None
    frame = pd.read_csv(io.StringIO(out["csv"]))
    # Written before the column: computed from the stored predictions.
    hand = frame[(frame["model"] == "hand") & (frame["seed"] == 1)].iloc[0]
    assert hand["kappa"] == pytest.approx(cohen_kappa_score(Y_TRUE, Y_PRED), abs=1e-12)
    assert _table(out["markdown"])["hand"]["Cohen's kappa"] == (
        f"{cohen_kappa_score(Y_TRUE, Y_PRED):.4f}"
    )
    # Nothing else changed: the same report without the column is the report of the catalogue as shipped.
    board = Leaderboard.from_store(store, spec, n_boot=200)
    assert _without_column(out["markdown"], "Cohen's kappa") == render_markdown(board)
    assert frame.drop(columns="kappa").to_csv(index=False) == board.to_pandas().to_csv(index=False)
