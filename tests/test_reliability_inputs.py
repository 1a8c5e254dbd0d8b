"""User strings reach figures as written, and bad budgets or YAML surprises fail early, in one line.

Figures: label names and group values holding matplotlib math (``$\\x$``) used to end every run and report in a
parse error with no leaderboard written. Inputs: a max_length above the model's positions, ``label_names: [no,
yes]``, a long or odd budget name, and a reader that closes stdout (``report | head``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.cli import main
from harness.core.escape import figure_text
from tests.conftest import FIXTURES, ROOT, run_path, write_csv

# Strings matplotlib would read as math, or draw other than written.
MATHY = [r"$\x$", r"$\notacommand$", "50$ off", "a_b^c", r"a\$b", "$$"]


def benchmark_yaml(folder: Path, name: str, **fields) -> Path:
    body = {
        "name": name,
        "dataset": {"hub_id": f"local/{name}"},
        "default_budget": "tiny",
        "budgets": {"tiny": {"epochs": 1, "max_length": 32}},
        **fields,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True))
    return path


# ----- finding 5: every user string reaches a figure as written ----------------------------------------------


def _drawn(text) -> tuple[str, bool]:
    """What matplotlib draws for a Text: the string after its mathtext preprocessing, and whether it is math."""
    return text._preprocess_math(text.get_text())


@pytest.mark.parametrize("raw", MATHY)
def test_figure_text_is_drawn_exactly_as_written(raw):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def pixels(text: str, parse_math: bool) -> np.ndarray:
        fig = Figure(figsize=(2, 0.5), dpi=50)
        canvas = FigureCanvasAgg(fig)
        fig.text(0.05, 0.3, text, parse_math=parse_math)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba()).copy()

    escaped = figure_text(raw)
    fig = Figure()
    shown = fig.text(0, 0, escaped)
    assert _drawn(shown) == (raw, False)
    # The escaped text renders pixel for pixel like the raw text with math parsing switched off.
    assert np.array_equal(pixels(escaped, True), pixels(raw, False))


def test_mathy_labels_and_groups_give_a_leaderboard_and_figures_as_written(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    drawn: list[list[tuple[str, bool]]] = []
    savefig = Figure.savefig

    def recording(self, *args, **kwargs):
        drawn.append([_drawn(t) for t in self.findobj(Text)])
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    labels = MATHY[:5]
    rows = {"train": [], "test": []}
    for k in range(len(labels)):
        for i in range(12):
            split = "test" if i % 3 == 0 else "train"
            rows[split].append((f"word{k} thing{k} item{i % 4} text", k, labels[(k + i) % len(labels)]))
    data = tmp_path / "data"
    for split, split_rows in rows.items():
        write_csv(data / f"{split}.csv", split_rows, header="text,label,grp")
    benchmark_yaml(tmp_path / "bench", "mathy", label_names=labels, group_columns=["grp"])
    args = ["--models", "tfidf-logreg", "--benchmark", "mathy", "--benchmarks-dir", str(tmp_path / "bench"),
            "--data-dir", str(data), "--results-dir", str(tmp_path / "res"), "--quiet", "--no-isolate",
            "--latency-samples", "3"]  # fmt: skip
    assert main(args) == 0
    board = tmp_path / "res" / "mathy" / "leaderboard.md"
    assert board.is_file() and "tfidf-logreg" in board.read_text()
    pngs = sorted(p.name for p in (tmp_path / "res" / "mathy" / "plots").glob("*.png"))
    assert {"per_class_f1.png", "confusion_matrices.png", "roc_curves.png", "groups_grp_f1.png"} <= set(pngs)
    plain = {s for texts in drawn for s, math in texts if not math}
    mathy = [s for texts in drawn for s, math in texts if math]
    # Class names are tick labels (per-class F1, confusion matrices) and ROC titles; group values heatmap ticks.
    assert set(labels) <= plain
    assert {f"{name} vs rest" for name in labels} <= plain
    # The only math drawn is matplotlib's own (log-scale ticks), never a user's string.
    assert all(s.startswith(r"$\mathdefault{") for s in mathy), mathy
    # 'report' draws them again from the store, the same way.
    drawn.clear()
    assert main(["report", "--benchmark", "mathy", "--benchmarks-dir", str(tmp_path / "bench"),
                 "--results-dir", str(tmp_path / "res"), "--quiet"]) == 0  # fmt: skip
    assert set(labels) <= {s for texts in drawn for s, math in texts if not math}


def test_suite_figure_draws_model_and_benchmark_names_as_written():
    import pandas as pd
    from matplotlib.text import Text

    from harness.suite import summary_figure

    table = pd.DataFrame(
        {"model": ["m$1$", "m2"], "mean_rank": [1.0, 2.0], "mean_rank_low": [1.0, 1.5],
         "mean_rank_high": [1.5, 2.0], "f1_macro[b$\\x$]": [0.9, 0.8]}  # fmt: skip
    )
    fig = summary_figure(table, ["b$\\x$"])
    fig.canvas.draw()
    plain = {_drawn(t)[0] for t in fig.findobj(Text) if not _drawn(t)[1]}
    assert {"m$1$", "b$\\x$"} <= plain


# ----- finding 7: YAML surprises and budget names fail when the YAML is read, in words ---------------------


def _run_error(capsys, args: list[str]) -> str:
    """The one stderr line of a command that must stop with exit code 2 and no traceback."""
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err + captured.out, captured.err
    return lines[0]


def _tfidf_args(bench: Path, name: str, results: Path, data_dir: Path | str = FIXTURES / "binary") -> list[str]:
    return ["--models", "tfidf-logreg", "--benchmark", name, "--benchmarks-dir", str(bench), "--data-dir",
            str(data_dir), "--results-dir", str(results), "--quiet", "--no-isolate", "--latency-samples", "3"]  # fmt: skip


def test_label_names_no_yes_say_yaml_read_booleans(tmp_path, capsys):
    bench = tmp_path / "bench"
    bench.mkdir()
    path = bench / "yn.yaml"
    path.write_text("name: yn\nlabel_names: [no, yes]\ndefault_budget: tiny\nbudgets:\n  tiny: {epochs: 1}\n")
    line = _run_error(capsys, _tfidf_args(bench, "yn", tmp_path / "res"))
    assert line == (
        f"error: {path} [benchmark 'yn']: field 'label_names': Value error, YAML read no/yes as booleans, not as "
        "text (unquoted yes/no, on/off and true/false are booleans in YAML); quote them: ['no', 'yes'] "
        "(fix: give 'label_names' a valid value)"
    )
    # Quoted, they are names like any other and the run goes through.
    path.write_text(path.read_text().replace("[no, yes]", "['no', 'yes']"))
    assert main(_tfidf_args(bench, "yn", tmp_path / "res")) == 0


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("train_filter: {lang: [no]}", "field 'train_filter': Value error, YAML read no as a boolean, not as text"),
        ("label_column: 1", "field 'label_column': Value error, YAML read 1 as a number, not as text; quote it: '1'"),
        ("group_columns: [lang, no]", "YAML read no as a boolean, not as text (unquoted yes/no, on/off and "
                                       "true/false are booleans in YAML); quote them: ['lang', 'no']"),
    ],
)
def test_other_text_fields_name_what_yaml_read(tmp_path, capsys, field, expected):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "b.yaml").write_text(f"name: b\nlabel_names: [neg, pos]\n{field}\ndefault_budget: t\nbudgets: {{t: {{}}}}\n")
    assert expected in _run_error(capsys, _tfidf_args(bench, "b", tmp_path / "res"))


def test_long_budget_name_refused_when_the_yaml_is_read(tmp_path, capsys):
    name = "b" * 90
    path = benchmark_yaml(tmp_path / "bench", "longb", label_names=["neg", "pos"], default_budget=name,
                          budgets={name: {"epochs": 1}})  # fmt: skip
    # The data folder does not exist: the name is refused before any data is read.
    line = _run_error(capsys, _tfidf_args(tmp_path / "bench", "longb", tmp_path / "res", tmp_path / "no-data"))
    assert line == (
        f"error: {path} [benchmark 'longb']: field 'budgets': Value error, budget name '{'b' * 20}'... is 90 "
        "characters, more than 58 (it starts the configuration's folder name in the results store); shorten it "
        "(fix: give 'budgets' a valid value)"
    )
    assert not (tmp_path / "res").exists()


def test_unsafe_budget_name_refused_with_its_name(tmp_path, capsys):
    path = benchmark_yaml(tmp_path / "bench", "odd", label_names=["neg", "pos"], default_budget="my budget",
                          budgets={"my budget": {"epochs": 1}})  # fmt: skip
    line = _run_error(capsys, _tfidf_args(tmp_path / "bench", "odd", tmp_path / "res", tmp_path / "no-data"))
    assert line == (
        f"error: {path} [benchmark 'odd']: field 'budgets': Value error, budget name 'my budget' is not a safe "
        "name; use letters, digits, '.', '_' and '-' (no '..', no '/') (fix: give 'budgets' a valid value)"
    )


def test_longest_budget_name_fits_the_store(tmp_path):
    from harness.config.schema import MAX_BUDGET_NAME

    name = "b" * MAX_BUDGET_NAME
    budget = {"epochs": 1, "train_examples": 10**9, "test_examples": 10**9}
    benchmark_yaml(tmp_path / "bench", "longest", label_names=["neg", "pos"], default_budget=name,
                   budgets={name: budget})  # fmt: skip
    assert main(_tfidf_args(tmp_path / "bench", "longest", tmp_path / "res")) == 0
    folder = run_path(tmp_path / "res", "longest", "tfidf-logreg").parent.parent.parent
    assert len(folder.name) == 100 and folder.name.startswith(name + "-train1000000000-test1000000000-")


# ----- finding 7: a reader that closes stdout (`report | head`) ends the output quietly ------------------------


def _with_stdout_closed(*args: str) -> tuple[int, str]:
    """Run the CLI with the read end of its stdout closed before it writes a line; its exit code and stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    proc.stdout.close()
    err = proc.stderr.read()
    return proc.wait(timeout=120), err


def test_report_into_a_closed_pipe_exits_quietly(tmp_path):
    bench = FIXTURES / "benchmarks"
    assert main(_tfidf_args(bench, "tiny_binary", tmp_path / "res")) == 0
    board = tmp_path / "res" / "tiny_binary" / "leaderboard.md"
    board.unlink()
    code, err = _with_stdout_closed("report", "--benchmark", "tiny_binary", "--benchmarks-dir", str(bench),
                                    "--results-dir", str(tmp_path / "res"))  # fmt: skip
    # No "--- Logging error ---", no BrokenPipeError traceback; the report itself was written in full.
    assert (code, err) == (0, "")
    assert "tfidf-logreg" in board.read_text()


def test_list_into_a_closed_pipe_exits_quietly():
    code, err = _with_stdout_closed("list")
    assert (code, err) == (1, "")


# ----- finding 7: max_length against the model's positions, before any data is read --------------------------


def _registry(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(f"models:\n  - {{name: tiny-bert, family: transformer, source: {source}}}\n")
    return path


def _max_length_args(tmp_path: Path, registry: Path, max_length: int) -> tuple[list[str], Path]:
    bench = benchmark_yaml(tmp_path / "bench", "pos", label_names=["neg", "pos"],
                           budgets={"tiny": {"epochs": 1, "max_length": max_length}})  # fmt: skip
    args = ["--models", "tiny-bert", "--registry", str(registry), "--benchmark", "pos", "--benchmarks-dir",
            str(tmp_path / "bench"), "--data-dir", str(tmp_path / "no-data"), "--results-dir", str(tmp_path / "res"),
            "--quiet", "--no-isolate"]  # fmt: skip
    return args, bench


def test_max_length_above_a_local_models_positions_stops_before_any_data(tmp_path, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    # Only the config: the check reads no weights (there are none) and no data (the folder does not exist).
    (weights / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 80}))
    args, bench = _max_length_args(tmp_path, _registry(tmp_path, f"{{path: '{weights}'}}"), 128)
    line = _run_error(capsys, args)
    assert line == (
        f"error: {bench} [benchmark 'pos']: field 'budgets.tiny.max_length': 128 is more than model 'tiny-bert' has "
        f"positions for (80, read from {weights / 'config.json'}) (fix: lower max_length to 80 or less, or leave "
        "'tiny-bert' out of --models)"
    )
    assert not (tmp_path / "res").exists()
    # At the limit the check passes, and the command goes on to the data (which is missing here).
    args, _ = _max_length_args(tmp_path, _registry(tmp_path, f"{{path: '{weights}'}}"), 80)
    assert _run_error(capsys, args).endswith("no-data: no such directory (fix: pass --data-dir a folder holding train/test files)")


def test_max_length_checked_against_a_cached_hub_models_config(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    commit = "a" * 40
    snapshot = cache / "models--org--tiny-roberta" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (cache / "models--org--tiny-roberta" / "refs").mkdir()
    (cache / "models--org--tiny-roberta" / "refs" / "main").write_text(commit)
    config = {"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1}
    (snapshot / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    args, bench = _max_length_args(tmp_path, _registry(tmp_path, "{hub_id: org/tiny-roberta}"), 1024)
    line = _run_error(capsys, args)
    # RoBERTa-style positions start after the padding index: 514 of them hold 512 tokens.
    assert line.startswith(
        f"error: {bench} [benchmark 'pos']: field 'budgets.tiny.max_length': 1024 is more than model 'tiny-bert' "
        f"has positions for (512, read from {snapshot / 'config.json'})"
    )


@pytest.mark.parametrize(
    ("config", "limit"),
    [
        ({"model_type": "bert", "max_position_embeddings": 512}, 512),
        ({"model_type": "distilbert", "max_position_embeddings": 512}, 512),
        ({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}, 512),
        ({"model_type": "xlm-roberta", "max_position_embeddings": 514}, 512),
        ({"model_type": "gpt2", "n_positions": 1024}, 1024),
        ({"model_type": "deberta-v2", "max_position_embeddings": 512, "position_biased_input": False}, None),
        ({"model_type": "modernbert", "max_position_embeddings": 8192, "global_rope_theta": 160000.0}, None),
        ({"model_type": "t5"}, None),
    ],
)
def test_position_limit_of_each_kind_of_config(config, limit):
    from harness.models.positions import position_limit

    assert position_limit(config) == limit


def test_fit_refuses_max_length_above_the_loaded_models_positions(tmp_path, monkeypatch):
    """A hub model whose config was not on disk up front is checked once loaded, before any tokenising."""
    import pandas as pd

    from harness.config.schema import Budget
    from harness.core.errors import ModelRunError
    from harness.data.loading import Split
    from harness.models.transformer import TransformerClassifier
    from tests.tiny_models import build_tiny_model

    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    frame = pd.read_csv(FIXTURES / "binary" / "train.csv")
    split = Split(name="train", texts=frame.text.tolist(), labels=frame.label.to_numpy(), ids=np.arange(len(frame)))
    model = TransformerClassifier.load(build_tiny_model("bert", tmp_path / "bert", split.texts))
    with pytest.raises(ModelRunError) as caught:
        model.fit(split, Budget(max_length=128, batch_size=8, precision="fp32", max_steps=2), tmp_path / "work",
                  show_progress=False)  # fmt: skip
    assert str(caught.value) == (
        "model 'model': the budget's max_length 128 is more than the 80 positions the model has; lower max_length "
        "in the benchmark's budget to 80 or less, or leave 'model' out"
    )
    assert not (tmp_path / "cache").exists() and not (tmp_path / "work").exists()


def test_run_into_a_closed_pipe_trains_and_exits_quietly(tmp_path):
    # Not --quiet and one process per model: the result line goes to the closed pipe, the log lines to stderr.
    code, err = _with_stdout_closed("--models", "tfidf-logreg", "--benchmark", "tiny_binary", "--benchmarks-dir",
                                    str(FIXTURES / "benchmarks"), "--data-dir", str(FIXTURES / "binary"),
                                    "--results-dir", str(tmp_path / "res"), "--latency-samples", "3")  # fmt: skip
    assert code == 0 and "done in" in err.splitlines()[-1]
    assert "Traceback" not in err and "Logging error" not in err and "leaderboard:" not in err
    result = json.loads((run_path(tmp_path / "res", "tiny_binary", "tfidf-logreg") / "result.json").read_text())
    assert result["status"] == "completed"


def test_a_forecast_line_into_a_closed_pipe_does_not_fail_the_run(monkeypatch):
    from harness.core.output import say

    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise OSError("no descriptor")

    monkeypatch.setattr(sys, "stdout", Closed())
    say("  tfidf-logreg: about 2 min of training")  # no exception: the line is dropped
    from harness.core.output import tell

    monkeypatch.setattr(sys, "stderr", Closed())
    tell("forecast: training about 2 min")  # the same for a line on stderr
