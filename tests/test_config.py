"""Registry and benchmark validation: one line naming file, entry and field."""

from pathlib import Path

import pytest

import harness.models  # noqa: F401 - registers the family table the registry checks entries with, as every command does
from harness.config.registry import (
    DEFAULT_REGISTRY,
    list_benchmarks,
    load_benchmark,
    load_registry,
    select_models,
)
from harness.core.errors import HarnessInputError


def write(tmp_path: Path, text: str, name: str = "registry.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_project_registry_has_the_five_models_the_chance_baselines_and_minilm():
    registry = load_registry(DEFAULT_REGISTRY)
    assert list(registry) == [
        "tfidf-logreg", "majority", "stratified-chance", "distilbert-base-uncased", "bert-base-uncased",
        "roberta-base", "xlm-roberta-base", "minilm-l6",
    ]
    assert registry["roberta-base"].source.revision == "main"
    assert registry["tfidf-logreg"].family == "tfidf"


def test_every_project_benchmark_loads():
    names = list_benchmarks()
    assert {"amazon_polarity", "imdb", "sst2", "sst5", "ag_news", "tweet_sentiment_multilingual"} <= set(names)
    for name in names:
        spec, _ = load_benchmark(name)
        assert spec.default_budget in spec.budgets
    assert load_benchmark("sst5")[0].num_labels == 5
    assert load_benchmark("ag_news")[0].num_labels == 4


def test_select_all_and_subset():
    registry = load_registry(DEFAULT_REGISTRY)
    assert len(select_models(registry, "all")) == len(registry)
    assert [m.name for m in select_models(registry, "minilm-l6, tfidf-logreg")] == ["minilm-l6", "tfidf-logreg"]


def test_unknown_model_did_you_mean():
    registry = load_registry(DEFAULT_REGISTRY)
    with pytest.raises(HarnessInputError, match="did you mean 'bert-base-uncased'"):
        select_models(registry, "bert-bse")


def test_unknown_key_names_file_entry_and_field(tmp_path):
    path = write(tmp_path, "models:\n  - name: a\n    family: tfidf\n    tfidff: {C: 1}\n")
    with pytest.raises(HarnessInputError) as err:
        load_registry(path)
    message = str(err.value)
    assert str(path) in message and "model 'a'" in message and "unknown field 'tfidff'" in message
    assert "\n" not in message


def test_wrong_type_is_named(tmp_path):
    path = write(tmp_path, "models:\n  - name: a\n    family: tfidf\n    tfidf: {C: lots}\n")
    with pytest.raises(HarnessInputError, match=r"model 'a'.*tfidf\.C"):
        load_registry(path)


def test_missing_field_is_named(tmp_path):
    path = write(tmp_path, "models:\n  - name: a\n")
    with pytest.raises(HarnessInputError, match="missing required field 'models.0.family'"):
        load_registry(path)


def test_duplicate_names_are_an_error(tmp_path):
    path = write(tmp_path, "models:\n  - {name: a, family: tfidf}\n  - {name: a, family: tfidf}\n")
    with pytest.raises(HarnessInputError, match="duplicate model name"):
        load_registry(path)


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "models:\n  - name: a\n   family: [tfidf\n")
    with pytest.raises(HarnessInputError, match=rf"{path}:\d+: malformed YAML"):
        load_registry(path)


def test_unsafe_name_rejected(tmp_path):
    path = write(tmp_path, "models:\n  - {name: ../../etc, family: tfidf}\n")
    with pytest.raises(HarnessInputError, match="not a safe name"):
        load_registry(path)


def test_only_overridable_budget_fields(tmp_path):
    path = write(tmp_path, "models:\n  - {name: a, family: tfidf, budget_overrides: {epochs: 9}}\n")
    with pytest.raises(HarnessInputError, match="cannot differ between models"):
        load_registry(path)


def test_unknown_benchmark_did_you_mean():
    with pytest.raises(HarnessInputError, match="did you mean 'sst[25]'"):
        load_benchmark("sst")


def test_benchmark_bad_default_budget(tmp_path):
    path = write(
        tmp_path,
        "name: x\ndataset: {hub_id: a/b}\nlabel_names: [a, b]\ndefault_budget: nope\nbudgets: {quick: {}}\n",
        "x.yaml",
    )
    with pytest.raises(HarnessInputError, match="default_budget 'nope'"):
        load_benchmark(str(path))
