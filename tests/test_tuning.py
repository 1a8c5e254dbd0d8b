"""A tuned budget: every model gets the same trials, scored on validation only; the selected one is the row on test."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.config.registry import load_benchmark
from harness.config.schema import Budget
from harness.core.errors import HarnessInputError
from harness.store.results import Configuration, benchmark_definition, read_result
from harness.store.results_store import ResultsStore
from tests.conftest import FIXTURES, ROOT
from tests.tiny_models import build_tiny_model

TUNED = """\
  tuned:
    {epochs: 1, max_length: 32, batch_size: 8, eval_batch_size: 16, learning_rate: 1.0e-3, precision: fp32,
     tuning: {trials: 4, validation_share: 0.25, space: {
       C: {low: 0.01, high: 100.0, log: true}, ngram_max: {low: 1, high: 2},
       learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}, epochs: {low: 1, high: 2}}}}
"""

# Loaded by every Python a test starts (PYTHONPATH): kills the process of TF-IDF's trial 2 mid-training, as a
# lost machine would, so the study stops with trials 0, 1 and 3 done.
KILL_TRIAL_2 = """\
import os
import signal

from harness.models import tfidf

_fit = tfidf.TfidfLogReg.fit


def fit(self, train, budget, workdir, show_progress=True, **kwargs):
    if str(workdir).endswith("/trial-2"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _fit(self, train, budget, workdir, show_progress, **kwargs)


tfidf.TfidfLogReg.fit = fit
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuning")
    benchmarks = root / "benchmarks"
    benchmarks.mkdir()
    yaml = (FIXTURES / "benchmarks" / "tiny_binary.yaml").read_text()
    (benchmarks / "tiny_binary.yaml").write_text(yaml + TUNED)
    texts = pd.read_csv(FIXTURES / "binary" / "train.csv")["text"].tolist()
    tiny = build_tiny_model("bert", root / "tiny-bert", texts)
    registry = root / "registry.yaml"
    registry.write_text("models:\n  - {name: tfidf, family: tfidf, params: {min_df: 1}}\n"
                        f"  - {{name: tiny, family: transformer, source: {{path: '{tiny}'}}}}\n")
    return root, benchmarks, registry


def args(setup, results: Path, *extra: str) -> list[str]:
    _, benchmarks, registry = setup
    return [
        "--benchmark", "tiny_binary", "--benchmarks-dir", str(benchmarks), "--budget", "tuned",
        "--registry", str(registry), "--data-dir", str(FIXTURES / "binary"), "--results-dir", str(results),
        "--latency-samples", "2", "--no-variants", "--quiet", "--yes", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def sequential(setup):
    """Both models, one process, one run at a time: what every other way of running must reproduce."""
    results = setup[0] / "sequential"
    assert main(args(setup, results, "--models", "all", "--no-isolate")) == 0
    return results


def studies(results: Path) -> dict[str, dict]:
    """Each model's study as its selected run records it, without the times (they differ between runs)."""
    out = {}
    for path in sorted(results.glob("tiny_binary/configs/*/runs/*/seed-*/result.json")):
        record = read_result(path).tuning.model_dump()
        for trial in record["trials"]:
            trial.pop("train_seconds")
        out[path.parent.parent.name] = record
    return out


def test_each_model_gets_the_same_trials_and_the_best_on_validation_is_its_row(sequential):
    found = studies(sequential)
    assert sorted(found) == ["tfidf", "tiny"]
    for model, record in found.items():
        assert record["trials_planned"] == 4 and [t["number"] for t in record["trials"]] == [0, 1, 2, 3]
        assert all(t["status"] == "completed" for t in record["trials"])
        scores = [t["validation_score"] for t in record["trials"]]
        # the best macro-F1 on validation, the lowest trial number among equals
        assert record["selected"] == scores.index(max(scores)), model
        assert record["metric"] == "f1_macro" and record["direction"] == "maximize" and record["sampler"] == "qmc"
        assert record["validation"] == "a stratified 25% of train (12 rows), carved per seed"
    assert sorted(found["tfidf"]["space"]) == ["C", "ngram_max"]
    assert sorted(found["tiny"]["space"]) == ["epochs", "learning_rate"]
    # the row on test trained with the selected trial's values
    row = read_result(next(sequential.glob("tiny_binary/configs/*/runs/tfidf/seed-42/result.json")))
    chosen = row.tuning.selected_trial.params
    assert row.model_settings["C"] == chosen["C"] and row.model_settings["ngram_range"] == f"1-{chosen['ngram_max']}"


def test_validation_rows_are_train_rows_apart_from_test_and_test_is_scored_only_for_the_selection(sequential):
    train = pd.read_csv(FIXTURES / "binary" / "train.csv")
    test_texts = set(pd.read_csv(FIXTURES / "binary" / "test.csv")["text"])
    trials = sorted(sequential.glob("tiny_binary/configs/*/trials/*/seed-42/trial-*/result.json"))
    assert len(trials) == 8
    for path in trials:
        result = read_result(path)
        # scored on the validation rows only
        assert result.data.eval_split == "validation" and result.data.eval_rows == 12
        ids = pd.read_csv(path.parent / "predictions.csv")["id"].tolist()
        assert len(ids) == 12 and not set(train["text"].iloc[ids]) & test_texts
        assert result.data.train_rows == len(train) - 12
    runs = sorted(sequential.glob("tiny_binary/configs/*/runs/*/seed-42/result.json"))
    assert len(runs) == 2
    for path in runs:
        result = read_result(path)
        assert result.data.eval_split == "test" and result.metrics.n == 24 and result.data.train_rows == len(train) - 12
    # the leaderboard holds the two selections, nothing of the trials
    board = (sequential / "tiny_binary" / "leaderboard.md").read_text()
    assert "| tfidf |" in board.replace("**", "") or "tfidf" in board
    assert "trial-" not in board


def test_a_kill_in_the_middle_of_the_study_and_a_rerun_give_the_same_trials(setup, sequential, tmp_path, monkeypatch):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(KILL_TRIAL_2))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), str(ROOT)]))
    results = tmp_path / "killed"
    assert main(args(setup, results, "--models", "tfidf")) == 1
    store = ResultsStore(results)
    (config,) = store.configurations("tiny_binary")
    killed = store.load_result(store.trial_dir("tiny_binary", config.label, "tfidf", 42, 2))
    assert killed.status == "failed" and killed.error.type == "ChildProcessDied"
    # the failed trial is recorded and the others are not lost: the best of the three is the row for now
    (partial,) = studies(results).values()
    assert [t["status"] for t in partial["trials"]] == ["completed", "completed", "failed", "completed"]
    expected = studies(sequential)["tfidf"]
    assert [t for t in partial["trials"] if t["number"] != 2] == [t for t in expected["trials"] if t["number"] != 2]
    # the machine is back (no hook): the rerun skips the three finished trials, redoes the killed one, reselects
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    assert main(args(setup, results, "--models", "tfidf")) == 0
    assert studies(results)["tfidf"] == studies(sequential)["tfidf"]


def test_two_at_once_give_the_selections_of_one_process(setup, sequential, tmp_path):
    assert main(args(setup, tmp_path, "--models", "all", "--parallel", "2")) == 0
    assert studies(tmp_path) == studies(sequential)


def test_ray_workers_give_the_selections_of_one_process(setup, sequential, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is the optional extra '.[ray]'")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}})
    except Exception as exc:  # noqa: BLE001 - a machine where Ray cannot start (no shared memory, ports)
        pytest.skip(f"a local Ray instance cannot start here: {type(exc).__name__}: {exc}")
    try:
        assert main(args(setup, tmp_path, "--models", "tfidf", "--executor", "ray")) == 0
    finally:
        ray.shutdown()
    assert studies(tmp_path)["tfidf"] == studies(sequential)["tfidf"]


def test_an_extra_metric_from_a_local_evaluate_module_selects_the_trials(setup, tmp_path):
    """``main_metric`` may name an extra metric: its module scores every trial's validation predictions, and the
    lowest error rate (its direction) is the one selected."""
    root, _, registry = setup
    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir()
    shutil.copy(FIXTURES / "evaluate_metrics" / "error_rate.py", benchmarks / "error_rate.py")
    yaml = (FIXTURES / "benchmarks" / "tiny_binary.yaml").read_text() + TUNED
    (benchmarks / "tiny_binary.yaml").write_text(
        yaml + "main_metric: error_rate\nextra_metrics:\n"
        "  - {name: error_rate, module: ./error_rate.py, higher_is_better: false}\n")
    results = tmp_path / "results"
    assert main(args((root, benchmarks, registry), results, "--models", "tfidf", "--no-isolate")) == 0
    (record,) = studies(results).values()
    assert record["metric"] == "error_rate" and record["direction"] == "minimize"
    for trial in record["trials"]:
        # the module's value on the trial's own validation predictions: its share of wrong labels, exactly
        path = next(results.glob(f"tiny_binary/configs/*/trials/tfidf/seed-42/trial-{trial['number']}"))
        predictions = pd.read_csv(path / "predictions.csv")
        predicted = predictions[["prob_0", "prob_1"]].to_numpy().argmax(axis=1)
        wrong = int((predictions["label"].to_numpy() != predicted).sum())
        assert trial["validation_score"] == wrong / len(predictions)
        assert trial["validation_score"] == pytest.approx(1 - read_result(path / "result.json").metrics.accuracy, abs=1e-12)
    scores = [t["validation_score"] for t in record["trials"]]
    assert record["selected"] == scores.index(min(scores))


def test_a_space_naming_an_unknown_field_is_one_line_naming_the_file_and_the_field(tmp_path):
    yaml = (FIXTURES / "benchmarks" / "tiny_binary.yaml").read_text()
    path = tmp_path / "tiny_binary.yaml"
    path.write_text(yaml + TUNED.replace("ngram_max:", "ngram_range:"))
    with pytest.raises(HarnessInputError) as caught:
        load_benchmark(str(path), tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "budgets.tuned.tuning.space" in message
    assert "unknown field 'ngram_range'" in message


def test_an_entry_may_narrow_its_space_but_never_widen_it(setup):
    from harness.config.schema import ModelSpec
    from harness.run.tuning import model_space

    _, benchmarks, _ = setup
    spec, _ = load_benchmark("tiny_binary", benchmarks)
    tuning = spec.budgets["tuned"].tuning

    class Entry:  # what model_space reads of a job
        def __init__(self, **narrow):
            self.model_spec = ModelSpec(name="t", family="tfidf", tuning_space=narrow or None)
            self.model = "t"

    space, narrowed = model_space(spec, tuning, Entry(C={"low": 1.0, "high": 10.0, "log": True}), "reg.yaml")
    assert narrowed and (space["C"].low, space["C"].high) == (1.0, 10.0) and space["ngram_max"].high == 2
    with pytest.raises(HarnessInputError, match=r"reg.yaml \[model 't'\]: tuning_space.C: \[0.001, 10.0\] \(log\) "
                                                r"is not within the benchmark's \[0.01, 100.0\] \(log\)"):
        model_space(spec, tuning, Entry(C={"low": 0.001, "high": 10.0, "log": True}), "reg.yaml")
    assert model_space(spec, tuning, Entry(), None)[1] is False


def test_untuned_configuration_ids_and_entries_are_unchanged():
    stored = json.loads((ROOT / "results/amazon_polarity/configs/quick-train2000-testall-0a52a797d0/"
                         "configuration.json").read_text())
    spec, _ = load_benchmark("amazon_polarity", ROOT / "benchmarks")
    built = Configuration.build(
        benchmark=spec.name, benchmark_definition=benchmark_definition(spec), budget_profile="quick",
        budget=Budget.model_validate(stored["budget"]), limit_train=2000, limit_test=None, train_sample="per-seed",
        data=stored["data"],
    )
    assert built.id == "0a52a797d0" == stored["id"]
    from harness.config.schema import ModelSpec

    assert "tuning_space" not in ModelSpec(name="m", family="tfidf").identity()


def test_the_parameter_table_is_the_families_own():
    from harness.models import FAMILIES, family_class, params_schema

    assert all(params_schema(f) is family_class(f).params_schema for f in FAMILIES)
