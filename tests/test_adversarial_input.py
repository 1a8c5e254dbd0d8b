"""Adversarial input: every value a user controls is checked where it enters, and fails as one line.

Schema numbers are finite and bounded and never booleans; a registry entry cannot run code; odd files (a
directory, a compressed or UTF-16 file behind a .csv name, two files for one split, nested cells) are named
for what they are; labels are read by one stated rule.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.config.registry import load_benchmark, load_registry
from harness.config.schema import BenchmarkSpec, ModelSpec
from harness.core.errors import HarnessInputError, ModelRunError
from harness.data.loading import load_benchmark_data
from harness.models import FAMILIES
from tests.conftest import FIXTURES, ROOT, has_runs, run_path, write_csv
from tests.test_bad_input import data_dir_with, no_runs, one_line_error, setup, write_benchmark

__all__ = ["setup"]  # the fixture, imported for the tests below

BENCH_HEAD = "name: bench\ndataset: {hub_id: x/y}\nlabel_names: [a, b]\ndefault_budget: tiny\n"


def bench_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    with pytest.raises(HarnessInputError) as err:
        load_benchmark(str(path))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path} [benchmark 'bench']: ")
    return message


def registry_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    with pytest.raises(HarnessInputError) as err:
        load_registry(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path} [model 'a']: ")
    return message


# ----- finding 3: budget numbers are finite, bounded and never booleans -------------------------------------


@pytest.mark.parametrize(
    "budget, expected",
    [
        ("{epochs: .inf}", "field 'budgets.tiny.epochs': Value error, expected a finite number, got inf"),
        (
            "{learning_rate: .inf}",
            "field 'budgets.tiny.learning_rate': Value error, expected a finite number, got inf",
        ),
        (
            "{learning_rate: .nan}",
            "field 'budgets.tiny.learning_rate': Value error, expected a finite number, got nan",
        ),
        (
            "{max_seconds: .inf}",
            "field 'budgets.tiny.max_seconds': Value error, expected a finite number, got inf",
        ),
        (
            "{weight_decay: .nan}",
            "field 'budgets.tiny.weight_decay': Value error, expected a finite number, got nan",
        ),
        (
            "{max_grad_norm: -.inf}",
            "field 'budgets.tiny.max_grad_norm': Value error, expected a finite number, got -inf",
        ),
        (
            "{warmup_ratio: .nan}",
            "field 'budgets.tiny.warmup_ratio': Value error, expected a finite number, got nan",
        ),
        ("{epochs: 'inf'}", "field 'budgets.tiny.epochs': Value error, expected a finite number, got 'inf'"),
        ("{epochs: 1.0e+400}", "field 'budgets.tiny.epochs': Value error, expected a finite number, got inf"),
        ("{epochs: 1.0e+6}", "field 'budgets.tiny.epochs': Input should be less than or equal to 1000"),
        (
            "{max_seconds: 1.0e+9}",
            "field 'budgets.tiny.max_seconds': Input should be less than or equal to 2592000",
        ),
        (
            "{learning_rate: 100.0}",
            "field 'budgets.tiny.learning_rate': Input should be less than or equal to 10",
        ),
        ("{weight_decay: 5.0}", "field 'budgets.tiny.weight_decay': Input should be less than or equal to 1"),
        (
            "{epochs: true}",
            "field 'budgets.tiny.epochs': Value error, expected a number, got the boolean true",
        ),
        (
            "{batch_size: true}",
            "field 'budgets.tiny.batch_size': Value error, expected a number, got the boolean true",
        ),
        (
            "{max_steps: false}",
            "field 'budgets.tiny.max_steps': Value error, expected a number, got the boolean false",
        ),
        ("{seed: -1}", "field 'budgets.tiny.seed': Input should be greater than or equal to 0"),
        (
            "{seed: 1099511627776}",
            "field 'budgets.tiny.seed': Input should be less than or equal to 2147483647",
        ),
        (
            "{train_examples: 1.0e+12}",
            "field 'budgets.tiny.train_examples': Input should be less than or equal to",
        ),
        (
            "{eval_batch_size: 10000000}",
            "field 'budgets.tiny.eval_batch_size': Input should be less than or equal",
        ),
    ],
)
def test_budget_numbers_finite_bounded_and_not_booleans(tmp_path, budget, expected):
    message = bench_error(tmp_path, BENCH_HEAD + f"budgets:\n  tiny: {budget}\n")
    assert expected in message


@pytest.mark.parametrize(
    "entry, expected",
    [
        (
            "budget_overrides: {learning_rate: .inf}",
            "field 'models.0.budget_overrides.learning_rate': Value error, expected a finite number, got inf",
        ),
        (
            "budget_overrides: {weight_decay: .nan}",
            "field 'models.0.budget_overrides.weight_decay': Value error, expected a finite number, got nan",
        ),
        (
            "budget_overrides: {warmup_ratio: 1.5}",
            "field 'models.0.budget_overrides': Value error, warmup_ratio: Input should be less than 1",
        ),
        (
            "budget_overrides: {learning_rate: -1.0}",
            "Value error, learning_rate: Input should be greater than 0",
        ),
        ("budget_overrides: {learning_rate: true}", "expected a number, got the boolean true"),
        ("tfidf: {C: .inf}", "field 'models.0.tfidf.C': Value error, expected a finite number, got inf"),
        ("tfidf: {C: 1.0e+9}", "field 'models.0.tfidf.C': Input should be less than or equal to 1000000"),
        (
            "tfidf: {min_df: true}",
            "field 'models.0.tfidf.min_df': Value error, expected a number, got the boolean true",
        ),
        ("tfidf: {sublinear_tf: 1}", "field 'models.0.tfidf.sublinear_tf': Input should be a valid boolean"),
        ("trust_remote_code: 1", "field 'models.0.trust_remote_code': Input should be a valid boolean"),
    ],
)
def test_registry_numbers_finite_bounded_and_strict(tmp_path, entry, expected):
    assert expected in registry_error(tmp_path, f"models:\n  - {{name: a, family: tfidf, {entry}}}\n")


def test_infinite_budget_is_one_line_before_any_run(capsys, setup):
    write_benchmark(setup.benches)
    (setup.benches / "bench.yaml").write_text(
        (setup.benches / "bench.yaml").read_text().replace("epochs: 1,", "epochs: .inf,")
    )
    line = one_line_error(capsys, setup())
    assert "field 'budgets.tiny.epochs': Value error, expected a finite number, got inf" in line
    assert no_runs(setup)


def test_negative_seed_with_limit_train_is_one_line(capsys, setup):
    (setup.benches / "bench.yaml").write_text(
        (setup.benches / "bench.yaml").read_text().replace("epochs: 1,", "seed: -1, epochs: 1,")
    )
    line = one_line_error(capsys, [*setup(), "--limit-train", "10"])
    assert (
        "field 'budgets.tiny.seed': Input should be greater than or equal to 0 (fix: give 'seed' a valid value)"
        in line
    )


# ----- misspelt keys: named first, with a did-you-mean; local-only benchmarks ------------------------------


def test_misspelt_required_key_is_unknown_with_did_you_mean_not_missing(tmp_path):
    message = bench_error(
        tmp_path,
        "name: bench\ndataset: {hub_id: x/y}\nlabel_name: [a, b]\ndefault_budget: tiny\nbudgets:\n"
        "  tiny: {epoch: 1, lr: 0.1}\n",
    )
    assert message == (
        f"{tmp_path / 'bench.yaml'} [benchmark 'bench']: unknown fields 'label_name' (did you mean 'label_names'?), "
        "'epoch' (did you mean 'epochs'?), 'lr' (fix: remove them or correct their spelling)"
    )


def test_misspelt_nested_registry_key_gets_did_you_mean(tmp_path):
    message = registry_error(
        tmp_path, "models:\n  - {name: a, family: transformer, source: {pakage: p, package_subdir: m}}\n"
    )
    assert message.endswith(
        "unknown field 'pakage' (did you mean 'package'?) (fix: remove it or correct its spelling)"
    )


def test_benchmark_without_hub_id_runs_on_local_data_and_says_so_without(capsys, setup):
    (setup.benches / "local.yaml").write_text(
        "name: local\nlabel_names: [negative, positive]\ndefault_budget: tiny\nbudgets:\n"
        "  tiny: {epochs: 1, max_length: 32}\n"
    )
    args = setup(benchmark="local")
    without = [a for i, a in enumerate(args) if a != "--data-dir" and (i == 0 or args[i - 1] != "--data-dir")]
    line = one_line_error(capsys, without)
    assert line == (
        "error: benchmark 'local': has no dataset.hub_id, so its data can only come from a local folder "
        "(fix: pass --data-dir DIR holding its train/test files (or add dataset.hub_id to the benchmark YAML))"
    )
    assert not has_runs(setup.results, "local")
    assert main(args) == 0, capsys.readouterr().err
    result = json.loads(
        (run_path(setup.results, "local", "tfidf-logreg") / "result.json").read_text()
    )
    assert result["status"] == "completed" and result["data"]["kind"] == "local"


def test_hub_options_without_hub_id_are_refused(tmp_path):
    message = bench_error(
        tmp_path, BENCH_HEAD.replace("{hub_id: x/y}", "{config: en}") + "budgets: {tiny: {}}\n"
    )
    assert "['config'] only apply to a hub dataset: give 'hub_id' too, or remove them" in message


# ----- finding 7: a registry entry never runs code ----------------------------------------------------------


@pytest.fixture
def marker_package(tmp_path, monkeypatch):
    """An importable package whose top-level code would write a marker file; it holds a 'model' folder."""
    site = tmp_path / "site"
    package = site / "marker_pkg_xyz"
    (package / "model").mkdir(parents=True)
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (package / "sub").mkdir()
    (package / "sub" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    yield package, marker
    for name in [m for m in sys.modules if m.startswith("marker_pkg_xyz")]:
        del sys.modules[name]


def transformer_spec(**source) -> ModelSpec:
    return ModelSpec.model_validate({"name": "m", "family": "transformer", "source": source})


def test_package_source_is_found_without_importing_it(marker_package):
    from harness.models.transformer import resolve_source

    package, marker = marker_package
    location, extra = resolve_source(transformer_spec(package="marker_pkg_xyz"))
    assert Path(location) == (package / "model").resolve() and extra == {}
    assert not marker.exists() and "marker_pkg_xyz" not in sys.modules


def test_dotted_package_name_is_refused_before_anything_is_imported(tmp_path, marker_package):
    _, marker = marker_package
    message = registry_error(
        tmp_path, "models:\n  - {name: a, family: transformer, source: {package: marker_pkg_xyz.sub}}\n"
    )
    assert (
        "field 'models.0.source.package': Value error, 'marker_pkg_xyz.sub' is not a top-level package name "
        "(letters, digits and '_', no dots); for a folder inside it write package: marker_pkg_xyz and give the "
        "rest as package_subdir"
    ) in message
    assert not marker.exists() and "marker_pkg_xyz" not in sys.modules


@pytest.mark.parametrize("subdir", ["../../etc", "model/../../x", "/etc", "~/weights", "C:/x", "", "m\0"])
def test_package_subdir_stays_inside_the_package(tmp_path, subdir):
    message = registry_error(
        tmp_path,
        f"models:\n  - {{name: a, family: transformer, source: {{package: p, package_subdir: {json.dumps(subdir)}}}}}\n",
    )
    assert f"{subdir!r} must be a relative folder inside the package (no '..', not absolute)" in message


def test_package_subdir_symlink_leading_outside_is_refused(tmp_path, marker_package):
    from harness.models.transformer import resolve_source

    package, marker = marker_package
    (package / "escape").symlink_to(tmp_path)
    with pytest.raises(ModelRunError, match="package_subdir 'escape' leads outside"):
        resolve_source(transformer_spec(package="marker_pkg_xyz", package_subdir="escape"))
    assert not marker.exists()


def test_a_module_that_is_not_a_package_folder_is_refused(tmp_path, monkeypatch):
    from harness.models.transformer import resolve_source

    (tmp_path / "lonely_module_xyz.py").write_text("raise SystemExit('must not run')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelRunError, match="'lonely_module_xyz' is not installed as a package folder"):
        resolve_source(transformer_spec(package="lonely_module_xyz"))


@pytest.mark.parametrize("hub_id", ["../weights", "/abs/model", "org/../x", "a/b/c", "~/m", "org--x/m"])
def test_hub_id_is_a_repository_id_never_a_path(tmp_path, hub_id):
    message = registry_error(
        tmp_path, f"models:\n  - {{name: a, family: transformer, source: {{hub_id: {json.dumps(hub_id)}}}}}\n"
    )
    assert (
        f"{hub_id!r} is not a hub repository id ('name' or 'org/name'); for local files use path" in message
    )
    message = bench_error(tmp_path, BENCH_HEAD.replace("x/y", json.dumps(hub_id)) + "budgets: {tiny: {}}\n")
    assert f"field 'dataset.hub_id': Value error, {hub_id!r} is not a hub repository id" in message


def test_split_name_cannot_reach_outside_the_data_dir(capsys, tmp_path, setup):
    outside = data_dir_with(tmp_path, name="outside")
    write_benchmark(setup.benches, extra="splits: {train: ../outside/train, test: test}\n")
    line = one_line_error(capsys, setup(data_dir_with(tmp_path)))
    assert (
        "field 'splits': Value error, split train: '../outside/train' is not a plain name (no '/', not '..')"
        in line
    )
    assert (outside / "train.csv").exists() and no_runs(setup)


# ----- finding 8: one line, not a traceback -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "1e400"])
def test_infinite_label_is_one_line(capsys, tmp_path, setup, value):
    data = data_dir_with(tmp_path, train_rows=[("an odd row", value)])
    line = one_line_error(capsys, setup(data))
    assert f"1 label(s) outside the declared label set: ['{value}'] (first at data row 49)" in line


def test_split_file_that_is_a_directory(capsys, tmp_path, setup):
    data = tmp_path / "data"
    (data / "train.csv").mkdir(parents=True)
    (data / "test.csv").write_bytes((FIXTURES / "binary" / "test.csv").read_bytes())
    line = one_line_error(capsys, setup(data))
    assert line == (
        f"error: {data / 'train.csv'}: is a directory, not a data file (fix: put the train split there as a file)"
    )


def test_two_files_for_one_split_are_refused(capsys, tmp_path, setup):
    data = data_dir_with(tmp_path)
    pd.read_csv(data / "train.csv").to_parquet(data / "train.parquet")
    line = one_line_error(capsys, setup(data))
    assert line == (
        f"error: {data}: train.csv and train.parquet both hold split 'train' "
        "(fix: keep one file per split (move the others out of the folder))"
    )


def test_data_dir_that_is_a_file(capsys, tmp_path, setup):
    path = tmp_path / "train.csv"
    path.write_text("text,label\n")
    line = one_line_error(capsys, setup(path))
    assert (
        line
        == f"error: {path}: is a file, not a directory (fix: pass --data-dir a folder holding train/test files)"
    )


@pytest.fixture
def tfidf_model(tmp_path_factory) -> Path:
    from harness.config.schema import Budget
    from harness.data.loading import Split
    from harness.models import save_model
    from harness.models.tfidf import TfidfLogReg, TfidfParams

    model = TfidfLogReg(TfidfParams(min_df=1), ["negative", "positive"])
    texts = ["good great", "bad awful", "great fine", "awful poor"]
    split = Split("train", texts, np.array([1, 0, 1, 0]), np.arange(4))
    model.fit(split, Budget(), tmp_path_factory.mktemp("work"), show_progress=False)
    directory = tmp_path_factory.mktemp("model")
    save_model(model, directory, "tfidf")
    return directory


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            b"good\ncaf\xe9 bad\n",
            ":2: bytes that are not UTF-8 (invalid continuation byte) (fix: re-encode the file as UTF-8",
        ),
        (
            "good\nbad\n".encode("utf-16"),
            ": is UTF-16 text (little-endian byte-order mark), not UTF-8 text (fix: iconv -f utf-16 -t utf-8)",
        ),
        (
            gzip.compress(b"good\n"),
            ": is gzip-compressed, not UTF-8 text (fix: decompress it first: gunzip -c FILE > plain file)",
        ),
        (None, ": is a directory (fix: pass --file a text file with one text per line)"),
    ],
    ids=["latin1", "utf16", "gzip", "directory"],
)
def test_predict_file_that_is_not_utf8_text(capsys, tmp_path, tfidf_model, content, expected):
    path = tmp_path / "texts.txt"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    line = one_line_error(capsys, ["predict", "--model-dir", str(tfidf_model), "--file", str(path)])
    assert line.startswith(f"error: {path}{expected}")


def test_predict_file_with_utf8_byte_order_mark_reads_the_text(capsys, tmp_path, tfidf_model):
    path = tmp_path / "texts.txt"
    path.write_bytes("\ufeffgood great\n\nawful poor\n".encode())
    assert main(["predict", "--model-dir", str(tfidf_model), "--file", str(path), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # The blank line keeps its row (marked blank, not classified): output row i is input line i.
    assert [(r["text"], r["label"]) for r in rows] == [("good great", "positive"), ("", None), ("awful poor", "negative")]


def _tamper(directory: Path, kind: str) -> None:
    if kind == "family-list":
        (directory / "harness_family.json").write_text("[1]")
        return
    if kind == "one-label":
        meta = json.loads((directory / "tfidf_config.json").read_text())
        (directory / "tfidf_config.json").write_text(json.dumps({**meta, "label_names": ["only"]}))
        return
    weights = dict(np.load(directory / "tfidf_weights.npz"))
    if kind == "classes":
        weights["classes"] = np.array([0, 7])
    elif kind == "idf":
        weights["idf"] = weights["idf"][:1]
    np.savez(directory / "tfidf_weights.npz", **weights)


@pytest.mark.parametrize(
    "kind, expected",
    [
        (
            "family-list",
            f"harness_family.json: names no model family (expected {{\"family\": one of {sorted(FAMILIES)}}})",
        ),
        (
            "one-label",
            "tfidf_config.json: field 'label_names': List should have at least 2 items after validation, not 1",
        ),
        (
            "classes",
            "tfidf_weights.npz: does not match tfidf_config.json: classes [0, 7] do not fit 2 label names",
        ),
        ("idf", "tfidf_weights.npz: does not match tfidf_config.json: idf has shape (1,), expected ("),
    ],
)
def test_damaged_saved_model_is_one_line_not_a_traceback(capsys, tmp_path, tfidf_model, kind, expected):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tfidf_model, folder)
    _tamper(folder, kind)
    line = one_line_error(capsys, ["predict", "--model-dir", str(folder), "good great"])
    assert line.startswith(f"error: {folder}/") and expected in line and "(fix: retrain with `run --force`" in line


def test_ctrl_c_in_the_worker_exits_130_without_a_traceback(tmp_path):
    """The job file is a FIFO, so the worker blocks reading it; SIGINT then lands inside its run."""
    fifo = tmp_path / "job.json"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "harness.run.worker", str(fifo)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # opening the write end succeeds once the worker has the FIFO open for reading
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                assert time.monotonic() < deadline and child.poll() is None, (
                    "the worker never opened its job file"
                )
                time.sleep(0.05)
        time.sleep(0.2)  # now blocked in read(), waiting for the job text
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        os.close(writer)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert err == ""


# ----- finding 9: values reported as written, files named for what they are, labels by one rule -------------


def test_huge_label_is_reported_as_written(capsys, tmp_path, setup):
    data = data_dir_with(tmp_path, train_rows=[("an odd row", "100000000000000000000000")])
    line = one_line_error(capsys, setup(data))
    assert (
        "1 label(s) outside the declared label set: [100000000000000000000000] (first at data row 49)" in line
    )


@pytest.mark.parametrize(
    "encode, expected",
    [
        (
            gzip.compress,
            "is gzip-compressed, not UTF-8 text (fix: decompress it first: gunzip -c FILE > plain file)",
        ),
        (
            lambda b: b.decode().encode("utf-16"),
            "is UTF-16 text (little-endian byte-order mark), not UTF-8 text (fix: iconv -f utf-16 -t utf-8)",
        ),
        (
            lambda b: b.decode().encode("utf-16-be"),
            "is binary or UTF-16/32 text without a byte-order mark (it holds NUL bytes)",
        ),
        (lambda b: b"PK\x03\x04" + b, "is a zip archive (or an .xlsx/.ods workbook), not UTF-8 text"),
    ],
    ids=["gzip", "utf16-bom", "utf16-no-bom", "zip"],
)
def test_file_behind_a_csv_name_is_named_for_what_it_is(capsys, tmp_path, setup, encode, expected):
    data = data_dir_with(tmp_path)
    (data / "train.csv").write_bytes(encode((data / "train.csv").read_bytes()))
    line = one_line_error(capsys, setup(data))
    assert line.startswith(f"error: {data / 'train.csv'}: {expected}")
    assert "latin1" not in line


def test_text_file_behind_a_parquet_name_is_named_for_what_it_is(capsys, tmp_path, setup):
    data = data_dir_with(tmp_path)
    (data / "train.csv").rename(data / "train.parquet")
    line = one_line_error(capsys, setup(data))
    assert line == (
        f"error: {data / 'train.parquet'}: is UTF-8 text, not Parquet "
        "(fix: give it the suffix of its real format (.csv, .tsv, .jsonl))"
    )


def test_csv_with_utf8_byte_order_mark_reads_its_header(capsys, tmp_path, setup):
    data = data_dir_with(tmp_path)
    (data / "train.csv").write_bytes(b"\xef\xbb\xbf" + (data / "train.csv").read_bytes())
    assert main(setup(data)) == 0, capsys.readouterr().err


@pytest.mark.parametrize("kind", ["parquet-list", "jsonl-list", "jsonl-dict"])
def test_text_column_of_lists_or_mappings_is_refused(capsys, tmp_path, setup, kind):
    out = tmp_path / "nested"
    out.mkdir()
    value = {"jsonl-dict": {"title": "good"}}.get(kind, ["good", "product"])
    rows = [{"text": "fine thing", "label": 1}, {"text": "poor thing", "label": 0}] * 3 + [
        {"text": value, "label": 1}
    ]
    if kind.startswith("parquet"):  # a Parquet column has one type: lists in every row
        pd.DataFrame([{**r, "text": [str(r["text"])]} for r in rows]).to_parquet(out / "train.parquet")
    else:
        (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_csv(out / "test.csv", [("fine", "1"), ("poor", "0")])
    line = one_line_error(capsys, setup(out))
    what = "mappings" if kind == "jsonl-dict" else "lists"
    where = "7 row(s), first at data row 1" if kind.startswith("parquet") else "1 row(s), first at data row 7"
    suffix = "parquet" if kind.startswith("parquet") else "jsonl"
    assert line == (
        f"error: {out / ('train.' + suffix)}: column 'text' holds {what}, not single values ({where}) (fix: store one "
        "string (or label) per cell: join or pick the part you mean, or choose another column in the benchmark YAML)"
    )


def spec_with(label_names: list[str]) -> BenchmarkSpec:
    return BenchmarkSpec.model_validate(
        {
            "name": "b",
            "dataset": {"hub_id": "x/y"},
            "label_names": label_names,
            "default_budget": "q",
            "budgets": {"q": {}},
        }
    )


def labelled_dir(tmp_path: Path, labels: list[str]) -> Path:
    out = tmp_path / "labelled"
    rows = [(f"text number {i}", label) for i, label in enumerate(labels)]
    write_csv(out / "train.csv", rows)
    write_csv(out / "test.csv", rows)
    return out


def test_integer_looking_label_names_are_matched_by_name_not_position(tmp_path):
    data = load_benchmark_data(spec_with(["1", "0"]), labelled_dir(tmp_path, ["1", "0", "1", "0"]))
    # Data label "1" is class "1" (index 0), never the class at position 1 (which is "0").
    assert data.train.labels.tolist() == [0, 1, 0, 1]
    assert [data.label_names[i] for i in data.train.labels] == ["1", "0", "1", "0"]


def test_integer_looking_label_names_never_fall_back_to_positions(tmp_path):
    with pytest.raises(HarnessInputError) as err:
        load_benchmark_data(spec_with(["1", "2"]), labelled_dir(tmp_path, ["0", "1", "0", "1"]))
    assert str(err.value) == (
        f"{tmp_path / 'labelled' / 'train.csv'}: 2 label(s) outside the declared label set: [0] (first at data row 1) "
        "(fix: label_names ['1', '2'] look like integers, so labels are matched by name only, never by position: "
        "every label must be one of them; fix the data or label_names)"
    )


def test_names_and_indices_follow_the_stated_rule(tmp_path):
    names = ["negative", "positive"]
    by_index = load_benchmark_data(spec_with(names), labelled_dir(tmp_path / "i", ["1", "0", "1.0", "0"]))
    by_name = load_benchmark_data(
        spec_with(names), labelled_dir(tmp_path / "n", ["positive", "negative"] * 2)
    )
    assert by_index.train.labels.tolist() == by_name.train.labels.tolist() == [1, 0, 1, 0]


def test_a_class_named_like_a_missing_value_is_a_class(tmp_path):
    data = load_benchmark_data(
        spec_with(["None", "some"]), labelled_dir(tmp_path, ["None", "some", "None", "some"])
    )
    assert data.train.labels.tolist() == [0, 1, 0, 1]


def test_label_names_with_surrounding_spaces_are_refused(tmp_path):
    message = bench_error(tmp_path, BENCH_HEAD.replace("[a, b]", "[' a', b]") + "budgets: {tiny: {}}\n")
    assert "label name(s) [' a'] start or end with spaces; remove them (fix: correct those fields)" in message


@pytest.mark.parametrize("names", ["['', b]", "[a, '  ']"])
def test_empty_label_names_are_refused(tmp_path, names):
    message = bench_error(tmp_path, BENCH_HEAD.replace("[a, b]", names) + "budgets: {tiny: {}}\n")
    assert "has an empty name; give every class a name (fix: correct those fields)" in message


def test_quiet_isolated_transformer_run_prints_nothing(tmp_path):
    from tests.tiny_models import build_tiny_model, registry_yaml

    texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        registry_yaml({"tiny-bert": build_tiny_model("bert", tmp_path / "bert", texts)}, False)
    )
    env = {**os.environ, "TEXTCLF_BENCH_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_benchmark.py"),
            "--models",
            "tiny-bert",
            "--registry",
            str(registry),
            "--benchmark",
            "tiny_binary",
            "--benchmarks-dir",
            str(FIXTURES / "benchmarks"),
            "--data-dir",
            str(FIXTURES / "binary"),
            "--results-dir",
            str(tmp_path / "results"),
            "--latency-samples",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""
