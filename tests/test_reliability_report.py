"""``report`` trusts the store no further than ``run`` does, and never loses or blanks what is there.

Finding 3: a run whose predictions.csv is missing, short or inconsistent with its result is named and left
out of every table (no interval is drawn from it), and ``report`` exits 1; the reason is the one ``run``
gives when it redoes the run, because both call the same check.

Finding 6: a stored configuration is never drawn with a benchmark definition other than its own, a damaged
configuration.json is rewritten by the next run, and a hand-renamed configuration folder (or a
configuration without runs) is refused in one line instead of overwriting the leaderboard with an empty one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.config.schema import BenchmarkSpec
from harness.core.errors import HarnessInputError
from harness.core.escape import escape
from harness.report import publish as report
from harness.report.board import Leaderboard
from harness.store.results import benchmark_hash
from harness.store.results_store import ResultsStore
from tests import synthetic
from tests.conftest import FIXTURES, run_path

REGISTRY = "models:\n  - {name: tfidf-a, family: tfidf, tfidf: {C: 4.0}}\n  - {name: tfidf-b, family: tfidf, tfidf: {C: 0.5}}\n"


def run_args(tmp_path: Path, *extra: str, benchmarks: Path | None = None) -> list[str]:
    registry = tmp_path / "registry.yaml"
    if not registry.exists():
        registry.write_text(REGISTRY)
    return [
        "--models", "all", "--registry", str(registry), "--benchmark", "tiny_binary",
        "--benchmarks-dir", str(benchmarks or FIXTURES / "benchmarks"), "--data-dir", str(FIXTURES / "binary"),
        "--results-dir", str(tmp_path / "r"), "--no-isolate", "--latency-samples", "3", *extra,
    ]  # fmt: skip


def report_args(tmp_path: Path, *extra: str, benchmarks: Path | None = None) -> list[str]:
    return ["report", "--benchmark", "tiny_binary", "--benchmarks-dir", str(benchmarks or FIXTURES / "benchmarks"),
            "--results-dir", str(tmp_path / "r"), *extra]


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch):
    """Figures are not what these tests are about, and drawing them is most of a report's time."""
    monkeypatch.setattr(report, "draw_figures", lambda board: [])


@pytest.fixture(scope="module")
def _finished(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "draw_figures", lambda board: [])
        assert main(run_args(base, "--quiet")) == 0
    return base / "r"


@pytest.fixture
def finished(tmp_path, _finished) -> Path:
    """A store holding both models' finished runs of tiny_binary, copied for this test: ``tmp_path / "r"``."""
    shutil.copytree(_finished, tmp_path / "r")
    return tmp_path / "r"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every leaderboard, result and predictions file under a store, by relative path."""
    names = ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "result.json", "predictions.csv")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.name in names}


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


# ----- finding 3: report checks predictions.csv exactly as run does ------------------------------------------


def _cut(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(5)


def _flip_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[0, "label"] = 1 - frame.loc[0, "label"]
    return frame


def _repeat_id(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[1, "id"] = frame.loc[0, "id"]
    return frame


def _label_out_of_range(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[0, "label"] = 7
    return frame


def _text_probability(frame: pd.DataFrame) -> pd.DataFrame:
    frame["prob_0"] = frame["prob_0"].astype(object)
    frame.loc[0, "prob_0"] = "high"
    return frame


def _drop_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["prob_1"])


DAMAGES = {
    "deleted": (None, "predictions.csv is missing"),
    "cut": (_cut, "predictions.csv holds 5 rows, the result scored 24"),
    "flipped_label": (_flip_label, "per class, the result scored [12, 12]"),
    "repeated_id": (_repeat_id, "occurs more than once"),
    "label_out_of_range": (_label_out_of_range, "labels outside 0..1"),
    "text_probability": (_text_probability, "prob_0 holds values that are not finite numbers"),
    "dropped_column": (_drop_column, "lacks the column(s) prob_1"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_report_refuses_damaged_predictions_as_run_does(tmp_path, finished, capsys, damage):
    store = finished
    run_dir = run_path(store, "tiny_binary", "tfidf-b")
    predictions = run_dir / "predictions.csv"
    edit, message = DAMAGES[damage]
    if edit is None:
        predictions.unlink()
    else:
        predictions.write_text(edit(pd.read_csv(predictions)).to_csv(index=False))
    result_before = (run_dir / "result.json").read_bytes()
    other = {k: v for k, v in snapshot(store).items() if "/tfidf-a/" in k}
    capsys.readouterr()

    assert main(report_args(tmp_path)) == 1
    out = capsys.readouterr().err
    not_used = [line for line in out.splitlines() if line.startswith("not used:")]
    assert len(not_used) == 1 and message in not_used[0] and str(predictions) in not_used[0]
    # Named in the report, and in no table: no row, no interval, no plot drawn from it.
    board = (store / "tiny_binary" / "leaderboard.md").read_text()
    assert "## Runs that could not be read" in board and escape(message) in board
    table = json.loads((store / "tiny_binary" / "leaderboard.json").read_text())["rows"]
    assert [r["model"] for r in table] == ["tfidf-a"]
    assert "| tfidf-b" not in board
    assert (run_dir / "result.json").read_bytes() == result_before  # the report rewrites no run

    # run gives the same reason, because it is the same check, and redoes the run.
    assert main(run_args(tmp_path)) == 0
    out = capsys.readouterr().err
    redone = [line for line in out.splitlines() if "stored run not used" in line]
    assert len(redone) == 1 and not_used[0].removeprefix("not used: ") in redone[0]
    assert len(pd.read_csv(predictions)) == 24
    assert main(report_args(tmp_path)) == 0
    assert {k: v for k, v in snapshot(store).items() if "/tfidf-a/" in k} == other  # the good run is untouched


def test_a_run_with_good_predictions_still_counts(tmp_path, finished, capsys):
    capsys.readouterr()
    assert main(report_args(tmp_path)) == 0
    assert "not used" not in capsys.readouterr().err
    rows = json.loads((tmp_path / "r" / "tiny_binary" / "leaderboard.json").read_text())["rows"]
    assert sorted(r["model"] for r in rows) == ["tfidf-a", "tfidf-b"]


# ----- finding 6: store drift ---------------------------------------------------------------------------------


def test_a_benchmark_changed_since_the_runs_is_refused_in_one_line(tmp_path, capsys):
    benchmarks = tmp_path / "benchmarks"
    shutil.copytree(FIXTURES / "benchmarks", benchmarks)
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "binary", data)
    args = [a if a != str(FIXTURES / "binary") else str(data) for a in run_args(tmp_path, "--quiet", benchmarks=benchmarks)]
    assert main(args) == 0
    before = snapshot(tmp_path / "r")
    yaml = benchmarks / "tiny_binary.yaml"
    yaml.write_text(yaml.read_text().replace("label_names: [negative, positive]", "label_names: [negative, good]"))
    capsys.readouterr()

    assert main(report_args(tmp_path, benchmarks=benchmarks)) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert "configuration.json" in line and "another definition of benchmark tiny_binary" in line
    assert "(fix: restore the benchmark YAML these runs were made with" in line
    assert snapshot(tmp_path / "r") == before  # nothing rewritten, nothing lost
    # A description change is not a change of definition: the report is drawn as before.
    yaml.write_text(yaml.read_text().replace("label_names: [negative, good]", "label_names: [negative, positive]")
                    .replace("description: hand-written", "description: edited,"))
    assert main(report_args(tmp_path, benchmarks=benchmarks)) == 0


def test_the_report_layer_refuses_a_drifted_definition_too(tmp_path):
    spec = BenchmarkSpec(name="tiny_store", dataset={"hub_id": "local/x"}, label_names=["a", "b"],
                         budgets={"quick": {"learning_rate": 5e-5}})
    store = ResultsStore(tmp_path)
    config = synthetic.configuration(spec)
    labels = np.array([0, 1, 0, 1])
    synthetic.write_run(store, spec, config, "m", 42, labels, np.eye(2)[labels])
    assert config.benchmark_hash == benchmark_hash(spec)
    assert benchmark_hash(spec.model_copy(update={"description": "other words"})) == config.benchmark_hash
    assert [r.model for r in Leaderboard.from_store(store, spec).rows] == ["m"]
    renamed = spec.model_copy(update={"label_names": ["a", "c"]})
    with pytest.raises(HarnessInputError, match="made with another definition of benchmark tiny_store") as caught:
        Leaderboard.from_store(store, renamed)
    assert "\n" not in str(caught.value)
    # A result edited to other classes under an unchanged definition is listed, not drawn (no KeyError).
    path = store.run_dir(spec.name, config.label, "m", 42) / "result.json"
    raw = json.loads(path.read_text())
    raw["metrics"]["per_class"] = {"a": raw["metrics"]["per_class"]["a"], "z": raw["metrics"]["per_class"]["b"]}
    path.write_text(json.dumps(raw))
    board = Leaderboard.from_store(store, spec)
    assert board.rows == [] and "scored classes ['a', 'z'], the benchmark has ['a', 'b']" in board.runs.invalid[0][1]


@pytest.mark.parametrize("damage", ["garbage", "empty", "wrong_field", "deleted"])
@pytest.mark.parametrize("force", [False, True])
def test_a_damaged_configuration_file_is_rewritten_by_the_next_run(tmp_path, finished, capsys, damage, force):
    (path,) = (tmp_path / "r").glob("tiny_binary/configs/*/configuration.json")
    good = path.read_text()
    results_before = {k: v for k, v in snapshot(tmp_path / "r").items() if k.endswith("result.json")}
    if damage == "garbage":
        path.write_text("{ not json")
    elif damage == "empty":
        path.write_text("")
    elif damage == "wrong_field":
        path.write_text(json.dumps({**json.loads(good), "budget_profile": 3}))
    else:
        path.unlink()
    if damage != "deleted":
        # report names the damaged file in one line and writes nothing.
        top = snapshot(tmp_path / "r")
        capsys.readouterr()
        assert main(report_args(tmp_path)) == 2
        line = one_line(capsys.readouterr().err)
        assert str(path) in line and "does not hold a valid configuration" in line
        assert "rerun the command that made it" in line
        assert snapshot(tmp_path / "r") == top
    capsys.readouterr()
    assert main(run_args(tmp_path, *(["--force"] if force else []))) == 0
    out = capsys.readouterr().err
    assert path.read_text() == good
    if damage != "deleted":
        assert f"rewrote {path}" in out
    if not force:
        assert out.count("already complete, skipped") == 2  # no finished run redone or lost
        assert {k: v for k, v in snapshot(tmp_path / "r").items() if k.endswith("result.json")} == results_before
    assert main(report_args(tmp_path)) == 0
    rows = json.loads((tmp_path / "r" / "tiny_binary" / "leaderboard.json").read_text())["rows"]
    assert sorted(r["model"] for r in rows) == ["tfidf-a", "tfidf-b"]


def test_a_renamed_configuration_folder_is_refused_not_blanked(tmp_path, finished, capsys):
    (config_dir,) = (tmp_path / "r").glob("tiny_binary/configs/*")
    label = config_dir.name
    renamed = config_dir.with_name("mine")
    config_dir.rename(renamed)
    before = snapshot(tmp_path / "r")
    capsys.readouterr()

    assert main(report_args(tmp_path)) == 2
    line = one_line(capsys.readouterr().err)
    assert str(renamed / "configuration.json") in line and f"configuration '{label}'" in line
    assert f"(fix: rename the folder back to {label})" in line
    assert snapshot(tmp_path / "r") == before  # the top-level leaderboard is the one it was
    assert not config_dir.exists()  # no empty configuration folder made under the old name
    assert main(report_args(tmp_path, "--configuration", label)) == 2
    assert snapshot(tmp_path / "r") == before

    renamed.rename(config_dir)
    assert main(report_args(tmp_path)) == 0
    rows = json.loads((tmp_path / "r" / "tiny_binary" / "leaderboard.json").read_text())["rows"]
    assert sorted(r["model"] for r in rows) == ["tfidf-a", "tfidf-b"]


def test_a_configuration_without_runs_never_overwrites_a_leaderboard(tmp_path, finished, capsys):
    (runs,) = (tmp_path / "r").glob("tiny_binary/configs/*/runs")
    shutil.move(runs, tmp_path / "runs-aside")
    before = snapshot(tmp_path / "r")
    capsys.readouterr()
    assert main(report_args(tmp_path)) == 2
    line = one_line(capsys.readouterr().err)
    assert "holds no runs" in line and "the leaderboard is left as it was" in line
    assert snapshot(tmp_path / "r") == before


def test_publish_itself_refuses_an_empty_board(tmp_path):
    spec = BenchmarkSpec(name="tiny_store", dataset={"hub_id": "local/x"}, label_names=["a", "b"],
                         budgets={"quick": {"learning_rate": 5e-5}})
    store = ResultsStore(tmp_path)
    config = synthetic.configuration(spec)
    store.write_configuration(config)
    top = tmp_path / "tiny_store" / "leaderboard.md"
    top.write_text("an earlier leaderboard\n")
    board = Leaderboard.from_store(store, spec)
    assert board.rows == [] and board.runs.invalid == []
    with pytest.raises(HarnessInputError, match="holds no runs"):
        report.publish(store, board)
    assert top.read_text() == "an earlier leaderboard\n"
    assert not (store.config_dir(spec.name, config.label) / "leaderboard.md").exists()
