"""Time before work: forecasts from a run's own first steps, the command's total, the advice and the question."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.config.schema import Budget
from harness.data.loading import Split
from harness.models import forecast as F
from harness.run import forecast as E
from harness.store.results import TrainingForecast
from tests.conftest import FIXTURES, run_path


def forecast(seconds: float = 100.0, spent: float = 10.0) -> TrainingForecast:
    return TrainingForecast(seconds=seconds, spent_seconds=spent, measured_steps=3, measured_seconds=3.0,
                            basis="steps 2-4 of 40 took 3.0 s")


# ----- the step window --------------------------------------------------------------------------------------


def test_forecast_extrapolates_the_window_by_padded_tokens():
    """First step opens the window (its one-off costs are not a rate); 5 steps of 100 tokens in 5 s make a rate
    of 0.01 s a token; 9,400 tokens to come after 7 s spent: 7 + 94 = 101 s."""
    syncs = []
    f = F.StepForecaster(total_steps=100, sync=lambda: syncs.append(1), min_steps=3, min_seconds=5.0)
    assert f.step_done(1, lambda: 2.0, remaining_tokens=lambda: pytest.fail("no forecast yet")) is None
    made = None
    for step in range(2, 8):
        f.add_tokens(100)
        made = f.step_done(step, lambda s=step: s + 1.0, remaining_tokens=lambda: 9400.0)  # 1 s a step
        if made is not None:
            break
    assert step == 6 and made is not None  # 5 steps and 5.0 s after the window opened at 2.0 s
    assert made.seconds == pytest.approx(7.0 + 5.0 / 500 * 9400)
    assert (made.spent_seconds, made.measured_steps, made.measured_seconds) == (7.0, 5, 5.0)
    assert made.basis == "steps 2-6 of 100 took 5.0 s"
    assert len(syncs) == 2  # at the window's two ends only
    f.add_tokens(100)
    assert f.step_done(8, lambda: 9.0, remaining_tokens=lambda: 1.0) is None  # once


def test_window_of_a_short_run_closes_at_its_share_of_the_steps():
    f = F.StepForecaster(total_steps=40, min_steps=3, min_seconds=5.0, max_share=0.05)
    f.step_done(1, lambda: 0.1, lambda: 0.0)
    results = []
    for step in (2, 3, 4):
        f.add_tokens(10)
        results.append(f.step_done(step, lambda s=step: 0.1 * s, lambda: 360.0))
    assert results[:2] == [None, None] and results[2] is not None  # 3 steps >= 5% of 40, well short of 5 s
    assert results[2].seconds == pytest.approx(0.4 + 0.3 / 30 * 360)


def test_no_forecast_when_the_run_is_no_longer_than_its_window():
    f = F.StepForecaster(total_steps=4, min_steps=3)
    assert f.done
    resumed = F.StepForecaster(total_steps=100, start_step=97, min_steps=3)
    assert resumed.done


def test_resumed_run_names_the_steps_it_timed():
    f = F.StepForecaster(total_steps=100, start_step=50, min_steps=3, min_seconds=0.0)
    f.step_done(51, lambda: 30.0, lambda: 0.0)
    for step in (52, 53, 54):
        f.add_tokens(1)
        made = f.step_done(step, lambda s=step: 30.0 + s - 51, lambda: 46.0)
    assert made.basis == "steps 52-54 of 100 took 3.0 s" and made.seconds == pytest.approx(33.0 + 46.0)


def test_remaining_tokens_take_this_epoch_then_its_mean():
    tokens = np.array([10, 20, 30, 40])
    assert F.remaining_batch_tokens(tokens, 2, 2) == 70.0  # the rest of this epoch
    assert F.remaining_batch_tokens(tokens, 2, 6) == 70.0 + 4 * 25.0  # then later epochs at the mean, 25
    assert F.remaining_batch_tokens(tokens, 4, 0) == 0.0


# ----- what is said, and the question -----------------------------------------------------------------------


def test_total_counts_later_seeds_at_this_forecast_and_other_models_at_their_past():
    outlook = E.Outlook(later=[E.LaterRun(model="m", seconds=5.0), E.LaterRun(model="other", seconds=300.0),
                               E.LaterRun(model="new")])
    lines, total = E.forecast_lines("m", forecast(100.0, 10.0), outlook, "fp32, 2 thread(s)")
    # this run 90 s to go, a later seed of m 100 s (its own forecast, not the 5 s of an earlier run), other 300 s
    assert total == pytest.approx(90.0 + 100.0 + 300.0)
    assert lines[0] == "  forecast: training about 1.7 min (steps 2-4 of 40 took 3.0 s; fp32, 2 thread(s))"
    assert "1 run(s) never timed here" in lines[1] and "1 more run(s) of m (seeds or trials)" in lines[1]
    assert "8.2 min more" in lines[1]


def test_advice_above_ten_minutes_names_the_flags(capsys):
    E.announce("m", forecast(700.0, 10.0), E.Outlook(budgets=["full", "quick"]), "fp32", out=print)
    out = capsys.readouterr().out
    assert "--limit-train N" in out and "another --budget (full, quick)" in out
    E.announce("m", forecast(500.0, 10.0), E.Outlook(), "fp32", out=print)
    assert "to cut it" not in capsys.readouterr().out


@pytest.fixture
def terminal(monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)


def test_asks_once_above_thirty_minutes_on_a_terminal(tmp_path, terminal):
    answer = tmp_path / "answer"
    outlook = E.Outlook(ask=True, answer_file=str(answer))
    asked = []
    E.announce("m", forecast(3600.0, 10.0), outlook, "fp32", out=lambda line: None,
               ask=lambda prompt: asked.append(prompt) or "y")
    assert len(asked) == 1 and "about 59.8 min of training to go" in asked[0] and answer.exists()
    E.announce("m", forecast(3600.0, 10.0), outlook, "fp32", out=lambda line: None,
               ask=lambda prompt: pytest.fail("asked twice in one command"))


@pytest.mark.parametrize("reply", ["n", "", "no", EOFError])
def test_anything_but_yes_declines(tmp_path, terminal, reply):
    def ask(prompt):
        if reply is EOFError:
            raise EOFError
        return reply

    with pytest.raises(E.RunDeclined, match="about 59.8 min"):
        E.announce("m", forecast(3600.0, 10.0), E.Outlook(ask=True, answer_file=str(tmp_path / "a")), "fp32",
                   out=lambda line: None, ask=ask)
    assert not (tmp_path / "a").exists()


def test_never_asks_below_the_threshold_without_a_terminal_or_when_told_not_to(tmp_path, monkeypatch):
    never = lambda prompt: pytest.fail("asked")  # noqa: E731
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    E.announce("m", forecast(3600.0), E.Outlook(ask=True), "fp32", out=lambda line: None, ask=never)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    E.announce("m", forecast(1700.0, 0.0), E.Outlook(ask=True), "fp32", out=lambda line: None, ask=never)
    E.announce("m", forecast(3600.0), E.Outlook(ask=False), "fp32", out=lambda line: None, ask=never)


def test_quiet_prints_nothing_unless_it_asks(terminal, capsys):
    E.announce("m", forecast(700.0), E.Outlook(), "fp32", show=False)
    assert capsys.readouterr().out == ""


# ----- inside the families ----------------------------------------------------------------------------------


def train_split() -> Split:
    frame = pd.read_csv(FIXTURES / "binary" / "train.csv")
    return Split(name="train", texts=frame.text.tolist(), labels=frame.label.to_numpy(), ids=np.arange(len(frame)))


def test_transformer_forecasts_once_from_its_first_steps_and_trains_the_same(tmp_path, monkeypatch):
    from harness.models import transformer as T
    from tests.tiny_models import build_tiny_model

    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    split = train_split()
    path = build_tiny_model("bert", tmp_path / "bert", split.texts)
    budget = Budget(max_length=32, batch_size=8, learning_rate=1e-3, precision="fp32", seed=3, max_steps=40)
    heard = []
    told = T.TransformerClassifier.load(path).fit(split, budget, tmp_path / "a", show_progress=False,
                                                 on_forecast=lambda f, setting: heard.append((f, setting)))
    silent = T.TransformerClassifier.load(path).fit(split, budget, tmp_path / "b", show_progress=False)
    assert len(heard) == 1
    made, setting = heard[0]
    assert made.measured_steps == 3 and made.basis.startswith("steps 2-4 of 40 took")  # 3 steps >= 5% of 40
    assert made.spent_seconds < made.seconds and made.spent_seconds <= told.train_seconds
    assert setting.startswith("fp32, ") and "thread(s): set in the budget" in setting
    assert told.forecast == made
    assert silent.forecast.measured_steps == 3  # recorded whether or not anyone listens
    # Forecasting changes nothing that is trained.
    assert [p["loss"] for p in told.loss_curve] == [p["loss"] for p in silent.loss_curve]


def test_tfidf_forecasts_from_a_five_percent_fit_and_trains_the_same(tmp_path):
    from harness.models.tfidf import TfidfLogReg, TfidfParams

    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "fine", "awful", "great", "poor", "ok", "meh"])
    labels = rng.integers(0, 2, 12_000)
    texts = [" ".join(rng.choice(words[y::2], 6)) for y in labels]
    split = Split(name="train", texts=texts, labels=labels, ids=np.arange(len(texts)))
    heard = []
    model = TfidfLogReg(TfidfParams(), ["neg", "pos"])
    report = model.fit(split, Budget(seed=1), tmp_path, on_forecast=lambda f, s: heard.append((f, s)))
    plain = TfidfLogReg(TfidfParams(), ["neg", "pos"])
    plain.fit(split, Budget(seed=1), tmp_path)
    (made, setting), = heard
    assert made.basis.startswith("a fit on 600 of 12,000 rows took")
    # The sample, then 20x it: s + 20 s, each figure rounded to the millisecond (21 x 0.5 ms + 0.5 ms at most).
    assert made.seconds == pytest.approx(made.spent_seconds * 21, abs=0.011)
    assert report.forecast == made
    np.testing.assert_array_equal(model.predict_proba(texts[:50]), plain.predict_proba(texts[:50]))


def test_tfidf_on_a_few_rows_does_not_forecast(tmp_path):
    from harness.models.tfidf import TfidfLogReg, TfidfParams

    heard = []
    TfidfLogReg(TfidfParams(), ["neg", "pos"]).fit(train_split(), Budget(), tmp_path,
                                                    on_forecast=lambda f, s: heard.append(f))
    assert heard == []


# ----- the command --------------------------------------------------------------------------------------------


def two_tfidf_registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text("models:\n  - {name: tfidf-a, family: tfidf}\n  - {name: tfidf-b, family: tfidf}\n")
    return path


def cli_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--models", "all", "--registry", str(two_tfidf_registry(tmp_path)), "--benchmark", "tiny_binary",
        "--benchmarks-dir", str(FIXTURES / "benchmarks"), "--data-dir", str(FIXTURES / "binary"),
        "--results-dir", str(tmp_path / "results"), "--latency-samples", "3", "--no-isolate", *extra,
    ]


def fake_forecasts(monkeypatch, seconds: list[float]):
    """TF-IDF forecasts of the given seconds, one per run in order (the fixture is too small to sample)."""
    from harness.models.tfidf import TfidfLogReg

    queue = list(seconds)

    def _forecast(self, train, seed):
        return TrainingForecast(seconds=queue.pop(0), spent_seconds=0.0, measured_steps=1, measured_seconds=0.0,
                                basis="a fit on a sample")

    monkeypatch.setattr(TfidfLogReg, "_forecast", _forecast)


def test_a_no_at_the_question_stops_the_command_and_keeps_what_finished(tmp_path, monkeypatch, terminal, capsys):
    fake_forecasts(monkeypatch, [10.0, 4000.0])
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(cli_args(tmp_path)) == 1
    captured = capsys.readouterr()
    assert "forecast: training about 10 s (a fit on a sample; 1 process (scikit-learn))" in captured.err
    assert "to cut it: --limit-train N" in captured.err
    assert "stopped: declined at the forecast of tfidf-b: about 66.7 min of training to go" in captured.err
    first = json.loads((run_path(tmp_path / "results", "tiny_binary", "tfidf-a") / "result.json").read_text())
    assert first["status"] == "completed" and first["training"]["forecast"]["seconds"] == 10.0
    # The declined run is not a failure: nothing recorded, so the next command runs it.
    assert not (run_path(tmp_path / "results", "tiny_binary", "tfidf-b") / "result.json").exists()
    assert "tfidf-a" in (tmp_path / "results" / "tiny_binary" / "leaderboard.md").read_text()


def test_yes_flag_skips_the_question(tmp_path, monkeypatch, terminal):
    fake_forecasts(monkeypatch, [4000.0, 4000.0])
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked despite --yes"))
    assert main(cli_args(tmp_path, "--yes", "--quiet")) == 0


def test_earlier_runs_give_the_time_ahead_before_anything_runs(tmp_path, capsys):
    assert main(cli_args(tmp_path, "--quiet")) == 0
    assert main(cli_args(tmp_path, "--seeds", "2")) == 0
    out = capsys.readouterr().err
    assert "tfidf-a: 1 run(s), 1 already complete, about" in out and "samples/s (" in out
    assert "in total: about" in out and "for 2 run(s)" in out


def test_a_declined_child_process_stops_the_command(tmp_path, monkeypatch):
    """Isolated runs: the worker exits DECLINED, and the parent raises RunDeclined instead of recording a death."""
    from harness.run import executors, runner, worker

    def declined(job):
        raise E.RunDeclined("declined")

    monkeypatch.setattr(runner, "run_job", declined)
    job_file = tmp_path / "job.json"
    job_file.write_text("{}")
    monkeypatch.setattr(runner.Job, "model_validate_json", classmethod(lambda cls, text: SimpleNamespace(settings=SimpleNamespace(show_progress=True))))
    assert worker.main([str(job_file)]) == worker.DECLINED

    monkeypatch.setattr(executors.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, worker.DECLINED))
    monkeypatch.setattr(executors, "atomic_write_bytes", lambda path, data: None)

    class FakeJob:
        model, seed = "m", 7

        def run_dir(self, store):
            return tmp_path

        def model_dump_json(self):
            return "{}"

    with pytest.raises(E.RunDeclined, match="m \\(seed 7\\)"):
        executors.run_isolated(FakeJob(), store=None)


def test_a_suite_asks_once_and_a_no_stops_the_rest_of_it(tmp_path, monkeypatch, terminal, capsys):
    from tests.test_suite import FOLDERS, run, suite_yaml

    suite = str(suite_yaml(tmp_path, FOLDERS))
    fake_forecasts(monkeypatch, [4000.0] * 6)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "y")
    assert run(tmp_path, "--suite", suite, "--models", "tfidf-logreg,tfidf-1gram") == 0
    assert len(asked) == 1  # three benchmarks, two models each: one question

    fake_forecasts(monkeypatch, [4000.0] * 6)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    (tmp_path / "again").mkdir()
    assert run(tmp_path / "again", "--suite", suite, "--models", "tfidf-logreg,tfidf-1gram") == 1
    err = capsys.readouterr().err
    assert "stopped, declined at the forecast of tfidf-logreg" in err
    assert not list((tmp_path / "again" / "results").glob("tiny_three/configs/*/runs/*/seed-*/result.json"))
