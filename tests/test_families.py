"""Model families as plug-ins: the registry checks an entry's family and params against the family table, and a
family is one module plus one line in ``FAMILIES``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.models  # noqa: F401 - registers the family table the registry checks entries with, as every command does
from harness.config.registry import DEFAULT_REGISTRY, load_registry
from harness.config.schema import ModelSpec
from harness.core.errors import HarnessInputError
from harness.models import FAMILIES, check_entries, family_class
from harness.store.results import Configuration, run_fingerprint
from tests.conftest import ROOT


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
            assert spec.identity() == spec.model_dump(exclude={"description", "params"})
            assert set(spec.identity()) == {"name", "family", "source", "tfidf", "budget_overrides",
                                            "trust_remote_code", "multilingual"}

