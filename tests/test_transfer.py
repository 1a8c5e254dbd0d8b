"""Cross-group transfer: filtered runs stored apart, the one-command matrix, and its report section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from matplotlib import image as mpimg

from harness.cli import main
from harness.config.registry import load_benchmark
from harness.config.schema import SAFE_NAME
from harness.core.errors import HarnessInputError
from harness.metrics.quality import group_metrics
from harness.report import groups
from harness.report.board import Leaderboard
from harness.store.results_store import ResultsStore, filter_variant
from tests.conftest import run_path

LANGS = ["de", "en", "es", "fr"]


def bench_args(bench_dir: Path, data_dir: Path, results: Path, *extra: str) -> list[str]:
    return [
        "--models",
        "tfidf-logreg",
        "--benchmark",
        "tiny_multilingual",
        "--benchmarks-dir",
        str(bench_dir),
        "--data-dir",
        str(data_dir),
        "--results-dir",
        str(results),
        "--quiet",
        "--no-isolate",
        *extra,
    ]


def tiny_spec(bench_dir: Path):
    return load_benchmark("tiny_multilingual", bench_dir)[0]


# -- the store key ---------------------------------------------------------------------------------


def test_filter_variant_names():
    assert filter_variant(None) is None and filter_variant({}) is None
    assert filter_variant({"lang": ["en"]}) == "transfer/train-lang-en"
    assert (
        filter_variant({"lang": ["fr", "en", "fr"]})
        == filter_variant({"lang": ["en", "fr"]})
        == "transfer/train-lang-en_fr"
    )
    assert filter_variant({"src": ["web"], "lang": ["en"]}) == "transfer/train-lang-en__src-web"


@pytest.mark.parametrize("values", [["../../etc"], ["pt-BR"], ["pt_BR"], ["a/b"], ["日本語"], ["x" * 200]])
def test_unplain_values_get_a_safe_hashed_name(values):
    variant = filter_variant({"lang": values})
    prefix, name = variant.split("/")
    assert prefix == "transfer" and SAFE_NAME.match(name) and ".." not in name
    assert name.startswith("train-lang") and len(name.rsplit("--h", 1)[1]) == 10


def test_different_filters_never_share_a_directory():
    filters = [
        ["en"],
        ["en", "fr"],
        ["en_fr"],
        ["en-fr"],
        ["en fr"],
        ["en.fr"],
        ["pt-BR"],
        ["pt_BR"],
        ["pt.BR"],
    ]
    names = [filter_variant({"lang": v}) for v in filters]
    assert len(set(names)) == len(names)
    assert filter_variant({"a": ["b_c"]}) != filter_variant({"a_b": ["c"]})
    # a hashed name cannot be mistaken for a plain value that looks like a hash
    hashed = filter_variant({"lang": ["日本語"]})
    assert filter_variant({"lang": [hashed.split("train-lang-", 1)[1]]}) != hashed


def test_store_rejects_a_variant_that_leaves_the_root(tmp_path):
    store = ResultsStore(tmp_path)
    with pytest.raises(HarnessInputError, match="unsafe name"):
        store.run_dir("bench", "c", "m", 1, "transfer/../../../x")
    assert store.run_dir("bench", "c", "m", 1, "transfer/train-lang-en") == (
        tmp_path.resolve() / "bench" / "configs" / "c" / "transfer" / "train-lang-en" / "runs" / "m" / "seed-1"
    )


# -- runs ------------------------------------------------------------------------------------------


def test_train_on_one_language_evaluates_on_all_and_fills_its_row(tmp_path, bench_dir, multilingual_dir):
    assert main(bench_args(bench_dir, multilingual_dir, tmp_path, "--train-filter", "lang=en")) == 0
    run_dir = (
        run_path(tmp_path, "tiny_multilingual", "tfidf-logreg", 42, "transfer/train-lang-en")
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["train_filter"] == {"lang": ["en"]}
    assert result["data"]["train_rows"] == 18  # the 18 English rows of 72
    assert {lang: m["n"] for lang, m in result["group_metrics"]["lang"].items()} == dict.fromkeys(LANGS, 9)
    assert not list((tmp_path / "tiny_multilingual").glob("configs/*/runs"))  # nothing written as a full-train run

    (config,) = ResultsStore(tmp_path).configurations("tiny_multilingual")
    leaderboard = Leaderboard.from_store(ResultsStore(tmp_path), tiny_spec(bench_dir), config.label, n_boot=50)
    matrices = leaderboard.transfer["lang"]
    row = matrices["tfidf-logreg"]
    assert list(row) == ["en"]  # no full-train run yet: only its own row
    assert sorted(row["en"].cells) == LANGS
    for lang in LANGS:
        assert row["en"].cells[lang].point == pytest.approx(
            result["group_metrics"]["lang"][lang]["f1_macro"], abs=1e-12
        )
    # in-language beats zero-shot on this fixture: the English run has never seen the other vocabularies
    assert row["en"].cells["en"].point == 1.0
    assert max(row["en"].cells[lang].point for lang in ("de", "es", "fr")) < 0.6

    board = (tmp_path / "tiny_multilingual" / "leaderboard.md").read_text()
    assert "## Cross-lang transfer (train lang x test lang)" in board
    assert "| en             | 18           |" in board


def test_transfer_matrix_option_fills_every_cell(tmp_path, bench_dir, multilingual_dir, capsys):
    assert main(bench_args(bench_dir, multilingual_dir, tmp_path, "--transfer-matrix", "lang")) == 0
    base = tmp_path / "tiny_multilingual"
    (config_dir,) = (base / "configs").iterdir()
    assert sorted(p.name for p in (config_dir / "transfer").iterdir()) == [f"train-lang-{lang}" for lang in LANGS]
    leaderboard = Leaderboard.from_store(ResultsStore(tmp_path), tiny_spec(bench_dir), config_dir.name, n_boot=50)
    matrices = leaderboard.transfer["lang"]
    matrix = matrices["tfidf-logreg"]
    assert groups.row_order(matrix) == ["all", *LANGS]
    for train, scores in matrix.items():
        assert sorted(scores.cells) == LANGS
        assert all(math.isfinite(c.point) and c.n == 9 for c in scores.cells.values())
        assert scores.train_rows == (72 if train == "all" else 18)
    # the fixture's test tweets are near-copies of train tweets: in-language and multilingual are perfect
    assert [matrix[lang].cells[lang].point for lang in LANGS] == [1.0] * 4
    assert [matrix["all"].cells[lang].point for lang in LANGS] == [1.0] * 4
    summary = groups.transfer_summary(matrix)
    assert summary["in_group"] == 1.0 and summary["all"] == 1.0 and 0 < summary["zero_shot"] < 0.6

    board = (base / "leaderboard.md").read_text()
    section = board.split("## Cross-lang transfer", 1)[1]
    table = [line for line in section.splitlines() if line.startswith("| ") and "train / test" not in line]
    assert [line.split("|")[1].strip() for line in table] == ["all", *LANGS]
    assert "![tfidf-logreg transfer matrix](plots/transfer_lang_tfidf-logreg.png)" in section
    height, width, _ = mpimg.imread(base / "plots" / "transfer_lang_tfidf-logreg.png").shape
    assert width > 300 and height > 200
    # the per-language table of the full-train run sits above it
    assert "## Macro-F1 per lang" in board.split("## Cross-lang transfer")[0]

    # one more time: every cell is already there, nothing is retrained
    capsys.readouterr()
    assert (
        main(
            [
                a
                for a in bench_args(bench_dir, multilingual_dir, tmp_path, "--transfer-matrix", "lang")
                if a != "--quiet"
            ]
        )
        == 0
    )
    assert capsys.readouterr().err.count("already complete, skipped") == 5


def test_filtered_runs_do_not_overwrite_the_full_run(tmp_path, bench_dir, multilingual_dir):
    assert main(bench_args(bench_dir, multilingual_dir, tmp_path)) == 0
    full = run_path(tmp_path, "tiny_multilingual", "tfidf-logreg", 42)
    before = {name: (full / name).read_bytes() for name in ("result.json", "predictions.csv")}
    assert main(bench_args(bench_dir, multilingual_dir, tmp_path, "--train-filter", "lang=de")) == 0
    assert main(bench_args(bench_dir, multilingual_dir, tmp_path, "--train-filter", "lang=en,fr")) == 0
    assert {name: (full / name).read_bytes() for name in before} == before
    store = ResultsStore(tmp_path)
    (config,) = store.configurations("tiny_multilingual")
    assert [run.result.data.train_rows for run in store.iter_runs("tiny_multilingual", config.label)] == [72]
    assert store.variants("tiny_multilingual", config.label) == ["transfer/train-lang-de", "transfer/train-lang-en_fr"]
    board = (tmp_path / "tiny_multilingual" / "leaderboard.md").read_text()
    models = board.split("## Models", 1)[1].split("##", 1)[0]
    (row,) = [line for line in models.splitlines() if "| tfidf-logreg |" in line]
    accuracy, macro_f1 = (c.strip() for c in row.split("|")[4:6])
    assert accuracy.startswith("1.0000") and macro_f1.startswith("1.0000")  # the full run's numbers, not de's
    rows = [
        line.split("|")[1].strip()
        for line in board.split("## Cross-lang transfer", 1)[1].splitlines()
        if line.startswith("| ") and "train / test" not in line
    ]
    assert rows == ["all", "de", "en+fr"]


def test_report_only_rebuilds_the_group_sections(tmp_path, bench_dir, multilingual_dir):
    assert main(bench_args(bench_dir, multilingual_dir, tmp_path, "--train-filter", "lang=es")) == 0
    assert main(bench_args(bench_dir, multilingual_dir, tmp_path)) == 0
    base = tmp_path / "tiny_multilingual"
    first = (base / "leaderboard.md").read_text()
    (base / "leaderboard.md").unlink()
    for png in (base / "plots").glob("*.png"):
        png.unlink()
    assert (
        main(
            [
                "--report-only",
                "--benchmark",
                "tiny_multilingual",
                "--benchmarks-dir",
                str(bench_dir),
                "--results-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    rebuilt = (base / "leaderboard.md").read_text()
    assert rebuilt.split("## Macro-F1 per lang", 1)[1] == first.split("## Macro-F1 per lang", 1)[1]
    rebuilt_plots = {p.name for p in (base / "plots").glob("*.png")}
    assert {"groups_lang_f1.png", "transfer_lang_tfidf-logreg.png"} <= rebuilt_plots


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--transfer-matrix", "label"], "not a group column"),
        (["--transfer-matrix", "lang", "--train-filter", "lang=en"], "cannot be combined"),
        (["--train-filter", "lang=xx"], "leaves no train rows"),
    ],
)
def test_bad_transfer_options_exit_2_and_write_nothing(
    tmp_path, bench_dir, multilingual_dir, capsys, extra, message
):
    assert main(bench_args(bench_dir, multilingual_dir, tmp_path, *extra)) == 2
    assert message in capsys.readouterr().err
    assert not list((tmp_path / "tiny_multilingual").glob("configs/*/transfer"))


def test_group_metrics_by_hand_on_a_transfer_run(tmp_path, bench_dir, multilingual_dir):
    """The stored per-language numbers are the metrics of the stored predictions, language by language."""
    assert main(bench_args(bench_dir, multilingual_dir, tmp_path, "--train-filter", "lang=fr")) == 0
    run_dir = run_path(tmp_path, "tiny_multilingual", "tfidf-logreg", 42, "transfer/train-lang-fr")
    frame = ResultsStore.read_predictions(run_dir)
    probs = frame[["prob_0", "prob_1", "prob_2"]].to_numpy()
    expected = group_metrics(
        frame["label"].to_numpy(), probs, frame["group_lang"].to_numpy(), ["a", "b", "c"]
    )
    stored = json.loads((run_dir / "result.json").read_text())["group_metrics"]["lang"]
    for lang in LANGS:
        assert stored[lang]["f1_macro"] == pytest.approx(expected[lang]["f1_macro"], abs=1e-5)
        assert stored[lang]["accuracy"] == pytest.approx(expected[lang]["accuracy"], abs=1e-12)


def test_tiny_xlmr_trains_on_the_multilingual_fixture_and_fills_the_language_table(
    tmp_path, bench_dir, multilingual_dir
):
    pytest.importorskip("torch")
    import pandas as pd

    from tests.tiny_models import build_tiny_model, registry_yaml

    texts = pd.read_csv(multilingual_dir / "train.csv")["text"].tolist()
    model_dir = build_tiny_model("xlm-roberta", tmp_path / "tiny-xlmr", texts, num_labels=3)
    registry = tmp_path / "registry.yaml"
    registry.write_text(registry_yaml({"tiny-xlmr": model_dir}, extra_tfidf=False))
    results = tmp_path / "results"
    args = [
        "--models",
        "tiny-xlmr",
        "--registry",
        str(registry),
        "--benchmark",
        "tiny_multilingual",
        "--benchmarks-dir",
        str(bench_dir),
        "--data-dir",
        str(multilingual_dir),
        "--results-dir",
        str(results),
        "--quiet",
        "--no-isolate",
        "--no-save-model",
        "--latency-samples",
        "2",
    ]
    assert main(args) == 0
    result = json.loads(
        (run_path(results, "tiny_multilingual", "tiny-xlmr", 42) / "result.json").read_text()
    )
    assert result["status"] == "completed", result.get("error")
    assert result["training"]["examples_seen"] == 144  # 72 rows x 2 epochs
    assert {lang: m["n"] for lang, m in result["group_metrics"]["lang"].items()} == dict.fromkeys(LANGS, 9)
    board = (results / "tiny_multilingual" / "leaderboard.md").read_text()
    section = board.split("## Macro-F1 per lang", 1)[1]
    (row,) = [line for line in section.splitlines() if line.startswith("| tiny-xlmr")]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    for lang, cell in zip(LANGS, cells[1:5], strict=True):
        assert cell.startswith(f"{result['group_metrics']['lang'][lang]['f1_macro']:.3f} [")
