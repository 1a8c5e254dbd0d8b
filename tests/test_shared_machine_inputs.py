"""The adversarial pass's findings on inputs (issue 25, item 4): what a leaderboard says of its data (the local file's
rows, a class without train rows, which classes macro averages cover, repeated evaluation rows, runs still in
progress), saved models checked when loaded, one output row per input line, and names the schema refuses."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.metrics import stats
from harness.metrics.columns import column

FIXTURES = Path(__file__).parent / "fixtures"
# Five classes: 'music' has test rows but no train rows; '天気' (its glyphs are not in matplotlib's default font)
# has neither.
LABELS = ["sports", "tech", "food", "music", "天気"]
REPEATED = "Our coach praised the defence after the game again."
BENCHMARK = f"""name: tiny_five
description: the three-class sentences with a class never trained on and one named only
dataset: {{hub_id: local/tiny_five}}
text_columns: [text]
label_names: {json.dumps(LABELS, ensure_ascii=False)}
official_sizes: {{train: 8544, test: 2210}}
default_budget: tiny
budgets:
  tiny: {{train_examples: 30, epochs: 1, max_length: 32, batch_size: 8, eval_batch_size: 16}}
"""


def _write_data(folder: Path) -> None:
    """train: the fixture's 48 rows (classes 0-2); test: its 24 rows, 3 'music' rows, and one row repeated 20
    more times in other case and spacing (the same text once normalised)."""
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "three_class" / "train.csv", folder / "train.csv")
    test = (FIXTURES / "three_class" / "test.csv").read_text().splitlines()
    music = ["A new album of piano music came out today.,3", "The band played songs from their first record.,3",
             "The orchestra rehearsed the symphony all night.,3"]
    copies = [f"{REPEATED.upper() if i % 2 else '  ' + REPEATED.replace(' ', '  ')},0" for i in range(20)]
    (folder / "test.csv").write_text("\n".join(test + music + copies) + "\n")


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    """One TF-IDF run of the five-class benchmark under --quiet, its stderr and the warnings raised meanwhile."""
    root = tmp_path_factory.mktemp("five")
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "tiny_five.yaml").write_text(BENCHMARK, encoding="utf-8")
    _write_data(root / "data")
    stderr = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(stderr):
        warnings.simplefilter("always")
        code = main(["run", "--models", "tfidf-logreg", "--benchmark", "tiny_five", "--benchmarks-dir",
                     str(root / "benchmarks"), "--data-dir", str(root / "data"), "--results-dir",
                     str(root / "results"), "--no-isolate", "--latency-samples", "2", "--quiet"])
    assert code == 0, stderr.getvalue()
    board = (root / "results" / "tiny_five" / "leaderboard.md").read_text(encoding="utf-8")
    return {"root": root, "stderr": stderr.getvalue(), "warnings": [str(w.message) for w in caught], "board": board}


def _report(five, *extra: str) -> str:
    root = five["root"]
    code = main(["report", "--benchmark", "tiny_five", "--benchmarks-dir", str(root / "benchmarks"),
                 "--results-dir", str(root / "results"), *extra])
    assert code == 0
    return (root / "results" / "tiny_five" / "leaderboard.md").read_text(encoding="utf-8")


# ----- a. the local file's rows ----------------------------------------------------------------------------------


def test_the_data_line_says_the_local_files_rows_beside_the_published_splits(five):
    assert ("(train: a sample of 30 of the local file's 48 rows; the published split has 8,544; "
            "test: all 47 rows of the local file; the published split has 2,210)") in five["board"]


# ----- b. a class without train rows ---------------------------------------------------------------------------


def test_a_class_without_train_rows_is_a_warning_in_the_board_and_on_stderr(five):
    music = ("class 'music' has no training rows (3 row(s) of the 'test' split hold it): no model learned it; "
             "check the data or label_names")
    named = ("class '天気' has no training rows (nor has the 'test' split: it is named in label_names only): no model "
             "learned it; check the data or label_names")
    for line in (music, named):
        assert f"**Warning**: {line}" in five["board"]
        assert line in five["stderr"].splitlines()
    result = next((five["root"] / "results").rglob("result.json"))
    assert json.loads(result.read_text())["data"]["classes_without_train_rows"] == {"music": 3, "天気": 0}


# ----- c. which classes macro averages cover --------------------------------------------------------------------


def test_a_class_absent_from_the_evaluation_split_is_left_out_of_macro_averages_and_said(five):
    assert ("**Note**: macro averages (macro-F1, precision, recall) over the 4 classes present in the 'test' split; "
            "'天気' has no test rows") in five["board"]
    result = json.loads(next((five["root"] / "results").rglob("result.json")).read_text())
    per_class = result["metrics"]["per_class"]
    present = [n for n in LABELS if per_class[n]["support"] > 0]
    assert present == LABELS[:4]
    for field, key in (("f1_macro", "f1"), ("precision_macro", "precision"), ("recall_macro", "recall")):
        assert result["metrics"][field] == pytest.approx(np.mean([per_class[n][key] for n in present]), abs=1e-12)


def test_the_catalogue_and_the_interval_function_agree_on_the_classes_present():
    """Four of five classes in y_true: every macro average is over those four; the bootstrap's point is the same."""
    y_true = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3])
    y_pred = np.array([0, 0, 1, 1, 1, 4, 2, 0, 3, 3, 4, 3])
    y_prob = np.eye(5)[y_pred] * 0.8 + 0.04
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2, 3], zero_division=0)
    f1 = column("f1_macro").score(y_true, y_prob)
    assert f1 == pytest.approx(f.mean(), abs=1e-12) and f1 != pytest.approx(np.append(f, 0.0).mean())
    assert column("precision_macro").score(y_true, y_prob) == pytest.approx(p.mean(), abs=1e-12)
    assert column("recall_macro").score(y_true, y_prob) == pytest.approx(r.mean(), abs=1e-12)
    assert stats.macro_f1(y_true, y_prob) == pytest.approx(f1, abs=1e-12)
    # A resample without class 3's rows still averages over the split's four classes (3 scores 0 there).
    weights = (y_true != 3).astype(float)[None, :]
    resampled = precision_recall_fscore_support(y_true[y_true != 3], y_pred[y_true != 3], labels=[0, 1, 2, 3],
                                                zero_division=0)[2]
    assert stats.macro_f1.weighted(y_true, y_prob, weights)[0] == pytest.approx(resampled.mean(), abs=1e-12)


def test_with_every_class_present_macro_f1_is_unchanged():
    """The committed results and the golden store have every class in their evaluation split: the same numbers."""
    rng = np.random.default_rng(0)
    y_true = np.tile(np.arange(3), 20)
    y_prob = rng.dirichlet(np.ones(3), size=60)
    from sklearn.metrics import f1_score

    expected = f1_score(y_true, y_prob.argmax(axis=1), labels=[0, 1, 2], average="macro", zero_division=0)
    assert column("f1_macro").score(y_true, y_prob) == pytest.approx(expected, abs=1e-12)
    assert stats.macro_f1(y_true, y_prob) == pytest.approx(expected, abs=1e-12)


# ----- d. repeated evaluation rows -------------------------------------------------------------------------------


def test_repeated_evaluation_rows_are_counted_and_warned_about(five):
    assert ("**Warning**: 20 of 47 'test' rows repeat another row's text and label (1 text(s) repeated, the most 21 "
            "times; exact after Unicode NFKC, whitespace and case normalisation): the bootstrap intervals and paired "
            "tests take every copy as an independent example, so they are narrower than the data supports"
            ) in five["board"]


# ----- e. runs still in progress ---------------------------------------------------------------------------------


def test_a_board_written_while_runs_are_in_progress_says_so_in_both_copies(five):
    from harness.store.results_store import ResultsStore

    root = five["root"]
    store = ResultsStore(root / "results")
    label = store.configurations("tiny_five")[0].label
    with contextlib.ExitStack() as held:
        for seed in (43, 44):
            assert held.enter_context(store.run_lock(store.run_dir("tiny_five", label, "minilm-l6", seed))) is None
        board = _report(five, "--quiet")
        configuration = (store.config_dir("tiny_five", label) / "leaderboard.md").read_text(encoding="utf-8")
    line = ("**Warning**: 2 run(s) of this configuration were still running when this was written: minilm-l6 seed 43, "
            "44; their rows are missing or may change: rebuild it with `report` once they finish")
    assert line in board and line in configuration
    assert "still running" not in _report(five, "--quiet")  # the locks let go: a final board says nothing


# ----- h. the glyph warning under --quiet -------------------------------------------------------------------------


def test_the_missing_glyph_warning_is_silenced_under_quiet_only(five):
    assert not [w for w in five["warnings"] if "missing from font" in w]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _report(five)
    assert any("Glyph" in str(w.message) and "missing from font" in str(w.message) for w in caught)


# ----- f. saved models checked on load ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfidf_model(tmp_path_factory) -> Path:
    from harness.config.schema import Budget
    from harness.data.loading import Split
    from harness.models import save_model
    from harness.models.tfidf import TfidfLogReg, TfidfParams

    model = TfidfLogReg(TfidfParams(min_df=1), ["negative", "positive"])
    split = Split("train", ["good great", "bad awful", "great fine", "awful poor"], np.array([1, 0, 1, 0]), np.arange(4))
    model.fit(split, Budget(), tmp_path_factory.mktemp("work"), show_progress=False)
    directory = tmp_path_factory.mktemp("tfidf") / "model"
    save_model(model, directory, "tfidf")
    return directory


def _one_line(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(folder, target)
    return target


def _nan_coefficient(folder: Path) -> str:
    weights = dict(np.load(folder / "tfidf_weights.npz"))
    weights["coef"][0, 0] = np.nan
    np.savez(folder / "tfidf_weights.npz", **weights)
    return f"{folder / 'tfidf_weights.npz'}: does not match tfidf_config.json: coef holds values that are not finite"


def _truncated_npz(folder: Path) -> str:
    path = folder / "tfidf_weights.npz"
    path.write_bytes(path.read_bytes()[:100])
    return f"{path}: is truncated or not a NumPy archive (BadZipFile: "


def _no_marker(folder: Path) -> str:
    (folder / "harness_family.json").unlink()
    return (f"{folder / 'harness_family.json'}: missing, and no config.json of a Hugging Face model either: not a "
            "saved model folder")


def _empty(folder: Path) -> str:
    for path in folder.iterdir():
        path.unlink()
    return f"{folder}: the folder is empty: no saved model here (fix: pass a run's model folder"


@pytest.mark.parametrize("damage", [_nan_coefficient, _truncated_npz, _no_marker, _empty])
def test_a_damaged_tfidf_folder_is_one_line_naming_the_file_and_the_fix(capsys, tmp_path, tfidf_model, damage):
    folder = _copy(tfidf_model, tmp_path)
    expected = damage(folder)
    line = _one_line(capsys, ["predict", "--model-dir", str(folder), "good great"])
    assert line.startswith(f"error: {expected}"), line
    assert "(fix: " in line and ("run --force" in line or damage is _empty)


@pytest.fixture(scope="module")
def transformer_model(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_model

    directory = build_tiny_model("bert", tmp_path_factory.mktemp("bert") / "model", ["good great", "bad awful"])
    (directory / "harness_family.json").write_text(json.dumps({"family": "transformer"}))
    (directory / "harness_inference.json").write_text(json.dumps({"max_length": 16, "precision": "fp32"}))
    return directory


def test_a_truncated_safetensors_file_is_one_line(capsys, tmp_path, transformer_model):
    folder = _copy(transformer_model, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    line = _one_line(capsys, ["predict", "--model-dir", str(folder), "good great"])
    assert line.startswith(f"error: {weights}: is truncated or not a safetensors file (SafetensorError: "), line
    assert "(fix: retrain with `run --force`" in line


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"max_length": -1}, "field 'max_length': Input should be greater than or equal to 1"),
        ({"max_length": 100000}, "field 'max_length': 100000 is more than the model's 80 positions"),
        ({"max_length": 16, "precision": "int3"}, "field 'precision': Input should be 'fp32', 'bf16' or 'fp16'"),
        ([16, "fp32"], "holds a JSON list, not an object of settings"),
    ],
)
def test_harness_inference_json_is_validated(capsys, tmp_path, transformer_model, settings, expected):
    folder = _copy(transformer_model, tmp_path)
    (folder / "harness_inference.json").write_text(json.dumps(settings))
    line = _one_line(capsys, ["predict", "--model-dir", str(folder), "good great"])
    assert line.startswith(f"error: {folder / 'harness_inference.json'}: {expected}"), line


def test_a_sound_transformer_folder_still_predicts(capsys, transformer_model):
    assert main(["predict", "--model-dir", str(transformer_model), "--json", "good great"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert set(row["probabilities"]) == {"LABEL_0", "LABEL_1"} and np.isfinite(row["score"])


# ----- g. one output row per input line --------------------------------------------------------------------------


@pytest.mark.parametrize("stdin", [False, True])
def test_predict_keeps_one_output_row_per_input_line(capsys, monkeypatch, tmp_path, tfidf_model, stdin):
    data = "good great\n\n   \nawful poor\n"
    if stdin:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
        source = "-"
    else:
        source = str(tmp_path / "texts.txt")
        Path(source).write_text(data)
    assert main(["predict", "--model-dir", str(tfidf_model), "--file", source, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["text"], r["label"], r.get("blank", False)) for r in rows] == [
        ("good great", "positive", False), ("", None, True), ("   ", None, True), ("awful poor", "negative", False)]
    assert rows[1]["score"] is None and rows[1]["probabilities"] == {}
    assert main(["predict", "--model-dir", str(tfidf_model), "good great", ""]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 and table[1] == "-\t-\t[blank line: not classified]\t"


# ----- h. names the schema refuses --------------------------------------------------------------------------------


def _benchmark_error(capsys, tmp_path, yaml_text: str) -> str:
    (tmp_path / "b").mkdir()
    path = tmp_path / "b" / "tiny_binary.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    line = _one_line(capsys, ["run", "--models", "tfidf-logreg", "--benchmark", "tiny_binary", "--benchmarks-dir",
                              str(tmp_path / "b"), "--data-dir", str(FIXTURES / "binary"), "--results-dir",
                              str(tmp_path / "results"), "--no-isolate", "--quiet"])
    assert not (tmp_path / "results").exists()
    return line.removeprefix("error: ").replace(str(path), "<file>")


def test_a_budget_name_that_climbs_out_of_the_store_is_refused_by_the_schema(capsys, tmp_path):
    """Already refused where the YAML is read (config.schema._check_budget_names): pinned here."""
    text = (FIXTURES / "benchmarks" / "tiny_binary.yaml").read_text()
    text = text.replace("default_budget: tiny", 'default_budget: "../../x"').replace("  tiny: ", '  "../../x": ')
    assert _benchmark_error(capsys, tmp_path, text) == (
        "<file> [benchmark 'tiny_binary']: field 'budgets': Value error, budget name '../../x' is not a safe name; use "
        "letters, digits, '.', '_' and '-' (no '..', no '/') (fix: give 'budgets' a valid value)")


@pytest.mark.parametrize("name", ["nega\r\ntive", "neg\native", "nega\rtive"])
def test_a_label_name_holding_a_line_break_is_refused(capsys, tmp_path, name):
    text = (FIXTURES / "benchmarks" / "tiny_binary.yaml").read_text()
    text = text.replace("label_names: [negative, positive]", f"label_names: [{json.dumps(name)}, positive]")
    assert _benchmark_error(capsys, tmp_path, text) == (
        f"<file> [benchmark 'tiny_binary']: field 'label_names': Value error, label name(s) {[name]} hold a line break "
        "or another control character; remove it (fix: give 'label_names' a valid value)")
