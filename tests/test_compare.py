"""``textclf-bench compare A B``: two stores that differ in one model's predictions, paired model by model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from harness.cli import main
from harness.config.registry import load_benchmark
from harness.metrics import stats
from harness.store.results_store import ResultsStore
from tests import synthetic
from tests.test_exports import FIXTURES, three_probs

N = 120
BOOT = "2000"


def _write(root: Path, spec, config, labels, weaker_probs, extra: bool = False) -> Path:
    store = ResultsStore(root)
    for seed in (1, 2):
        synthetic.write_run(store, spec, config, "good", seed, labels, three_probs(labels, 0.85, seed), family="tfidf")
    synthetic.write_run(store, spec, config, "steady", 1, labels, three_probs(labels, 0.7, 11), family="tfidf",
                        latency=2.0 if extra else 1.0)
    synthetic.write_run(store, spec, config, "weaker", 1, labels, weaker_probs, family="tfidf")
    if extra:
        synthetic.write_run(store, spec, config, "newcomer", 1, labels, three_probs(labels, 0.5, 5), family="tfidf")
    store.set_current(config)
    return root / spec.name


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    spec, _ = load_benchmark("tiny_three", FIXTURES / "benchmarks")
    base = tmp_path_factory.mktemp("compare")
    labels = np.arange(N) % 3
    config = synthetic.configuration(spec)
    before, after = three_probs(labels, 0.8, 21), three_probs(labels, 0.55, 22)
    a = _write(base / "a", spec, config, labels, before)
    b = _write(base / "b", spec, config, labels, after, extra=True)
    # C: another test sample (the first 90 rows, another test file's fingerprint).
    other = synthetic.configuration(spec, limit_test=90, data={"train": "test-data", "test": "other-test-data"})
    c = _write(base / "c", spec, other, labels[:90], before[:90])
    return {"a": a, "b": b, "c": c, "labels": labels, "before": before, "after": after}


def _compare(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["compare", *map(str, args), "--benchmarks-dir", str(FIXTURES / "benchmarks"), "--n-boot", BOOT])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_changed_models_paired_difference_is_the_hand_computation(stores, capsys, tmp_path):
    path = tmp_path / "compare.json"
    code, out, _ = _compare(capsys, stores["a"], stores["b"], "--json", path)
    assert code == 0  # a regression, but no --fail-on-regression
    report = json.loads(path.read_text())
    models = {m["model"]: m for m in report["models"]}
    labels = stores["labels"]
    by_hand = (f1_score(labels, stores["after"].argmax(1), average="macro")
               - f1_score(labels, stores["before"].argmax(1), average="macro"))
    weaker = models["weaker"]
    assert report["metric"] == "f1_macro"  # the benchmark's main metric
    assert weaker["paired_bootstrap"]["diff"] == pytest.approx(by_hand, abs=1e-9) and by_hand < -0.1
    again = stats.paired_bootstrap(labels, stores["after"], stores["before"], stats.macro_f1, n_boot=int(BOOT), seed=0)
    assert weaker["paired_bootstrap"]["p_value"] == again["p_value"] < 0.05
    assert (weaker["paired_bootstrap"]["low"], weaker["paired_bootstrap"]["high"]) == (again["low"], again["high"])
    right_b, right_a = stores["after"].argmax(1) == labels, stores["before"].argmax(1) == labels
    test = weaker["mcnemar"][0]
    assert (test["b"], test["c"]) == (int((right_b & ~right_a).sum()), int((~right_b & right_a).sum()))
    assert test["method"] == "exact"
    assert weaker["verdict"] == "regression" and report["regressions"] == ["weaker"]
    for name in ("good", "steady"):
        assert models[name]["paired_bootstrap"]["diff"] == 0 and models[name]["verdict"] == "no significant change"
    assert models["steady"]["costs"]["latency_p50_ms"]["ratio"] == pytest.approx(2.0)
    assert report["only_in_b"] == ["newcomer"] and report["only_in_a"] == []
    row = next(line for line in out.splitlines() if line.startswith("| weaker "))
    assert f"{by_hand:+.4f}" in row and "regression" in row
    assert "only in B: newcomer" in out and "**Regression**: macro-F1 significantly lower in B" in out


def test_fail_on_regression_exits_1_only_when_a_model_is_significantly_worse(stores, capsys):
    assert _compare(capsys, stores["a"], stores["b"], "--fail-on-regression")[0] == 1
    # B against A the other way round is an improvement: nothing regressed.
    assert _compare(capsys, stores["b"], stores["a"], "--fail-on-regression")[0] == 0
    # A drop smaller than --min-drop does not count.
    code, out, _ = _compare(capsys, stores["a"], stores["b"], "--fail-on-regression", "--min-drop", "0.5")
    assert code == 0 and "significant drop within --min-drop" in out
    # Another metric with an interval is accepted; one without is refused in one line.
    assert _compare(capsys, stores["a"], stores["b"], "--metric", "accuracy", "--fail-on-regression")[0] == 1
    code, _, err = _compare(capsys, stores["a"], stores["b"], "--metric", "precision_macro")
    assert code == 2 and err.count("\n") == 1 and "has no paired bootstrap" in err


def test_configuration_folders_and_labels_are_sides_too(stores, capsys):
    configuration = next((stores["a"] / "configs").iterdir())
    code, out, _ = _compare(capsys, configuration, stores["b"])
    assert code == 0 and "| weaker " in out
    label = configuration.name[:6]  # a unique prefix in --results-dir
    code, out, _ = _compare(capsys, label, label, "--results-dir", stores["a"].parent, "--fail-on-regression")
    assert code == 0 and "by more than 0.0: none" in out and out.count("no significant change") == 3


def test_stores_with_other_test_rows_are_refused_in_one_line_unless_intersection(stores, capsys):
    code, out, err = _compare(capsys, stores["a"], stores["c"])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "scored on different test examples" in err and "--intersection" in err
    code, out, _ = _compare(capsys, stores["a"], stores["c"], "--intersection")
    assert code == 0 and "compared on the examples both scored" in out
    row = next(line for line in out.splitlines() if line.startswith("| weaker "))
    assert "| 90 " in row and "no significant change" in row  # the same predictions on the shared 90


def test_shared_ids_with_other_labels_are_refused_even_with_intersection(stores, capsys, tmp_path):
    spec, _ = load_benchmark("tiny_three", FIXTURES / "benchmarks")
    labels = (stores["labels"] + 1) % 3
    other = synthetic.configuration(spec, data={"train": "test-data", "test": "shuffled"})
    shifted = _write(tmp_path / "d", spec, other, labels, three_probs(labels, 0.8, 21))
    code, _, err = _compare(capsys, stores["a"], shifted, "--intersection")
    assert code == 2 and err.count("\n") == 1 and "share an id but not a label" in err


def test_a_folder_copy_compares_equal(stores, capsys, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(stores["a"].parent, copy)
    code, out, _ = _compare(capsys, stores["a"], copy / "tiny_three", "--fail-on-regression")
    assert code == 0 and out.count("no significant change") == 3
