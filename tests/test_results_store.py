"""The typed result, the store's trust in what it reads, and what the leaderboard says about a comparison."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.api import to_markdown
from harness.cli import main
from harness.config.schema import BenchmarkSpec, ModelSpec
from harness.core.escape import escape
from harness.report.board import Leaderboard
from harness.report.publish import write_report
from harness.run import provenance
from harness.run.model_card import build_model_card
from harness.store.results import ResultReadError, RunResult, json_schema, parse_result
from harness.store.results_store import ResultsStore
from tests import synthetic
from tests.conftest import FIXTURES, ROOT, run_path


def tfidf_args(results: Path, *extra: str) -> list[str]:
    return [
        "--models", "tfidf-logreg", "--benchmark", "tiny_binary", "--benchmarks-dir", str(FIXTURES / "benchmarks"),
        "--data-dir", str(FIXTURES / "binary"), "--results-dir", str(results), "--quiet", "--no-isolate",
        "--latency-samples", "3", *extra,
    ]  # fmt: skip


def two_class_spec(label_names=("negative", "positive"), group_columns=()) -> BenchmarkSpec:
    return BenchmarkSpec(
        name="tiny_store", dataset={"hub_id": "local/x"}, label_names=list(label_names),
        group_columns=list(group_columns), budgets={"quick": {"learning_rate": 5e-5, "max_length": 64}},
    )  # fmt: skip


def probs_for(labels: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    right = rng.random(len(labels)) < accuracy
    predicted = np.where(right, labels, 1 - labels)
    confidence = rng.uniform(0.55, 0.95, len(labels))
    probs = np.empty((len(labels), 2))
    probs[np.arange(len(labels)), predicted] = confidence
    probs[np.arange(len(labels)), 1 - predicted] = 1 - confidence
    return probs


# ----- the schema ------------------------------------------------------------------------------------------


def test_the_documented_json_schema_is_the_models_schema():
    documented = json.loads((ROOT / "docs" / "result.schema.json").read_text())
    assert documented == json_schema(), "regenerate it: python -m harness.store.results > docs/result.schema.json"


def test_a_run_writes_a_result_that_validates_and_round_trips(tmp_path):
    assert main(tfidf_args(tmp_path)) == 0
    path = run_path(tmp_path, "tiny_binary", "tfidf-logreg") / "result.json"
    result = parse_result(path.read_text(), path)
    assert result.schema_version == 2 and result.completed and result.metrics.n == 24
    assert result.model_settings["ngram_range"] == "1-2" and result.model_settings["vocabulary"] > 0
    assert result.budget_fields_used == ["train_examples", "test_examples", "seed", "eval_batch_size"]
    assert result.truncation.applies is False and result.truncation.eval.share == 0.0
    assert result.environment.harness_source_sha256 == provenance.source_sha256()
    assert json.loads(result.to_json()) == json.loads(path.read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: {k: v for k, v in r.items() if k != "schema_version"}, "no schema_version"),
        (lambda r: {**r, "schema_version": 1}, "schema 1, this harness reads schema 2"),
        (lambda r: {**r, "metrics": {**r["metrics"], "accuracy": "high"}}, "field 'metrics.accuracy'"),
        (lambda r: {**r, "status": "completed", "metrics": None}, "a completed run must record metrics"),
    ],
)
def test_results_of_another_schema_or_wrong_contents_are_refused_in_one_line(tmp_path, edit, message):
    assert main(tfidf_args(tmp_path)) == 0
    path = run_path(tmp_path, "tiny_binary", "tfidf-logreg") / "result.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(ResultReadError, match=re.escape(message)) as caught:
        parse_result(path.read_text(), path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


# ----- trust nothing on read (a wrong result never counts as done and never crashes a report) ----------------


@pytest.mark.parametrize(
    "damage",
    ["truncate", "wrong_contents", "delete_predictions", "short_predictions"],
)
def test_a_damaged_run_is_not_done_is_reported_and_is_redone(tmp_path, capsys, damage):
    assert main(tfidf_args(tmp_path)) == 0
    run_dir = run_path(tmp_path, "tiny_binary", "tfidf-logreg")
    result_file, predictions = run_dir / "result.json", run_dir / "predictions.csv"
    good = json.loads(result_file.read_text())
    if damage == "truncate":
        result_file.write_text(result_file.read_text()[:200])
    elif damage == "wrong_contents":
        result_file.write_text(json.dumps({**good, "metrics": {"accuracy": 2}}))
    elif damage == "delete_predictions":
        predictions.unlink()
    else:
        predictions.write_text("\n".join(predictions.read_text().splitlines()[:5]) + "\n")
    # the report says which run it could not use and exits 1, rather than dropping it silently
    if damage in ("truncate", "wrong_contents"):
        capsys.readouterr()
        report_args = ["report", "--benchmark", "tiny_binary", "--benchmarks-dir", str(FIXTURES / "benchmarks"),
                       "--results-dir", str(tmp_path)]
        assert main(report_args) == 1
        board = (tmp_path / "tiny_binary" / "leaderboard.md").read_text()
        assert "## Runs that could not be read" in board and "the run is redone" in board
    # the next run does not trust it: it says why and runs the model again
    capsys.readouterr()
    assert main([a for a in tfidf_args(tmp_path) if a != "--quiet"]) == 0
    out = capsys.readouterr().err
    assert "stored run not used" in out and "already complete" not in out
    redone = json.loads(result_file.read_text())
    assert redone["status"] == "completed" and redone["metrics"] == good["metrics"]
    assert len(pd.read_csv(predictions)) == 24


def test_a_changed_registry_entry_keeps_the_earlier_run_aside(tmp_path, capsys):
    registry = tmp_path / "registry.yaml"
    registry.write_text("models:\n  - {name: tfidf-logreg, family: tfidf, tfidf: {C: 4.0}}\n")
    assert main([*tfidf_args(tmp_path / "r"), "--registry", str(registry)]) == 0
    first = json.loads((run_path(tmp_path / "r", "tiny_binary", "tfidf-logreg") / "result.json").read_text())
    registry.write_text("models:\n  - {name: tfidf-logreg, family: tfidf, tfidf: {C: 0.5}}\n")
    capsys.readouterr()
    assert main([*[a for a in tfidf_args(tmp_path / "r") if a != "--quiet"], "--registry", str(registry)]) == 0
    assert "the earlier run (another registry entry) is kept at" in capsys.readouterr().err
    (kept,) = (tmp_path / "r").glob("tiny_binary/configs/*/superseded/tfidf-logreg/seed-42-*/result.json")
    assert json.loads(kept.read_text())["fingerprint"] == first["fingerprint"]


# ----- what the leaderboard says about the comparison -----------------------------------------------------------


def test_mixed_train_sizes_are_named_and_the_header_shows_the_shared_budget(tmp_path):
    spec = two_class_spec()
    store = ResultsStore(tmp_path)
    config = synthetic.configuration(spec)
    labels = np.arange(200) % 2
    synthetic.write_run(store, spec, config, "small", 42, labels, probs_for(labels, 0.8, 1), train_rows=1000)
    synthetic.write_run(store, spec, config, "large", 42, labels, probs_for(labels, 0.9, 2), train_rows=3017)
    # one row has its own learning rate: the header must still show the shared one
    path = run_path(tmp_path, "tiny_store", "large") / "result.json"
    result = json.loads(path.read_text())
    result["budget_overrides"] = {"learning_rate": 1e-4}
    result["budget"]["learning_rate"] = 1e-4
    path.write_text(json.dumps(result))
    store.set_current(config)
    board = write_report(store, spec).read_text()
    (warning,) = [line for line in board.splitlines() if "rows differ in train rows" in line]
    assert "1000: small/seed 42" in warning and "3017: large/seed 42" in warning
    assert "- **Data**: 1,000, 3,017 train rows" in board
    shared = next(line for line in board.splitlines() if line.startswith("- **Shared budget**"))
    assert "learning_rate=5e-05" in shared and "0.0001" not in shared
    large = next(line for line in board.splitlines() if "| large " in line)
    assert "overrides: learning_rate=0.0001" in large


def test_seeds_with_identical_predictions_are_one_run_said_so(tmp_path):
    spec = two_class_spec()
    store = ResultsStore(tmp_path)
    config = synthetic.configuration(spec)
    labels = np.arange(100) % 2
    same = probs_for(labels, 0.8, 3)
    for seed in (42, 43, 44):
        synthetic.write_run(store, spec, config, "linear", seed, labels, same, family="tfidf")
    for seed in (42, 43):
        synthetic.write_run(store, spec, config, "encoder", seed, labels, probs_for(labels, 0.8, seed))
    store.set_current(config)
    board = Leaderboard.from_store(store, spec, n_boot=200)
    rows = {row.model: row for row in board.rows}
    assert rows["linear"].identical_seeds and len(rows["linear"].results) == 1
    assert not rows["encoder"].identical_seeds and len(rows["encoder"].results) == 2
    text = to_markdown(board)
    linear = next(line for line in text.splitlines() if "| linear " in line)
    assert "3 seeds, identical predictions: shown as one run" in linear and " ± " not in linear
    encoder = next(line for line in text.splitlines() if "| encoder " in line)
    assert "ok (2 seeds)" in encoder and " ± " in encoder


def test_sample_of_the_published_split_is_said(tmp_path):
    spec = two_class_spec().model_copy(update={"official_sizes": {"train": 3_600_000, "test": 400_000}})
    store = ResultsStore(tmp_path)
    config = synthetic.configuration(spec)
    labels = np.arange(50) % 2
    synthetic.write_run(store, spec, config, "m", 42, labels, probs_for(labels, 0.8, 1), train_rows=9994)
    store.set_current(config)
    board = write_report(store, spec).read_text()
    assert "(train: a sample of 9,994 of 3,600,000 rows; test: a sample of 50 of 400,000 rows)" in board


def test_user_text_is_escaped_everywhere_it_lands_in_markdown(tmp_path):
    spec = two_class_spec(label_names=("bad|label", "<script>x</script>"), group_columns=["lang"])
    store = ResultsStore(tmp_path)
    config = synthetic.configuration(spec)
    labels = np.arange(60) % 2
    langs = np.array(["en", "x\n# injected heading", "[a](javascript:alert(1))"])[np.arange(60) % 3]
    synthetic.write_run(store, spec, config, "m", 42, labels, probs_for(labels, 0.8, 1), {"lang": langs})
    store.set_current(config)
    path = write_report(store, spec)
    for text in (path.read_text(), (path.parent / "errors.md").read_text()):
        assert "<script>" not in text and "&lt;script&gt;" in text or "F1" not in text
        assert not re.search(r"(?<!\\)\]\(javascript:", text)  # an escaped bracket opens no link
        assert not any(line.startswith("# injected") for line in text.splitlines())
    board = path.read_text()
    assert escape("bad|label") == "bad\\|label" and "F1 bad\\|label" in board
    # every row of the per-class table has as many cells as its header
    table = board.split("## Per-class F1")[1].split("##")[0]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    widths = {len(re.split(r"(?<!\\)\|", line)) for line in rows}
    assert len(widths) == 1


# ----- exports, API, model cards, provenance ------------------------------------------------------------------


def test_leaderboard_csv_and_json_match_the_markdown(tmp_path):
    assert main(tfidf_args(tmp_path, "--seeds", "2", "--limit-train", "40")) == 0
    bench = tmp_path / "tiny_binary"
    frame = pd.read_csv(bench / "leaderboard.csv")
    assert list(frame["seed"]) == [42, 43] and set(frame["train_rows"]) == {40}
    payload = json.loads((bench / "leaderboard.json").read_text())
    assert [row["seed"] for row in payload["rows"]] == [42, 43]
    board = (bench / "leaderboard.md").read_text()
    row = next(line for line in board.splitlines() if "| tfidf-logreg |" in line and "| ok" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    accuracy = frame["accuracy"]
    if accuracy.nunique() == 1:  # seeds drew different rows but may still agree on every test example
        assert cells[3].startswith(f"{accuracy.iloc[0]:.4f}")
    else:
        assert cells[3].startswith(f"{accuracy.mean():.4f} ± {accuracy.std(ddof=1):.4f}")


def test_each_seed_draws_its_own_train_rows_unless_fixed(tmp_path):
    import harness.run.runner as runner

    seen: dict[int, list] = {}
    real = runner.load_benchmark_data

    def spy(*args, **kwargs):
        data = real(*args, **kwargs)
        seen.setdefault(kwargs["seed"], []).append(sorted(data.train.ids.tolist()))
        assert kwargs["test_seed"] == 42  # every seed is scored on the same test rows
        return data

    runner.load_benchmark_data = spy
    try:
        assert main(tfidf_args(tmp_path / "a", "--seeds", "2", "--limit-train", "20")) == 0
        assert sorted(seen) == [42, 43] and seen[42][0] != seen[43][0]
        seen.clear()
        assert main(tfidf_args(tmp_path / "b", "--seeds", "2", "--limit-train", "20", "--fixed-train-sample")) == 0
        assert list(seen) == [42] and seen[42][0] == seen[42][1]
    finally:
        runner.load_benchmark_data = real
    board = (tmp_path / "b" / "tiny_binary" / "leaderboard.md").read_text()
    assert "train rows drawn once for all seeds" in board


def test_python_api_returns_the_leaderboard(tmp_path):
    from harness import run_benchmark

    entry = ModelSpec(name="tfidf-unigram", family="tfidf", tfidf={"ngram_max": 1, "min_df": 1})
    board = run_benchmark(
        str(FIXTURES / "benchmarks" / "tiny_binary.yaml"), models=["tfidf-logreg", entry],
        data_dir=FIXTURES / "binary", results_dir=tmp_path, isolate=False, latency_samples=3,
    )  # fmt: skip
    frame = board.to_pandas()
    assert sorted(frame["model"]) == ["tfidf-logreg", "tfidf-unigram"]
    assert frame["accuracy"].between(0, 1).all() and (frame["status"] == "completed").all()
    assert "| tfidf-unigram |" in to_markdown(board)


def test_model_cards_carry_model_index_results_and_say_how_to_load():
    from huggingface_hub import ModelCard

    spec = two_class_spec()
    store_labels = np.arange(40) % 2
    config = synthetic.configuration(spec)
    with_metrics = synthetic_result(spec, config, store_labels)
    # Scored on the hub dataset's whole test split: only then does the model-index claim results on it.
    with_metrics = with_metrics.model_copy(update={"data": with_metrics.data.model_copy(
        update={"kind": "hub", "eval_split_rows": with_metrics.data.eval_rows})})
    hub_model = ModelSpec(name="bert", family="transformer", source={"hub_id": "google-bert/bert-base-uncased"})
    card = ModelCard(str(build_model_card(spec, hub_model, with_metrics)))
    assert card.data.base_model == "google-bert/bert-base-uncased"
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert metrics["accuracy"] == pytest.approx(with_metrics.metrics.accuracy, abs=1e-6)
    assert metrics["f1"] == pytest.approx(with_metrics.metrics.f1_macro, abs=1e-6)
    assert 'pipeline("text-classification"' in card.text
    tfidf = ModelSpec(name="tfidf", family="tfidf")
    tfidf_card = ModelCard(str(build_model_card(spec, tfidf, with_metrics)))
    assert tfidf_card.data.library_name == "scikit-learn"
    assert "not a transformers model" in tfidf_card.text and "predict_texts" in tfidf_card.text


def synthetic_result(spec, config, labels) -> RunResult:
    store = ResultsStore(Path("/tmp") / f"cards-{np.random.default_rng().integers(1 << 30)}")
    try:
        run_dir = synthetic.write_run(store, spec, config, "m", 42, labels, probs_for(labels, 0.8, 5))
        return RunResult.model_validate_json((run_dir / "result.json").read_text())
    finally:
        shutil.rmtree(store.root, ignore_errors=True)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def test_provenance_names_only_the_projects_own_repository_and_code(tmp_path, monkeypatch):
    outer = tmp_path / "outer"
    package = outer / "copy" / "harness"
    package.mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    _git(outer, "init", "-q")
    _git(outer, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(outer, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    # a copy of the harness inside another repository: that repository's commit is not the harness's
    monkeypatch.setattr(provenance, "PACKAGE_DIR", package)
    provenance.git_state.cache_clear()
    assert provenance.git_state() == (None, None)
    # the project's own repository: a new YAML or data file is not a modified harness; a changed .py is
    own = tmp_path / "own"
    shutil.copytree(outer / "copy", own)
    _git(own, "init", "-q")
    _git(own, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(own, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", own / "harness")
    (own / "benchmarks").mkdir()
    (own / "benchmarks" / "mine.yaml").write_text("name: mine\n")
    (own / "harness" / "notes.yaml").write_text("a: 1\n")
    provenance.git_state.cache_clear()
    commit, modified = provenance.git_state()
    assert commit and len(commit) == 40 and modified is False
    (own / "harness" / "a.py").write_text("x = 2\n")
    provenance.git_state.cache_clear()
    assert provenance.git_state()[1] is True
    provenance.git_state.cache_clear()


def test_a_hub_model_with_offline_true_fails_fast_in_one_line(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "true")
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "models:\n  - {name: tfidf-logreg, family: tfidf}\n"
        "  - {name: far-away, family: transformer, source: {hub_id: someone/not-cached-here, revision: main}}\n"
    )
    start = time.monotonic()
    assert main([*tfidf_args(tmp_path / "r"), "--models", "all", "--registry", str(registry)]) == 1
    assert time.monotonic() - start < 30
    failed = json.loads((run_path(tmp_path / "r", "tiny_binary", "far-away") / "result.json").read_text())
    assert failed["status"] == "failed" and "\n" not in failed["error"]["message"]
    assert "someone/not-cached-here" in failed["error"]["message"]
    done = json.loads((run_path(tmp_path / "r", "tiny_binary", "tfidf-logreg") / "result.json").read_text())
    assert done["status"] == "completed"


def test_log_with_sends_the_measured_run_to_the_trackers(tmp_path):
    from accelerate.tracking import GeneralTracker

    from harness.run.trackers import log_run

    class Recorder(GeneralTracker):
        name = "recorder"
        requires_logging_directory = False

        def __init__(self):
            super().__init__()
            self.config, self.logged = None, []

        @property
        def tracker(self):
            return self

        def store_init_configuration(self, values):
            self.config = values

        def log(self, values, step=None, **kwargs):
            self.logged.append((step, values))

    assert main(tfidf_args(tmp_path)) == 0
    run_dir = run_path(tmp_path, "tiny_binary", "tfidf-logreg")
    result = RunResult.model_validate_json((run_dir / "result.json").read_text())
    recorder = Recorder()
    log_run(result, run_dir, [recorder])
    assert recorder.config["model"] == "tfidf-logreg" and recorder.config["seed"] == 42
    assert recorder.config["configuration"] == result.configuration.label
    step, final = recorder.logged[-1]
    assert final["eval/accuracy"] == pytest.approx(result.metrics.accuracy)
    assert final["eval/f1_macro"] == pytest.approx(result.metrics.f1_macro)


def test_log_with_a_tracker_that_is_not_installed_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main([*tfidf_args(tmp_path), "--log-with", "wandb"]) == 2
    assert capsys.readouterr().err == "error: --log-with: the wandb tracker is not installed (fix: pip install wandb)\n"
    assert not (tmp_path / "tiny_binary").exists()


def test_a_saved_transformer_has_a_hub_readable_card_and_truncation_is_measured(tmp_path):
    pytest.importorskip("torch")
    from huggingface_hub import ModelCard

    from tests.tiny_models import build_tiny_model, registry_yaml

    texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
    model_dir = build_tiny_model("bert", tmp_path / "bert", texts)
    registry = tmp_path / "registry.yaml"
    registry.write_text(registry_yaml({"tiny-bert": model_dir}, extra_tfidf=False))
    bench = tmp_path / "benches"
    bench.mkdir()
    # max_length 10: some of the fixture's reviews are longer, some are not
    yaml = (FIXTURES / "benchmarks" / "tiny_binary.yaml").read_text().replace("max_length: 32", "max_length: 10")
    (bench / "tiny_binary.yaml").write_text(yaml)
    args = tfidf_args(tmp_path / "r", "--models", "tiny-bert", "--registry", str(registry),
                      "--benchmarks-dir", str(bench))
    assert main(args) == 0
    run_dir = run_path(tmp_path / "r", "tiny_binary", "tiny-bert")
    result = RunResult.model_validate_json((run_dir / "result.json").read_text())
    card = ModelCard.load(run_dir / "model" / "README.md")
    # Trained and scored on local files, not the hub dataset: the card says which, and claims no hub results.
    assert not card.data.eval_results and not card.data.datasets and card.data.library_name == "transformers"
    assert f"of {FIXTURES / 'binary' / 'test.csv'}" in card.text and f"{result.metrics.accuracy:.4f}" in card.text
    # truncation, recomputed by hand with the saved tokenizer
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    test = pd.read_csv(FIXTURES / "binary" / "test.csv").text.tolist()
    cut = sum(len(ids) > 10 for ids in tokenizer(test)["input_ids"])
    assert result.truncation.applies and result.truncation.max_length == 10
    assert result.truncation.eval.truncated == cut and result.truncation.eval.share == pytest.approx(cut / len(test))
    assert 0 < cut < len(test)
    board = (tmp_path / "r" / "tiny_binary" / "leaderboard.md").read_text()
    row = next(line for line in board.split("## Truncation")[1].splitlines() if "| tiny-bert" in line)
    assert f"{100 * cut / len(test):.1f}%" in row
