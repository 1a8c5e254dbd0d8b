"""Model families as plug-ins: the registry checks an entry's family and params against the family table, and a
family is one module plus one line in ``FAMILIES``. (Importing ``harness.models`` registers that table, as every command
does before it reads a registry.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.config.registry import DEFAULT_REGISTRY, load_registry
from harness.config.schema import Budget, ModelSpec
from harness.core.errors import HarnessInputError
from harness.models import FAMILIES, check_entries, family_class, load_model, save_model
from harness.store.results import Configuration, run_fingerprint
from tests.conftest import FIXTURES, ROOT, run_path, shared_data


def registry_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    with pytest.raises(HarnessInputError) as err:
        load_registry(path)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_an_unknown_family_is_one_line_with_a_did_you_mean(tmp_path):
    message = registry_error(tmp_path, "models:\n  - {name: a, family: tfidff}\n")
    assert message == (
        f"{tmp_path / 'registry.yaml'} [model 'a']: field 'models.0.family': Value error, unknown family 'tfidff' "
        "(did you mean 'tfidf'?) (fix: give 'family' a valid value)"
    )


def test_a_family_far_from_any_lists_them_all(tmp_path):
    message = registry_error(tmp_path, "models:\n  - {name: a, family: xgboost}\n")
    assert f"unknown family 'xgboost' (choose from: {', '.join(FAMILIES)})" in message


def test_params_and_the_legacy_tfidf_key_read_the_same(tmp_path):
    new = tmp_path / "new.yaml"
    new.write_text("models:\n  - {name: a, family: tfidf, params: {ngram_max: 1, C: 2}}\n")
    old = tmp_path / "old.yaml"
    old.write_text("models:\n  - {name: a, family: tfidf, tfidf: {ngram_max: 1, C: 2}}\n")
    assert load_registry(new) == load_registry(old)
    spec = load_registry(new)["a"]
    # Validated by the family's schema, defaults filled in: what the model is built from.
    assert spec.params == {"ngram_max": 1, "min_df": 2, "max_features": 500000, "sublinear_tf": True, "C": 2.0,
                           "max_iter": 1000}
    assert spec.tfidf is None and spec.identity() == load_registry(old)["a"].identity()


def test_a_bad_param_is_named_under_the_key_it_was_written_with(tmp_path):
    assert "field 'models.0.params.C': Input should be greater than 0" in registry_error(
        tmp_path, "models:\n  - {name: a, family: tfidf, params: {C: -1}}\n")
    assert "field 'models.0.tfidf.C': Input should be greater than 0" in registry_error(
        tmp_path, "models:\n  - {name: a, family: tfidf, tfidf: {C: -1}}\n")
    assert "unknown field 'ngram'" in registry_error(
        tmp_path, "models:\n  - {name: a, family: tfidf, params: {ngram: 1}}\n")


def test_params_given_twice_or_to_the_wrong_family_are_refused(tmp_path):
    both = registry_error(tmp_path, "models:\n  - {name: a, family: tfidf, params: {C: 1}, tfidf: {C: 1}}\n")
    assert "give the parameters once, under 'params' ('tfidf' is its old name)" in both
    wrong = registry_error(
        tmp_path, "models:\n  - {name: a, family: transformer, source: {hub_id: x/y}, tfidf: {C: 1}}\n")
    assert "'tfidf' holds the tfidf family's parameters; give a transformer entry's under 'params'" in wrong


def test_the_source_rule_is_the_familys(tmp_path):
    registry = tmp_path / "registry.yaml"
    with pytest.raises(HarnessInputError, match=r"\[model 'a'\]: a tfidf entry takes no 'source'"):
        check_entries([ModelSpec(name="a", family="tfidf", source={"hub_id": "x/y"})], registry)
    check_entries([ModelSpec(name="a", family="tfidf")], registry)
    assert family_class("tfidf").takes_source is False


def test_every_family_declares_what_the_harness_asks_of_it():
    for name in FAMILIES:
        cls = family_class(name)
        assert cls.params_schema is None or cls.params_schema.model_validate({})
        assert cls.budget_fields and isinstance(cls.takes_source, bool)
        assert cls.card_library and cls.card_usage and callable(cls.settings)


def test_committed_tfidf_runs_keep_their_fingerprints():
    """Moving the parameters to `params:` must not make the committed TF-IDF runs stale (re-run)."""
    spec = load_registry(DEFAULT_REGISTRY)["tfidf-logreg"]
    stored = sorted((ROOT / "results").glob("**/runs/tfidf-logreg/seed-*/result.json"))
    assert stored
    for path in stored:
        result = json.loads(path.read_text())
        configuration = Configuration.model_validate(result["configuration"])
        entry = {**spec.identity(), "commit": None}
        assert run_fingerprint(configuration, entry, result["seed"], result["train_filter"]) == result["fingerprint"]


def test_entries_without_params_hash_as_they_always_did():
    """A transformer entry (no params) hashes the same fields as before `params:` existed, `tfidf: None` included."""
    for spec in load_registry(DEFAULT_REGISTRY).values():
        if spec.family == "transformer":
            # `tuning_space` came later still: an entry that narrows no space hashes as before it existed.
            assert spec.tuning_space is None
            assert spec.identity() == spec.model_dump(exclude={"description", "params", "tuning_space"})
            assert set(spec.identity()) == {"name", "family", "source", "tfidf", "budget_overrides",
                                            "trust_remote_code", "multilingual"}


# ----- the majority family: a chance baseline added as one module plus one line --------------------------------


def majority(strategy: str = "most_frequent", labels: tuple[str, ...] = ("negative", "positive")):
    from harness.models.majority import MajorityClassifier

    return MajorityClassifier.from_spec(
        ModelSpec(name="m", family="majority", params={"strategy": strategy}), list(labels))


def split(labels: list[int]):
    from harness.data.loading import Split

    return Split(name="train", texts=[f"text {i}" for i in range(len(labels))], labels=np.array(labels),
                 ids=np.arange(len(labels)))


def imbalanced(tmp_path: Path, train: tuple[int, int], test: tuple[int, int]) -> Path:
    """The binary fixture's texts with (negative, positive) rows per split as given."""
    rows = pd.read_csv(FIXTURES / "binary" / "train.csv")
    folder = tmp_path / "imbalanced"
    folder.mkdir()
    for name, (neg, pos) in (("train", train), ("test", test)):
        picked = pd.concat([rows[rows.label == 0].head(neg), rows[rows.label == 1].head(pos)])
        picked.to_csv(folder / f"{name}.csv", index=False)
    return folder


def cli_args(results: Path, benchmark: str, data_dir: Path | None, models: str = "majority,stratified-chance"):
    where = ["--benchmarks-dir", str(FIXTURES / "benchmarks"), "--data-dir", str(data_dir)] if data_dir else []
    return ["--models", models, "--benchmark", benchmark, *where, "--results-dir", str(results),
            "--latency-samples", "3", "--quiet", "--no-isolate"]


def test_majority_scores_exactly_the_share_of_the_train_majority_class(tmp_path):
    # Negative is the most frequent class in train, positive in test: the baseline answers negative throughout.
    data = imbalanced(tmp_path, train=(20, 8), test=(4, 12))
    assert main(cli_args(tmp_path / "r", "tiny_binary", data, "majority")) == 0
    result = json.loads((run_path(tmp_path / "r", "tiny_binary", "majority") / "result.json").read_text())
    assert result["status"] == "completed" and result["family"] == "majority"
    assert result["metrics"]["accuracy"] == 4 / 16
    assert result["metrics"]["per_class"]["positive"]["recall"] == 0.0
    assert result["model_settings"] == {"strategy": "most_frequent"}
    assert result["budget_fields_used"] == ["train_examples", "test_examples", "seed", "eval_batch_size"]
    assert result["inference"]["latency_batch1_end_to_end"]["p50_ms"] > 0


def test_most_frequent_breaks_a_tie_towards_the_first_class_and_leaves_unseen_classes_at_zero():
    model = majority(labels=("a", "b", "c"))
    model.fit(split([2, 1, 2, 1]), Budget(), Path("."))
    probs = model.predict_proba(["x", "y"])
    assert probs.tolist() == [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]


def test_stratified_is_the_same_for_the_same_seed_and_follows_the_train_frequencies():
    train = split([0] * 30 + [1] * 10)
    texts = [f"t{i}" for i in range(4000)]

    def answers(seed: int) -> np.ndarray:
        model = majority("stratified")
        model.fit(train, Budget(seed=seed), Path("."))
        return model.predict_proba(texts)

    first = answers(7)
    assert np.array_equal(first, answers(7)) and not np.array_equal(first, answers(8))
    assert set(first.sum(axis=1).tolist()) == {1.0}
    assert abs(first[:, 0].mean() - 0.75) < 0.03  # drawn at the train frequencies, 30 of 40


@pytest.mark.parametrize("strategy", ["most_frequent", "stratified"])
def test_a_saved_majority_model_predicts_the_same_after_load(tmp_path, strategy):
    model = majority(strategy, labels=("a", "b", "c"))
    model.fit(split([0, 1, 1, 2, 2, 2, 2]), Budget(seed=3), tmp_path)
    save_model(model, tmp_path / "model", "majority")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["harness_family.json", "majority_config.json"]
    json.loads((tmp_path / "model" / "majority_config.json").read_text())  # plain JSON: loading runs no code
    loaded = load_model(tmp_path / "model")
    texts = [f"t{i}" for i in range(50)]
    assert np.array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    assert loaded.label_names == ["a", "b", "c"] and loaded.describe() == model.describe()


def test_a_damaged_majority_folder_fails_in_one_line(tmp_path):
    model = majority()
    model.fit(split([0, 1, 1]), Budget(), tmp_path)
    save_model(model, tmp_path, "majority")
    meta = json.loads((tmp_path / "majority_config.json").read_text())
    (tmp_path / "majority_config.json").write_text(json.dumps({**meta, "class_counts": {"5": 2}}))
    with pytest.raises(HarnessInputError, match=r"majority_config.json: class_counts \[5\] do not fit 2 label names"):
        load_model(tmp_path)


def test_a_majority_entry_takes_no_source_and_only_its_strategies(tmp_path):
    assert "Input should be 'most_frequent' or 'stratified'" in registry_error(
        tmp_path, "models:\n  - {name: a, family: majority, params: {strategy: prior}}\n")
    with pytest.raises(HarnessInputError, match="a majority entry takes no 'source'"):
        check_entries([ModelSpec(name="a", family="majority", source={"hub_id": "x/y"})])


@pytest.mark.parametrize(
    "benchmark, data_dir",
    [("tiny_binary", "binary"), ("tiny_three", "three_class"), ("tiny_multilingual", "multilingual"),
     ("dbpedia14", None)],
    ids=["binary", "three-class", "multilingual", "dbpedia14-shipped-sample"],
)
def test_the_chance_baselines_run_on_every_fixture_and_the_shipped_sample(tmp_path, monkeypatch, benchmark, data_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # dbpedia14 then reads the sample shipped inside the package
    assert main(cli_args(tmp_path, benchmark, FIXTURES / data_dir if data_dir else None)) == 0
    board = (tmp_path / benchmark / "leaderboard.md").read_text()
    for name in ("majority", "stratified-chance"):
        result = json.loads((run_path(tmp_path, benchmark, name) / "result.json").read_text())
        assert result["status"] == "completed" and f"| {name} " in board
        assert (run_path(tmp_path, benchmark, name) / "model" / "README.md").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", sorted(p.stem for p in (ROOT / "benchmarks").glob("*.yaml")))
def test_the_chance_baselines_run_on_every_shipped_benchmark_with_its_real_data(tmp_path, benchmark):
    folder = {"dbpedia14": "dbpedia14_subset", "tweet_sentiment_multilingual": "xlmt_umsab_sentiment"}
    data = shared_data(folder.get(benchmark, benchmark))
    args = ["--models", "majority,stratified-chance", "--benchmark", benchmark, "--data-dir", str(data),
            "--results-dir", str(tmp_path), "--latency-samples", "3", "--quiet", "--no-isolate", "--limit-test", "500"]
    assert main(args) == 0
    for name in ("majority", "stratified-chance"):
        assert json.loads((run_path(tmp_path, benchmark, name) / "result.json").read_text())["status"] == "completed"


def test_the_majority_family_touched_only_its_module_and_one_line_of_families():
    """Adding a family is one module plus one line in FAMILIES: no other module of the harness names it."""
    package = ROOT / "harness"
    naming = {
        str(path.relative_to(ROOT)): [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                                      if "majority" in line.lower()]
        for path in sorted(package.rglob("*.py"))
        if path != package / "models" / "majority.py"
    }
    assert {path: lines for path, lines in naming.items() if lines} == {
        "harness/models/__init__.py": ['"majority": Family("harness.models.majority:MajorityClassifier", '
                                       'params="harness.models.majority:MajorityParams", chance=True),'],
    }

