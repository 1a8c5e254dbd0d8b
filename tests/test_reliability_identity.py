"""What a run is, checked where it is used: its data, its hub commits, its local weights, its folder in the store.

Each test would pass a wrong number through on the older harness: data changed while a grid runs filed under the
configuration's old hash, hub data and models loaded at "main" instead of the commit recorded, rebuilt local
weights skipped as "already complete", a result.json edited or copied into another folder shown under that name.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness import pipeline
from harness.config.options import RunOptions
from harness.config.registry import load_benchmark
from harness.config.schema import ModelSpec
from harness.core import hub
from harness.core.errors import HarnessInputError
from harness.data import loading as D
from harness.models import weights
from harness.report.board import Leaderboard
from harness.run import executors, runner
from harness.store.results import run_fingerprint
from harness.store.results_store import ResultsStore
from tests.conftest import FIXTURES, run_path
from tests.synthetic import configuration, write_run

SHA = "0123456789abcdef0123456789abcdef01234567"
TFIDF_A = ModelSpec(name="tfidf-a", family="tfidf")
TFIDF_B = ModelSpec(name="tfidf-b", family="tfidf")


def _spec(name: str = "tiny_binary"):
    return load_benchmark(name, FIXTURES / "benchmarks")[0]


def _data_copy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "binary", data)
    return data


def _flip_labels(csv: Path) -> None:
    """The same rows with every label swapped: a different data set of the same size and columns."""
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    frame["label"] = frame["label"].map({"0": "1", "1": "0", "negative": "positive", "positive": "negative"})
    frame.to_csv(csv, index=False)


def _config(data: Path, results: Path, models: list[ModelSpec], **extra) -> RunOptions:
    return RunOptions(
        models=models, benchmark="tiny_binary", benchmarks_dir=FIXTURES / "benchmarks",
        data_dir=data, results_dir=results, quiet=True, isolate=False, latency_samples=2, save_model=False, **extra,
    )


# ----- (a) data changed while a grid runs ----------------------------------------------------------------------


def test_data_changed_between_two_runs_of_one_grid_fails_the_second_in_one_line(tmp_path, monkeypatch):
    data, results = _data_copy(tmp_path), tmp_path / "results"
    real_run_job = executors.run_job
    calls = []

    def run_then_edit(job):
        result = real_run_job(job)
        calls.append(job.model)
        if len(calls) == 1:  # someone edits the training file while the grid is still running
            _flip_labels(data / "train.csv")
        return result

    monkeypatch.setattr(executors, "run_job", run_then_edit)
    summary = pipeline.run(_config(data, results, [TFIDF_A, TFIDF_B]))
    assert calls == ["tfidf-a", "tfidf-b"]
    assert summary.completed == ["tfidf-a (seed 42)"]
    assert list(summary.failed) == ["tfidf-b (seed 42)"]
    message = summary.failed["tfidf-b (seed 42)"]
    assert "\n" not in message
    assert f"{data / 'train.csv'}: changed since configuration {summary.configuration}" in message
    assert "rerun the command to make a new configuration" in message
    failed = json.loads((run_path(results, "tiny_binary", "tfidf-b") / "result.json").read_text())
    assert failed["status"] == "failed" and failed["error"]["type"] == "DataChanged"
    assert "metrics" not in failed or failed["metrics"] is None
    # The leaderboard of the old configuration holds the one model trained on the data it names, not a mix.
    board = Leaderboard.from_store(ResultsStore(results), _spec(), summary.configuration)
    assert [row.model for row in board.rows if row.completed] == ["tfidf-a"]
    first = (run_path(results, "tiny_binary", "tfidf-a") / "result.json").read_bytes()

    # A rerun makes a new configuration for the new data; the old one keeps its finished run untouched.
    monkeypatch.setattr(executors, "run_job", real_run_job)
    again = pipeline.run(_config(data, results, [TFIDF_A, TFIDF_B]))
    assert again.configuration != summary.configuration and not again.failed
    assert sorted(again.completed) == ["tfidf-a (seed 42)", "tfidf-b (seed 42)"]
    store = ResultsStore(results)
    old_a = store.run_dir("tiny_binary", summary.configuration, "tfidf-a", 42)
    assert (old_a / "result.json").read_bytes() == first


def test_a_worker_process_checks_the_data_it_reads(tmp_path):
    """The same through the job list and a real worker process: the second job reads the edited file itself."""
    data, results = _data_copy(tmp_path), tmp_path / "results"
    config = _config(data, results, [TFIDF_A, TFIDF_B])
    spec = _spec()
    conf = pipeline.configuration_for(config, spec, spec.default_budget)
    jobs = pipeline.build_jobs(config, spec, [TFIDF_A, TFIDF_B], conf)
    assert executors.execute_job(jobs[0], isolate=False).status == "completed"
    _flip_labels(data / "test.csv")
    outcome = executors.execute_job(jobs[1], isolate=True)
    assert outcome.status == "failed"
    assert outcome.message.startswith(f"DataChanged: {data / 'test.csv'}: changed since configuration {conf.label}")
    assert "\n" not in outcome.message
    assert ResultsStore(results).check_run(jobs[0].run_dir(ResultsStore(results)), jobs[0].fingerprint)[0]


def test_data_changed_between_its_hash_and_the_first_read_stops_before_anything_runs(tmp_path, monkeypatch):
    data, results = _data_copy(tmp_path), tmp_path / "results"
    stale = D.data_identity(_spec(), data)
    _flip_labels(data / "train.csv")
    monkeypatch.setattr(pipeline, "data_identity", lambda spec, data_dir, **kw: stale)
    with pytest.raises(HarnessInputError, match=r"train\.csv: changed since configuration .* \(fix: rerun") as exc:
        pipeline.run(_config(data, results, [TFIDF_A]))
    assert "\n" not in str(exc.value)
    assert not list(results.glob("tiny_binary/configs/*/runs"))


def test_a_file_replaced_with_the_same_size_and_mtime_is_hashed_again(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,label\nabc,0\n")
    before = D.file_sha256(path)
    stat = path.stat()
    fresh = tmp_path / "new.csv"
    fresh.write_text("text,label\nabd,1\n")  # the same size
    os.utime(fresh, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(fresh, path)
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert D.file_sha256(path) != before


# ----- (b) hub data and models at the commit the fingerprint recorded ------------------------------------------


def test_hub_data_is_loaded_at_the_resolved_commit(tmp_path, monkeypatch):
    import datasets

    frames = {split: pd.read_csv(FIXTURES / "binary" / f"{split}.csv", dtype=str) for split in ("train", "test")}
    asked = []

    def fake_load(path, name=None, revision=None, split=None, **kwargs):
        asked.append((path, revision, split))
        return datasets.Dataset.from_pandas(frames[split])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(hub, "resolve_revision", lambda repo, revision, kind="model": SHA if kind == "dataset" else None)
    config = _config(None, tmp_path / "results", [TFIDF_A])
    summary = pipeline.run(config)
    assert summary.completed == ["tfidf-a (seed 42)"]
    # The parent's up-front read and the run's own read, both splits each: all at the commit, none at "main".
    assert asked == [("local/tiny_binary", SHA, "train"), ("local/tiny_binary", SHA, "test")] * 2
    result = json.loads((run_path(tmp_path / "results", "tiny_binary", "tfidf-a") / "result.json").read_text())
    assert result["configuration"]["data"]["commit"] == SHA and result["data"]["commit"] == SHA


def test_hub_model_is_loaded_at_the_resolved_commit(tmp_path, monkeypatch):
    import transformers

    entry = ModelSpec(name="hub-model", family="transformer", source={"hub_id": "org/tiny", "revision": "main"})
    monkeypatch.setattr(hub, "resolve_revision", lambda repo, revision, kind="model": SHA)
    config = _config(FIXTURES / "binary", tmp_path / "results", [entry])
    spec = _spec()
    conf = pipeline.configuration_for(config, spec, spec.default_budget)
    (job,) = pipeline.build_jobs(config, spec, [entry], conf)
    assert job.model_commit == SHA
    asked = []

    def refuse(kind):
        def load(location, *args, **kwargs):
            asked.append((kind, location, kwargs.get("revision")))
            raise OSError("not in the cache")
        return load

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse("tokenizer"))
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", refuse("model"))
    result = runner.run_job(job)
    assert result.status == "failed" and result.error.type == "ModelRunError"
    assert asked == [("tokenizer", "org/tiny", SHA)]
    # What the result records of the entry is the entry as written; the fingerprint holds the commit.
    assert result.fingerprint == job.fingerprint
    assert job.model_spec.source.revision == "main" and job.loaded_spec().source.revision == SHA


# ----- (c) local weights are part of a run's identity -----------------------------------------------------------


def _weights(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    (folder / "tokenizer").mkdir(exist_ok=True)
    (folder / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return folder


def _local_job(tmp_path: Path, entry: ModelSpec) -> runner.Job:
    config = _config(FIXTURES / "binary", tmp_path / "results", [entry])
    spec = _spec()
    conf = pipeline.configuration_for(config, spec, spec.default_budget)
    (job,) = pipeline.build_jobs(config, spec, [entry], conf)
    return job


def _store_finished(job: runner.Job) -> Path:
    """A finished run of ``job`` in the store, as the runner writes one (predictions included)."""
    import numpy as np

    store = ResultsStore(Path(job.settings.results_dir))
    labels = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    run_dir = write_run(store, job.spec, job.configuration, job.model, job.seed, labels, probs)
    result = json.loads((run_dir / "result.json").read_text())
    result["fingerprint"] = job.fingerprint
    (run_dir / "result.json").write_text(json.dumps(result))
    return run_dir


@pytest.mark.parametrize("kind", ["path", "package"])
def test_rebuilt_local_weights_make_the_run_redone_and_unchanged_ones_skip(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    if kind == "path":
        folder = _weights(tmp_path / "weights")
        entry = ModelSpec(name="local-model", family="transformer", source={"path": str(folder)})
    else:
        package = tmp_path / "site" / "mypackagedweights"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('never imported')\n")
        folder = _weights(package / "model")
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        entry = ModelSpec(name="local-model", family="transformer", source={"package": "mypackagedweights"})
    job = _local_job(tmp_path, entry)
    assert job.weights is not None
    run_dir = _store_finished(job)
    store = ResultsStore(tmp_path / "results")
    assert executors.execute_job(_local_job(tmp_path, entry), isolate=False).status == "skipped"

    (folder / "model.safetensors").write_bytes(b"\x01" * 64)  # rebuilt: same name, same size, other weights
    rebuilt = _local_job(tmp_path, entry)
    assert rebuilt.weights != job.weights and rebuilt.fingerprint != job.fingerprint
    done, reason = store.check_run(run_dir, rebuilt.fingerprint)
    assert not done and reason == "stored with another registry entry or settings"
    # An added file counts too, and so does one renamed.
    (folder / "extra.bin").write_bytes(b"x")
    assert _local_job(tmp_path, entry).weights not in (job.weights, rebuilt.weights)
    assert "mypackagedweights" not in sys.modules


def test_weights_changed_after_the_command_hashed_them_fail_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    folder = _weights(tmp_path / "weights")
    entry = ModelSpec(name="local-model", family="transformer", source={"path": str(folder)})
    job = _local_job(tmp_path, entry)
    (folder / "config.json").write_text('{"model_type": "roberta"}')
    result = runner.run_job(job)
    assert result.status == "failed" and result.error.type == "ModelRunError"
    assert f"the weights in {folder} changed after this command hashed them; rerun" in result.error.message


def test_the_weights_manifest_is_cached_and_hashes_only_what_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    folder = _weights(tmp_path / "weights")
    entry = ModelSpec(name="local-model", family="transformer", source={"path": str(folder)})
    real = weights._file_sha256
    hashed = []
    monkeypatch.setattr(weights, "_file_sha256", lambda path: hashed.append(Path(path).name) or real(path))
    first = weights.identity(entry)
    assert sorted(hashed) == ["config.json", "model.safetensors", "vocab.txt"]
    assert (tmp_path / "cache" / weights.CACHE_FILE).is_file()
    hashed.clear()
    assert weights.identity(entry) == first and hashed == []  # read from the cache file, nothing re-read
    (folder / "model.safetensors").write_bytes(b"\x02" * 65)
    second = weights.identity(entry)
    assert hashed == ["model.safetensors"] and second != first
    # A damaged cache costs a re-hash, never a wrong identity.
    (tmp_path / "cache" / weights.CACHE_FILE).write_text("{not json")
    hashed.clear()
    assert weights.identity(entry) == second and len(hashed) == 3
    manifest = weights.manifest(folder)
    assert [m["path"] for m in manifest] == ["config.json", "model.safetensors", "tokenizer/vocab.txt"]
    assert manifest[1]["size"] == 65


def test_hub_and_tfidf_fingerprints_do_not_change():
    """Runs already in stores keep their fingerprints: only local weights add to an entry's identity."""
    spec = _spec()
    conf = configuration(spec)
    settings = RunOptions(results_dir="/tmp/x").run_settings()
    job = runner.Job(spec=spec, model_spec=TFIDF_A, configuration=conf, seed=42, settings=settings)
    # The entry as fingerprints hashed it before `params:` and `tuning_space:` (an entry that narrows no tuning
    # space hashes as before it existed): the tfidf family's parameters under `tfidf`.
    assert TFIDF_A.tuning_space is None
    before = TFIDF_A.model_dump(exclude={"description", "params", "tuning_space"})
    entry = {**before, "tfidf": TFIDF_A.params, "commit": None}
    assert job.fingerprint == run_fingerprint(conf, entry, 42, None)


# ----- (d) a result is checked against its folder ---------------------------------------------------------------


def _stored_run(tmp_path: Path, model: str = "a", seed: int = 42, conf=None):
    import numpy as np

    spec = _spec()
    store = ResultsStore(tmp_path / "results")
    conf = conf or configuration(spec)
    labels = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    return spec, store, conf, write_run(store, spec, conf, model, seed, labels, probs)


def _edit(run_dir: Path, **changes) -> str:
    path = run_dir / "result.json"
    result = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "configuration":
            result["configuration"].update(value)
        else:
            result[key] = value
    path.write_text(json.dumps(result))
    return result["fingerprint"]


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"model": "b"}, "says model 'b' (the folder's is 'a')"),
        ({"seed": 43}, "says seed 43 (the folder's is '42')"),
        ({"benchmark": "tiny_three"}, "says benchmark 'tiny_three'"),
        ({"train_filter": {"lang": ["en"]}}, "says train filter 'transfer/train-lang-en' (the folder's is None)"),
        ({"configuration": {"id": "ffffffffff"}}, "says configuration id 'ffffffffff'"),
        ({"configuration": {"limit_train": 7}}, "says a configuration that differs from configuration.json"),
    ],
)
def test_an_edited_result_is_not_its_folders_run(tmp_path, changes, said):
    spec, store, conf, run_dir = _stored_run(tmp_path)
    fingerprint = _edit(run_dir, **changes)
    done, reason = store.check_run(run_dir, fingerprint)
    assert not done and said in reason and reason.endswith("not this folder's run; the run is redone")
    assert store.load_result(run_dir) is None
    (item,) = store.iter_runs(spec.name, conf.label)
    assert item == (run_dir, reason)
    board = Leaderboard.from_store(store, spec, conf.label)
    assert board.rows == [] and board.runs.invalid == [(run_dir, reason)]


def test_a_result_copied_from_another_configuration_is_refused(tmp_path):
    spec = _spec()
    other = configuration(spec, limit_train=10)
    _, store, conf, run_dir = _stored_run(tmp_path)
    _, _, _, source = _stored_run(tmp_path, conf=other)
    shutil.copy(source / "result.json", run_dir / "result.json")
    fingerprint = json.loads((run_dir / "result.json").read_text())["fingerprint"]
    done, reason = store.check_run(run_dir, fingerprint)
    assert not done and f"says configuration '{other.label}' (the folder's is '{conf.label}')" in reason
    # Its label rewritten to this folder's: the id (and the rest of the configuration) still tell.
    _edit(run_dir, configuration={"label": conf.label})
    assert f"configuration id '{other.id}'" in store.check_run(run_dir, fingerprint)[1]
    _edit(run_dir, configuration={"id": conf.id})
    assert "differs from configuration.json" in store.check_run(run_dir, fingerprint)[1]
    # The genuine run in the other configuration is still read as it was.
    assert store.check_run(source, fingerprint) == (True, None)


def test_a_run_of_another_budget_seed_in_one_configuration_is_still_valid(tmp_path):
    """Seeds share a configuration, so configuration.json (first seed's budget) differs from later ones only there."""
    spec, store, conf, _ = _stored_run(tmp_path)
    later = conf.model_copy(update={"budget": conf.budget.model_copy(update={"seed": 100})})
    _, _, _, run_dir = _stored_run(tmp_path, seed=100, conf=later)
    assert store.load_result(run_dir) is not None
    assert len([r for r in store.iter_runs(spec.name, conf.label) if not isinstance(r, tuple)]) == 2


def test_an_edited_result_is_redone_by_run_and_named_by_report(tmp_path, capsys):
    from harness.cli import main

    data, results = _data_copy(tmp_path), tmp_path / "results"
    assert pipeline.run(_config(data, results, [TFIDF_A])).completed == ["tfidf-a (seed 42)"]
    run_dir = run_path(results, "tiny_binary", "tfidf-a")
    _edit(run_dir, model="tfidf-logreg")
    capsys.readouterr()
    assert main(["report", "--benchmark", "tiny_binary", "--benchmarks-dir", str(FIXTURES / "benchmarks"),
                 "--results-dir", str(results)]) == 1  # a run it could not use: listed, exit 1
    assert "says model 'tfidf-logreg' (the folder's is 'tfidf-a')" in capsys.readouterr().err
    board = (results / "tiny_binary" / "leaderboard.md").read_text()
    assert "tfidf-logreg" in board and "says model 'tfidf-logreg' (the folder's is 'tfidf-a')" in board
    assert "| 1      | tfidf-logreg |" not in board
    summary = pipeline.run(_config(data, results, [TFIDF_A]))
    assert summary.completed == ["tfidf-a (seed 42)"] and not summary.skipped
    assert json.loads((run_dir / "result.json").read_text())["model"] == "tfidf-a"
