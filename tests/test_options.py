"""The run options are declared once (harness/config/options.py): the `run` flags, the Python API's keyword
arguments and RunOptions' fields are one set with one default each, and the API takes every option the
command line takes, the default benchmark included."""

from __future__ import annotations

import importlib.util
import inspect
import json

import pytest

from harness import api, cli
from harness.cli import build_parser, main
from harness.config.options import RunOptions
from harness.core.errors import HarnessInputError
from harness.pipeline import OFFLINE_BENCHMARK
from harness.store.results_store import ResultsStore
from tests.conftest import FIXTURES

# The run subcommand's flags that are not run options, as the command line declares them (its modes, its log level).
MODES = {"help", *cli.COMMAND_ONLY}
REGISTRY = "models:\n  - {name: tfidf-logreg, family: tfidf, tfidf: {min_df: 1}}\n"


def run_parser():
    (subcommands,) = [a for a in build_parser()._actions if a.dest == "command"]
    return subcommands.choices["run"]


def fields() -> dict[str, object]:
    return {name: field.default for name, field in RunOptions.model_fields.items()}


def parameters(function) -> dict[str, object]:
    params = inspect.signature(function).parameters
    return {("benchmark" if name == "benchmarks" else name): p.default for name, p in params.items()}


def test_run_flags_api_parameters_and_fields_are_one_set_with_one_default():
    assert not MODES & set(RunOptions.model_fields)
    flags = {a.dest: a.default for a in run_parser()._actions if a.dest not in MODES}
    assert flags == fields()
    # What the parser hands over without a flag given is what RunOptions holds when nothing is given.
    given = {k: v for k, v in vars(run_parser().parse_args([])).items() if k not in MODES}
    assert RunOptions.validated(given) == RunOptions()
    for function in (api.run_benchmark, api.run_suite):
        signature = parameters(function)
        # Python's one declared difference: code asks for no progress output.
        assert signature == {**fields(), "quiet": True}, function.__name__
        assert RunOptions.validated({}, caller=function.__name__) == RunOptions(quiet=True)
    (quiet,) = [d for d in RunOptions.declared() if d.name == "quiet"]
    assert [d.name for d in RunOptions.declared() if d.api_default != d.default] == ["quiet"]
    assert (quiet.default, quiet.api_default) == (False, True)


def test_every_flag_keeps_its_spelling_and_choices():
    actions = {a.dest: a for a in run_parser()._actions}
    spelt = {flag for a in actions.values() for flag in a.option_strings}
    assert spelt == {
        "-h", "--help", "--models", "--benchmark", "--budget", "--data-dir", "--suite", "--data-root",
        "--limit-train", "--limit-test", "--fixed-train-sample", "--train-filter", "--transfer-matrix", "--seeds",
        "--results-dir", "--force", "--report-only", "--configuration", "--list", "--no-isolate", "--no-save-model", "--no-variants",
        "--latency-samples", "--trials", "--executor", "--parallel", "--devices", "--ray-address", "--gpus-per-run",
        "--log-with", "--quiet", "-v", "--verbose", "--yes", "-y", "--registry", "--benchmarks-dir",
    }  # fmt: skip
    assert actions["executor"].choices == ["local", "ray"]
    assert actions["log_with"].choices == ["tensorboard", "wandb", "mlflow", "all"]
    args = run_parser().parse_args(["--no-isolate", "--no-save-model", "--no-variants", "-y", "--train-filter", "lang=en,fr",
                                    "--train-filter", "src=web", "--devices", "0,1", "--gpus-per-run", "0.5"])
    options = RunOptions.validated({k: v for k, v in vars(args).items() if k not in MODES})
    assert (options.isolate, options.save_model, options.variants, options.assume_yes) == (False, False, False, True)
    assert options.train_filter == {"lang": ["en", "fr"], "src": ["web"]}
    assert (options.devices, options.gpus_per_run) == (["0", "1"], 0.5)


def test_the_api_refuses_an_unknown_option_in_one_line():
    with pytest.raises(HarnessInputError) as caught:
        api.run_benchmark("tiny_binary", latency=3)
    assert str(caught.value) == "run_benchmark(latency=...): not an option (fix: did you mean latency_samples?)"
    with pytest.raises(HarnessInputError, match=r"^run_suite\(benchmark=\.\.\.\): not an option of run_suite"):
        api.run_suite(benchmark="tiny_binary")


@pytest.mark.parametrize(
    "options, line",
    [
        ({"seeds": 101}, "seeds: must be between 1 and 100, got 101 (fix: pass a smaller seeds)"),
        ({"devices": "gpu0"}, "devices: 'gpu0' is not a list of device numbers (fix: pass e.g. devices='0,1,2,3')"),
        ({"train_filter": "lang"},
         "train_filter: 'lang' is not COLUMN=V1,V2 (fix: pass e.g. train_filter={'lang': ['en']})"),
        ({"executor": "slurm"}, "executor: input should be 'local' or 'ray', got 'slurm' (fix: see help(run_benchmark) "
                                "for executor)"),
        ({"limit_train": 0}, "limit_train: input should be greater than or equal to 1, got 0 (fix: see "
                             "help(run_benchmark) for limit_train)"),
    ],
)
def test_the_api_checks_values_as_the_command_line_does(options, line):
    with pytest.raises(HarnessInputError) as caught:
        api.run_benchmark("tiny_binary", **options)
    assert str(caught.value) == line


def tiny(tmp_path, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return api.run_benchmark(
        str(FIXTURES / "benchmarks" / options.pop("benchmark", "tiny_binary.yaml")), models=["tfidf-logreg"],
        registry=registry(tmp_path), results_dir=tmp_path / "results", isolate=False, latency_samples=3, **options,
    )  # fmt: skip


def registry(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def stored_results(results) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.rglob("result.json"))]


def test_the_api_takes_a_train_filter(tmp_path):
    multilingual = {"benchmark": "tiny_multilingual.yaml", "data_dir": FIXTURES / "multilingual"}
    tiny(tmp_path / "en", **multilingual, train_filter={"lang": "en"})
    tiny(tmp_path / "all", **multilingual)
    (english,) = stored_results(tmp_path / "en" / "results")
    (everything,) = stored_results(tmp_path / "all" / "results")
    assert (english["train_filter"], everything["train_filter"]) == ({"lang": ["en"]}, None)
    assert english["data"]["train_rows"] < everything["data"]["train_rows"]


def test_the_api_takes_an_executor(tmp_path, monkeypatch):
    """executor, ray_address and gpus_per_run reach the executor (a stand-in for Ray, running here)."""
    from harness.pipeline import _cuda_available
    from harness.run import executors

    made = []

    class Executor:
        def __init__(self, address, parallel, gpus, force):
            made.append((address, parallel, gpus, force))

        def map(self, jobs, execute):
            return ((job, execute(job, {})) for job in jobs)

    monkeypatch.setattr(executors, "RayExecutor", Executor)
    board = tiny(tmp_path, data_dir=FIXTURES / "binary", executor="ray", ray_address="ray://head:10001",
                 gpus_per_run=0.5, parallel=3)
    assert made == [("ray://head:10001", 3, 0.5 if _cuda_available() else 0.0, False)]
    assert [row.model for row in board.rows] == ["tfidf-logreg"]


@pytest.mark.parametrize(
    "log_with, names", [("tensorboard", ["tensorboard"]), ("all", ["tensorboard", "wandb", "mlflow"])]
)
def test_the_api_takes_log_with(tmp_path, monkeypatch, log_with, names):
    from harness.run import runner

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name in ("tensorboard", "wandb", "mlflow") else real(name, *a))
    sent = []
    monkeypatch.setattr(runner, "_send_to_trackers", lambda result, run_dir, trackers: sent.append(trackers))
    tiny(tmp_path, data_dir=FIXTURES / "binary", log_with=log_with)
    assert sent == [names]


def test_a_tracker_that_is_not_installed_stops_the_api_in_one_line(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(HarnessInputError) as caught:
        tiny(tmp_path, data_dir=FIXTURES / "binary", log_with="mlflow")
    assert str(caught.value) == "log_with: the mlflow tracker is not installed (fix: pip install mlflow)"
    assert not (tmp_path / "results").exists()


def test_the_api_without_a_benchmark_runs_the_command_lines_default(tmp_path, monkeypatch):
    """Offline, with no data_dir: the sample that ships with the harness, for the CLI and the API alike."""
    from huggingface_hub import constants

    from harness.data import loading

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    loading._hub_reachable_once.cache_clear()
    limits = ["--limit-train", "280", "--limit-test", "140", "--latency-samples", "3", "--no-isolate", "--quiet"]
    assert main(["--models", "tfidf-logreg", "--registry", str(registry(tmp_path)),
                 "--results-dir", str(tmp_path / "cli"), *limits]) == 0
    (from_cli,) = ResultsStore(tmp_path / "cli").configurations(OFFLINE_BENCHMARK)
    board = api.run_benchmark(models="tfidf-logreg", registry=registry(tmp_path), results_dir=tmp_path / "api",
                              limit_train=280, limit_test=140, latency_samples=3, isolate=False)
    assert board.spec.name == OFFLINE_BENCHMARK == "dbpedia14"
    assert board.configuration.label == from_cli.label
