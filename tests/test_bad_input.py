"""Bad input never reaches a model: one line naming the file, entry, field and fix, exit code 2, no traceback.

Most cases call ``harness.cli.main`` in-process (fast); a few go through ``run_benchmark.py`` in a real
subprocess, so the exit code and the absence of a traceback are those a user sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import FIXTURES, ROOT, has_runs, run_path, write_csv

BUDGET = "tiny: {epochs: 1, max_length: 32, batch_size: 8, learning_rate: 1.0e-3}"
REGISTRY = """\
models:
  - {name: tfidf-logreg, family: tfidf, tfidf: {min_df: 1}}
"""


def write_benchmark(
    directory: Path, name: str = "bench", extra: str = "", label_names: str = "[negative, positive]"
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ndataset: {{hub_id: local/{name}}}\nlabel_names: {label_names}\n"
        f"default_budget: tiny\nbudgets:\n  {BUDGET}\n{extra}"
    )
    return path


@pytest.fixture
def setup(tmp_path):
    """A benchmark folder, a registry and a results dir in tmp_path; returns a function building CLI args."""
    benches = tmp_path / "benches"
    write_benchmark(benches)
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)

    def args(
        data_dir: Path = FIXTURES / "binary", *extra: str, benchmark: str = "bench", reg: Path = registry
    ) -> list[str]:
        return [
            "--benchmark",
            benchmark,
            "--benchmarks-dir",
            str(benches),
            "--registry",
            str(reg),
            "--data-dir",
            str(data_dir),
            "--results-dir",
            str(tmp_path / "results"),
            "--models",
            "all",
            "--quiet",
            "--no-isolate",
            "--latency-samples",
            "3",
            *extra,
        ]

    args.benches = benches
    args.registry = registry
    args.results = tmp_path / "results"
    return args


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process, expect exit code 2 and exactly one 'error:' line on stderr; return that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def cli_subprocess(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run_benchmark.py"), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def data_dir_with(
    tmp_path: Path,
    train_rows: list[tuple] | None = None,
    test_rows: list[tuple] | None = None,
    header: str = "text,label",
    name: str = "data",
) -> Path:
    """The binary fixture with extra rows appended to train and/or test (or a different header)."""
    import csv

    out = tmp_path / name
    for split, extra in (("train", train_rows), ("test", test_rows)):
        with open(FIXTURES / "binary" / f"{split}.csv", newline="", encoding="utf-8") as handle:
            rows = [tuple(r) for r in csv.reader(handle)][1:]
        write_csv(out / f"{split}.csv", rows + list(extra or []), header=header)
    return out


def no_runs(setup, benchmark: str = "bench") -> bool:
    return not has_runs(setup.results, benchmark)


# ----- YAML files ---------------------------------------------------------------------------------------


def test_malformed_yaml_names_file_and_line(capsys, setup):
    setup.registry.write_text("models:\n  - name: a\n    family: [tfidf\n")
    line = one_line_error(capsys, setup())
    assert line.startswith(f"error: {setup.registry}:4: malformed YAML: expected ',' or ']'")
    assert line.endswith("(fix: fix the YAML syntax at that line)")
    assert no_runs(setup)


def test_python_tag_is_malformed_yaml_and_never_runs(tmp_path, setup):
    marker = tmp_path / "pwned"
    setup.registry.write_text(f'models: !!python/object/apply:os.system ["touch {marker}"]\n')
    out = cli_subprocess(setup())
    assert out.returncode == 2 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert f"{setup.registry}:1: malformed YAML: could not determine a constructor for the tag" in out.stderr
    assert "python/object/apply:os.system" in out.stderr
    assert not marker.exists()


def test_python_object_tag_in_benchmark_is_refused(capsys, setup):
    (setup.benches / "bench.yaml").write_text("!!python/object:collections.OrderedDict {name: bench}\n")
    line = one_line_error(capsys, setup())
    assert (
        f"{setup.benches / 'bench.yaml'}:1: malformed YAML" in line
        and "python/object:collections.OrderedDict" in line
    )


def test_key_given_twice_in_one_mapping_is_refused(capsys, setup):
    setup.registry.write_text("models:\n  - name: a\n    family: tfidf\n    name: b\n")
    line = one_line_error(capsys, setup())
    assert (
        line
        == f"error: {setup.registry}:4: malformed YAML: duplicate key 'name' (fix: fix the YAML syntax at that line)"
    )


@pytest.mark.parametrize(
    "registry, expected",
    [
        (
            "models:\n  - {name: a, family: tfidf, tfidff: {C: 1}}\n",
            "[model 'a']: unknown field 'tfidff' (did you mean 'tfidf'?) (fix: remove it or correct its spelling)",
        ),
        (
            "models:\n  - {name: a, family: tfidf, tfidf: {C: abc}}\n",
            "[model 'a']: field 'models.0.tfidf.C': Input should be a valid number, unable to parse string as a number "
            "(fix: give 'C' a valid value)",
        ),
        (
            "models:\n  - {name: ok, family: tfidf}\n  - {name: b, family: tfidf, trust_remote_code: maybe}\n",
            "[model 'b']: field 'models.1.trust_remote_code': Input should be a valid boolean "
            "(fix: give 'trust_remote_code' a valid value)",
        ),
        (
            "models:\n  - {name: a, family: tfidf, budget_overrides: {epochs: 9}}\n",
            "[model 'a']: field 'models.0.budget_overrides': Value error, ['epochs'] cannot differ between models; "
            "only ['learning_rate', 'warmup_ratio', 'weight_decay'] may be overridden",
        ),
        (
            "models:\n  - {name: a}\n",
            "[model 'a']: missing required field 'models.0.family' (fix: add 'family')",
        ),
        ("models: 5\n", "field 'models': Input should be a valid list (fix: give 'models' a valid value)"),
        ("", ": expected a mapping with a 'models' list (fix: start the file with 'models:')"),
        (
            "models:\n  - {name: a, family: transformer}\n",
            "[model 'a']: a transformer entry needs a 'source' (hub_id, path or package)",
        ),
    ],
    ids=[
        "unknown-key",
        "wrong-type-number",
        "wrong-type-bool",
        "non-overridable",
        "missing-field",
        "top-level-type",
        "empty-file",
        "transformer-no-source",
    ],
)
def test_registry_schema_errors(capsys, setup, registry, expected):
    setup.registry.write_text(registry)
    line = one_line_error(capsys, setup())
    assert line.startswith(f"error: {setup.registry}")
    assert expected in line
    assert no_runs(setup)


def test_duplicate_model_names(capsys, setup):
    setup.registry.write_text(
        "models:\n  - {name: a, family: tfidf}\n  - {name: a, family: tfidf, tfidf: {C: 2}}\n"
    )
    line = one_line_error(capsys, setup())
    assert (
        line
        == f"error: {setup.registry} [model 'a']: duplicate model name (fix: give each entry a unique 'name')"
    )


def test_unknown_model_did_you_mean(capsys, setup):
    line = one_line_error(capsys, [*setup(), "--models", "tfidf-logrg"])
    assert (
        line == f"error: --models 'tfidf-logrg': not in {setup.registry} (fix: did you mean 'tfidf-logreg'?)"
    )


def test_unknown_benchmark_did_you_mean(capsys, setup):
    write_benchmark(setup.benches, "sentiment_small")
    line = one_line_error(capsys, setup(benchmark="sentiment_smal"))
    assert line == (
        f"error: --benchmark 'sentiment_smal': no such benchmark in {setup.benches} (fix: did you mean 'sentiment_small'?)"
    )


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            "label_name: label\n",
            "[benchmark 'bench']: unknown field 'label_name' (did you mean 'label_names'?) "
            "(fix: remove it or correct its spelling)",
        ),
        ("eval_split: dev\n", "field 'eval_split': Input should be 'test' or 'validation'"),
        (
            "empty_text: skip\n",
            "field 'empty_text': Input should be 'drop' or 'error' (fix: give 'empty_text' a valid value)",
        ),
    ],
    ids=["unknown-key", "wrong-literal", "wrong-empty-text-policy"],
)
def test_benchmark_schema_errors(capsys, setup, extra, expected):
    write_benchmark(setup.benches, extra=extra)
    line = one_line_error(capsys, setup())
    assert line.startswith(f"error: {setup.benches / 'bench.yaml'} [benchmark 'bench']: ")
    assert expected in line


def test_budget_wrong_type_names_the_field(capsys, setup):
    (setup.benches / "bench.yaml").write_text(
        "name: bench\ndataset: {hub_id: x/y}\nlabel_names: [a, b]\ndefault_budget: tiny\n"
        "budgets:\n  tiny: {epochs: two}\n"
    )
    line = one_line_error(capsys, setup())
    assert "[benchmark 'bench']: field 'budgets.tiny.epochs': Input should be a valid number" in line
    assert line.endswith("(fix: give 'epochs' a valid value)")


def test_default_budget_missing_and_unknown_budget_flag(capsys, setup):
    line = one_line_error(capsys, [*setup(), "--budget", "huge"])
    assert line == "error: --budget 'huge': not a budget of benchmark bench (fix: choose from ['tiny'])"
    (setup.benches / "bench.yaml").write_text(
        "name: bench\ndataset: {hub_id: x/y}\nlabel_names: [a, b]\ndefault_budget: quick\nbudgets:\n  tiny: {}\n"
    )
    line = one_line_error(capsys, setup())
    assert "default_budget 'quick' is not one of budgets ['tiny']" in line


# ----- names that would leave the results directory -----------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../../escaped", "/etc/passwd-model", "a/b", ".hidden", "x" * 101, "..", "a..b"]
)
def test_hostile_model_name_is_rejected_and_nothing_is_written(capsys, tmp_path, setup, name):
    setup.registry.write_text(f"models:\n  - {{name: {json.dumps(name)}, family: tfidf}}\n")
    line = one_line_error(capsys, setup())
    assert "is not a safe name; use letters, digits, '.', '_' and '-'" in line
    assert f"[model '{name}']" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benches", "registry.yaml"]


@pytest.mark.parametrize("name", ["../../escaped", "sub/dir", "~root"])
def test_hostile_benchmark_name_is_rejected_and_nothing_is_written(capsys, tmp_path, setup, name):
    (setup.benches / "evil.yaml").write_text(
        f"name: {json.dumps(name)}\ndataset: {{hub_id: x/y}}\nlabel_names: [a, b]\ndefault_budget: tiny\n"
        f"budgets:\n  {BUDGET}\n"
    )
    line = one_line_error(capsys, setup(benchmark="evil"))
    assert f"[benchmark '{name}']: field 'name': Value error, '{name}' is not a safe name" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benches", "registry.yaml"]
    assert not (tmp_path.parent / "escaped").exists()


def test_store_refuses_paths_outside_its_root(tmp_path):
    from harness.core.errors import HarnessInputError
    from harness.store.results_store import ResultsStore

    store = ResultsStore(tmp_path / "results")
    for parts in (("..", "c", "m", 1), ("bench", "c", "../x", 1), ("bench", "c", "/abs", 1), ("bench", "../c", "m", 1)):
        with pytest.raises(HarnessInputError, match="unsafe name"):
            store.run_dir(*parts)


# ----- data ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["text", "label"])
def test_missing_text_or_label_column(capsys, tmp_path, setup, column):
    header = "body,label" if column == "text" else "text,stars"
    data = data_dir_with(tmp_path, header=header)
    line = one_line_error(capsys, setup(data))
    present = ["body", "label"] if column == "text" else ["text", "stars"]
    assert line == (
        f"error: {data / 'train.csv'}: missing column(s) ['{column}']; the file has {present} "
        "(fix: rename the columns or set text_columns/label_column in the benchmark YAML)"
    )
    assert no_runs(setup)


@pytest.mark.parametrize(
    "bad_label, expected",
    [("7", "[7]"), ("neutral", "['neutral']"), ("1.5", "['1.5']"), ("-1", "[-1]")],
)
def test_labels_outside_the_declared_set(capsys, tmp_path, setup, bad_label, expected):
    data = data_dir_with(tmp_path, train_rows=[("an odd row", bad_label)])
    line = one_line_error(capsys, setup(data))
    assert line == (
        f"error: {data / 'train.csv'}: 1 label(s) outside the declared label set: {expected} (first at data row 49) "
        "(fix: labels must be class indices 0..1 or names from ['negative', 'positive'] "
        "(read as names when most values are names); fix the data or label_names)"
    )


def test_label_names_in_the_data_are_mapped_and_unknown_names_refused(capsys, tmp_path, setup):
    rows = [("good thing", "positive"), ("bad thing", "negative")] * 4
    out = tmp_path / "named"
    write_csv(out / "train.csv", rows + [("meh", "mixed")])
    write_csv(out / "test.csv", rows)
    line = one_line_error(capsys, setup(out))
    assert "1 label(s) outside the declared label set: ['mixed'] (first at data row 9)" in line


@pytest.mark.parametrize("missing", ["", "NaN", "nan", "None"])
def test_nan_labels(capsys, tmp_path, setup, missing):
    data = data_dir_with(tmp_path, train_rows=[("a review without a label", missing)])
    line = one_line_error(capsys, setup(data))
    assert line == (
        f"error: {data / 'train.csv'}: 1 row(s) have no label in column 'label' (first at data row 49) "
        "(fix: label or remove those rows)"
    )


def test_null_label_in_jsonl(capsys, tmp_path, setup):
    out = tmp_path / "jsonl"
    out.mkdir()
    rows = [{"text": "great", "label": 1}, {"text": "awful", "label": 0}, {"text": "hmm", "label": None}]
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    line = one_line_error(capsys, setup(out))
    assert f"{out / 'train.jsonl'}: 1 row(s) have no label in column 'label' (first at data row 3)" in line


def test_undecodable_bytes_via_real_cli(tmp_path, setup):
    data = data_dir_with(tmp_path)
    with open(data / "train.csv", "ab") as handle:
        handle.write(b"caf\xe9 au lait was lovely,1\n")
    out = cli_subprocess(setup(data))
    assert out.returncode == 2 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert out.stderr == (
        f"error: {data / 'train.csv'}:50: bytes that are not UTF-8 (invalid continuation byte) "
        "(fix: re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 for Latin-1 text))\n"
    )


def test_empty_texts_rejected_when_the_benchmark_says_error(capsys, tmp_path, setup):
    write_benchmark(setup.benches, extra="empty_text: error\n")
    data = data_dir_with(tmp_path, train_rows=[("   ", "1"), ("", "0"), ("\t", "1")])
    line = one_line_error(capsys, setup(data))
    assert line == (
        f"error: {data / 'train.csv'}: 3 empty or whitespace-only text(s) (first at data row 49) "
        "(fix: remove them, or set empty_text: drop in the benchmark YAML)"
    )


def test_empty_texts_dropped_and_counted(capsys, tmp_path, setup):
    data = data_dir_with(
        tmp_path, train_rows=[("   ", "1"), ("", "0"), ("\t \t", "1")], test_rows=[(" ", "0")]
    )
    assert main(setup(data)) == 0, capsys.readouterr().err
    result = json.loads(
        (run_path(setup.results, "bench", "tfidf-logreg", 42) / "result.json").read_text()
    )
    assert result["status"] == "completed"
    assert result["data"]["dropped_empty_texts"] == {"train": 3, "test": 1}
    assert result["data"]["train_rows"] == 48 and result["data"]["eval_rows"] == 24
    assert result["metrics"]["n"] == 24


def test_empty_text_across_several_columns_is_empty_not_the_separator(capsys, tmp_path, setup):
    write_benchmark(setup.benches, extra="text_columns: [title, body]\nempty_text: error\n")
    out = tmp_path / "two_columns"
    rows = [("Great", "works well", "1"), ("Awful", "broke", "0")] * 4
    write_csv(out / "train.csv", rows + [("", " ", "1")], header="title,body,label")
    write_csv(out / "test.csv", rows, header="title,body,label")
    line = one_line_error(capsys, setup(out))
    assert f"{out / 'train.csv'}: 1 empty or whitespace-only text(s) (first at data row 9)" in line


def test_empty_split(capsys, tmp_path, setup):
    data = data_dir_with(tmp_path)
    (data / "test.csv").write_text("text,label\n")
    line = one_line_error(capsys, setup(data))
    assert line == (
        f"error: {data / 'test.csv'}: the split is empty (after dropping empty texts) (fix: check the file's contents)"
    )


def test_split_of_only_empty_texts_is_empty_after_dropping(capsys, tmp_path, setup):
    out = tmp_path / "blank_test"
    write_csv(out / "test.csv", [("  ", "0"), ("", "1")])
    write_csv(out / "train.csv", [("good", "1"), ("bad", "0")])
    line = one_line_error(capsys, setup(out))
    assert f"{out / 'test.csv'}: the split is empty (after dropping empty texts)" in line


def test_train_filter_that_leaves_nothing(capsys, tmp_path, setup):
    write_benchmark(
        setup.benches, "multi", extra="group_columns: [lang]\n", label_names="[negative, neutral, positive]"
    )
    line = one_line_error(
        capsys, setup(FIXTURES / "multilingual", "--train-filter", "lang=xx", benchmark="multi")
    )
    assert line == (
        "error: --train-filter: lang in ['xx'] leaves no train rows (fix: choose values from ['de', 'en', 'es', 'fr'])"
    )


def test_limit_train_larger_than_the_data_via_real_cli(setup):
    out = cli_subprocess([*setup(), "--limit-train", "49"])
    assert out.returncode == 2 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert out.stderr == (
        f"error: --limit-train: asks for 49 rows but {FIXTURES / 'binary' / 'train.csv'} has 48 usable "
        "(after empty texts and filters) (fix: use at most 48 or drop the flag)\n"
    )


def test_limit_test_larger_than_the_data(capsys, setup):
    line = one_line_error(capsys, [*setup(), "--limit-test", "1000"])
    assert line.startswith("error: --limit-test: asks for 1,000 rows but ") and "has 24 usable" in line


def test_limit_that_leaves_a_single_train_class(capsys, setup):
    line = one_line_error(capsys, [*setup(), "--limit-train", "1"])
    assert line == (
        "error: --limit-train: the train split holds a single class ('negative') in 1 row(s) "
        "(fix: a classifier needs at least two classes: train on more rows or check the labels)"
    )


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--limit-train", "0"], "argument --limit-train: must be at least 1, got 0"),
        (["--seeds", "two"], "argument --seeds: expected a whole number, got 'two'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--train-filter", "lang"], "'lang' is not COLUMN=V1,V2"),
    ],
)
def test_bad_flags_are_one_line(capsys, setup, flags, expected):
    line = one_line_error(capsys, [*setup(), *flags])
    assert expected in line


def test_missing_data_dir(capsys, tmp_path, setup):
    line = one_line_error(capsys, setup(tmp_path / "nowhere"))
    assert (
        line
        == f"error: {tmp_path / 'nowhere'}: no such directory (fix: pass --data-dir a folder holding train/test files)"
    )


def test_predict_on_a_folder_that_is_not_a_model(capsys, tmp_path):
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "harness_family.json").write_text('{"family": "tfidf"}')
    line = one_line_error(capsys, ["predict", "--model-dir", str(folder), "some text"])
    assert line == (f"error: {folder / 'tfidf_config.json'}: missing from the saved model folder (fix: retrain with "
                    "`run --force` (it rewrites the run's model folder), or copy the folder again whole)")


# ----- odd but valid data: reported, not a crash --------------------------------------------------------


def test_single_class_test_split_reports_roc_auc_not_defined(capsys, tmp_path, setup):
    data = tmp_path / "single"
    import csv

    with open(FIXTURES / "binary" / "test.csv", newline="", encoding="utf-8") as handle:
        positives = [tuple(r) for r in csv.reader(handle)][1:]
    positives = [r for r in positives if r[1] == "1"]
    write_csv(data / "test.csv", positives)
    (data / "train.csv").write_bytes((FIXTURES / "binary" / "train.csv").read_bytes())
    assert main(setup(data)) == 0, capsys.readouterr().err
    result = json.loads(
        (run_path(setup.results, "bench", "tfidf-logreg", 42) / "result.json").read_text()
    )
    assert result["status"] == "completed" and result["metrics"]["n"] == len(positives) == 12
    assert result["metrics"]["roc_auc"] is None
    assert result["metrics"]["roc_auc_per_class"] == [None, None]
    assert result["metrics"]["roc_auc_note"] == "not defined: the evaluation split has a single class (1)"
    row = leaderboard_row(setup.results / "bench" / "leaderboard.md", "tfidf-logreg")
    assert row["ROC-AUC"] == "n/a" and row["status"] == "ok"


def leaderboard_row(path: Path, model: str) -> dict[str, str]:
    """The 'Models' table row of ``model`` as {column header: cell}."""
    lines = path.read_text().splitlines()
    start = lines.index("## Models") + 2
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[1] == model:
            return dict(zip(header, cells, strict=True))
    raise AssertionError(f"{model} not in the leaderboard")


# ----- safety -------------------------------------------------------------------------------------------


def test_trust_remote_code_is_off_unless_an_entry_sets_it():
    from harness.config.registry import DEFAULT_REGISTRY, load_registry

    assert {spec.trust_remote_code for spec in load_registry(DEFAULT_REGISTRY).values()} == {False}


def test_saved_weights_are_never_unpickled(capsys, tmp_path):
    """A model folder whose weights hide a pickle (an object array that would run a command when loaded)."""
    import numpy as np

    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "harness_family.json").write_text('{"family": "tfidf"}')
    (folder / "tfidf_config.json").write_text(
        '{"label_names": ["negative", "positive"], "params": {}, "vocabulary": {}}'
    )
    with open(folder / "tfidf_weights.npz", "wb") as handle:
        np.savez(
            handle,
            idf=np.array([Payload()], dtype=object),
            coef=np.zeros((1, 1)),
            intercept=np.zeros(1),
            classes=np.arange(2),
        )
    line = one_line_error(capsys, ["predict", "--model-dir", str(folder), "a text"])
    assert line.startswith(
        f"error: {folder / 'tfidf_weights.npz'}: holds an array NumPy loads only through pickle, refused (ValueError: "
        "Object arrays cannot be loaded"
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    "flags", [["--force"], ["--models", "tfidf-logreg"], ["--seeds", "2"], ["--limit-train", "5"], ["--limit-test", "5"]]
)
def test_report_only_refuses_the_flags_it_would_ignore(capsys, setup, flags):
    """--report-only trains nothing: --force, --models and the rest used to be ignored without a word."""
    line = one_line_error(capsys, [*setup(), "--report-only", *flags])
    assert line == (
        "error: --report-only: trains nothing, so --force, --models, --limit-*, --seeds do not apply "
        "(fix: drop them, or name the configuration with --configuration)"
    )
    assert not setup.results.exists()


def test_seeds_have_an_upper_bound(capsys, setup):
    line = one_line_error(capsys, [*setup(), "--seeds", "101"])
    assert line == "error: --seeds: must be between 1 and 100, got 101 (fix: pass a smaller --seeds)"
    assert not setup.results.exists()


def test_seeds_past_the_largest_seed_are_refused(capsys, setup):
    """The budget's seed plus --seeds - 1 must stay a valid seed: 2**31 - 1 + 1 would wrap or crash a library."""
    (setup.benches / "bench.yaml").write_text(
        (setup.benches / "bench.yaml").read_text().replace("epochs: 1,", f"seed: {2**31 - 1}, epochs: 1,")
    )
    line = one_line_error(capsys, [*setup(), "--seeds", "2"])
    assert line == (
        f"error: --seeds: seeds {2**31 - 1}..{2**31} pass the largest seed {2**31 - 1} "
        "(fix: lower the budget's seed or --seeds)"
    )
    assert not setup.results.exists()


def test_results_dir_that_is_a_file(capsys, tmp_path, setup):
    target = tmp_path / "not-a-folder"
    target.write_text("keep me\n")
    line = one_line_error(capsys, [*setup(), "--results-dir", str(target)])
    assert line == f"error: {target}: the results directory is a file (fix: pass a directory to --results-dir)"
    assert target.read_text() == "keep me\n"


def test_bad_input_after_finished_runs_changes_nothing_in_the_store(capsys, tmp_path, setup):
    """Bad input at every stage (flags, YAML, registry, budget, data, lock) against a store that already holds
    a finished run and its leaderboard: each stops in one line and not one byte of the store changes."""
    from harness.store.results_store import ResultsStore

    assert main(setup()) == 0
    capsys.readouterr()

    def snapshot() -> dict[str, bytes]:
        return {str(p.relative_to(setup.results)): p.read_bytes() for p in setup.results.rglob("*") if p.is_file()}

    before = snapshot()
    assert any(name.endswith("result.json") for name in before) and any("leaderboard.md" in n for n in before)
    bad_yaml = tmp_path / "elsewhere" / "bench.yaml"
    write_benchmark(bad_yaml.parent, extra="").write_text(bad_yaml.read_text().replace("epochs: 1,", "epochs: .inf,"))
    cases = {
        "malformed registry": (lambda: setup.registry.write_text("models: [\n"), setup()),
        "unknown model": (None, [*setup(), "--models", "tfidf-logreg,nope"]),
        "too many seeds": (None, [*setup(), "--seeds", "101"]),
        "report-only with --force": (None, [*setup(), "--report-only", "--force"]),
        "unknown budget": (None, [*setup(), "--budget", "huge"]),
        "limit above the data": (None, [*setup(), "--limit-train", "100000"]),
        "train filter syntax": (None, [*setup(), "--train-filter", "lang"]),
        "missing labels": (None, setup(data_dir_with(tmp_path, train_rows=[("a text", "")]))),
        "missing data dir": (None, setup(tmp_path / "nowhere")),
        "infinite epochs in a benchmark path": (None, [*setup(), "--benchmark", str(bad_yaml)]),
    }
    registry_text = setup.registry.read_text()
    for name, (prepare, argv) in cases.items():
        if prepare:
            prepare()
        one_line_error(capsys, argv)
        setup.registry.write_text(registry_text)
        assert snapshot() == before, name
    # A report while another process writes the benchmark's files is refused (a run would wait for them).
    with ResultsStore(setup.results).lock("bench"):
        line = one_line_error(capsys, ["report", "--benchmark", "bench", "--benchmarks-dir", str(setup.benches),
                                       "--results-dir", str(setup.results)])
    assert "another run is writing here" in line
    assert snapshot() == before
