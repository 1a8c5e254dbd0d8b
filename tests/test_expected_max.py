"""Expected validation performance (Dodge et al., 2019): the formula against a hand computation, and its section.

The hand computation enumerates every one of the N^n ordered draws of n trials from N scores with exact fractions
(no formula in common with ``harness.metrics.expected_max``); the section is built on a store written by hand
whose runs carry tuning studies, where the leader changes at n = 3 in one store and still at n = N in another.
"""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.config.registry import load_benchmark
from harness.metrics import expected_max
from harness.report import page, publish, sections, tuning
from harness.report.board import Leaderboard
from harness.store.results import TrialRecord, TuningRecord, read_result
from harness.store.results_store import ResultsStore, write_result
from tests import synthetic

FIXTURES = Path(__file__).parent / "fixtures"
SCORES = ["0.61", "0.74", "0.58", "0.74", "0.69"]  # a tie at the top


def enumerated(scores: list[str], n: int, best=max) -> tuple[Fraction, Fraction]:
    """Mean and variance of the best of n draws with replacement, over every one of the N^n draws."""
    values = [Fraction(s) for s in scores]
    draws = [best(draw) for draw in itertools.product(values, repeat=n)]
    mean = sum(draws, Fraction(0)) / len(draws)
    return mean, sum(((d - mean) ** 2 for d in draws), Fraction(0)) / len(draws)


def enumerated_over_seeds(seeds: list[list[str]], n: int) -> tuple[Fraction, Fraction]:
    """The best of n draws of one seed's trials, the seed drawn uniformly, then each of its N_s^n draws equally
    likely: the mean and the second moment over that two-stage draw, then the variance."""
    first = second = Fraction(0)
    for s in seeds:
        draws = [max(d) for d in itertools.product([Fraction(v) for v in s], repeat=n)]
        first += sum(draws, Fraction(0)) / len(draws) / len(seeds)
        second += sum((d * d for d in draws), Fraction(0)) / len(draws) / len(seeds)
    return first, second - first * first


# ----- the formula -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6])
def test_expected_best_equals_the_enumeration_of_every_draw(n):
    mean, variance = enumerated(SCORES, n)
    got_mean, got_std = expected_max.expected_best([float(s) for s in SCORES], n)
    assert abs(got_mean - float(mean)) < 1e-12
    assert abs(got_std - math.sqrt(variance)) < 1e-12


def test_the_curve_is_the_expected_best_at_each_n_and_rises():
    curve = expected_max.curve([float(s) for s in SCORES], 5)
    assert curve.trials == 5
    for n in range(1, 6):
        mean, variance = enumerated(SCORES, n)
        assert abs(curve.at(n)[0] - float(mean)) < 1e-12 and abs(curve.at(n)[1] - math.sqrt(variance)) < 1e-12
    assert all(a < b for a, b in zip(curve.expected, curve.expected[1:], strict=False))
    # One trial: the mean of the scores and their population standard deviation.
    assert abs(curve.at(1)[0] - 3.36 / 5) < 1e-12
    assert abs(curve.at(1)[1] - float(np.std([float(s) for s in SCORES]))) < 1e-12


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_a_minimised_metric_gives_the_expected_lowest(n):
    losses = ["0.42", "0.35", "0.51", "0.35", "0.60"]
    mean, variance = enumerated(losses, n, best=min)
    got_mean, got_std = expected_max.expected_best([float(v) for v in losses], n, "minimize")
    assert abs(got_mean - float(mean)) < 1e-12 and abs(got_std - math.sqrt(variance)) < 1e-12
    if n > 1:
        assert got_mean < expected_max.expected_best([float(v) for v in losses], 1, "minimize")[0]


def test_ties_all_equal_and_a_tie_at_the_bottom():
    flat = expected_max.curve([0.7, 0.7, 0.7], 4)
    assert flat.expected == (0.7, 0.7, 0.7, 0.7) and flat.std == (0.0, 0.0, 0.0, 0.0)
    tied = ["0.5", "0.5", "0.9"]
    for n in (1, 2, 3):
        mean, variance = enumerated(tied, n)
        got = expected_max.expected_best([0.5, 0.5, 0.9], n)
        assert abs(got[0] - float(mean)) < 1e-12 and abs(got[1] - math.sqrt(variance)) < 1e-12
    # Two of three at 0.5: P(best of 2 is 0.5) = (2/3)^2, so E = 0.5 * 4/9 + 0.9 * 5/9.
    assert abs(expected_max.expected_best([0.5, 0.9, 0.5], 2)[0] - (0.5 * 4 / 9 + 0.9 * 5 / 9)) < 1e-12


def test_one_trial_is_its_score_at_every_n():
    curve = expected_max.curve([0.8125], 4)
    assert curve.expected == (0.8125,) * 4 and curve.std == (0.0,) * 4
    assert expected_max.expected_best([0.3], 1, "minimize") == (0.3, 0.0)


def test_no_scores_or_no_trial_is_refused():
    with pytest.raises(ValueError, match="no trial scores"):
        expected_max.expected_best([], 1)
    with pytest.raises(ValueError, match="at least 1"):
        expected_max.expected_best([0.5], 0)
    with pytest.raises(ValueError, match="finite"):
        expected_max.expected_best([0.5, float("nan")], 2)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_seeds_average_as_a_seed_drawn_at_random(n):
    seeds = [["0.61", "0.74", "0.58"], ["0.70", "0.66", "0.80"]]
    mean, variance = enumerated_over_seeds(seeds, n)
    combined = expected_max.over_seeds([expected_max.curve([float(v) for v in s], 3) for s in seeds])
    assert abs(combined.at(n)[0] - float(mean)) < 1e-12
    assert abs(combined.at(n)[1] - math.sqrt(variance)) < 1e-12


def test_leaders_and_where_they_settle():
    a, b = expected_max.Curve((0.8, 0.81, 0.82), (0, 0, 0)), expected_max.Curve((0.7, 0.81, 0.9), (0, 0, 0))
    # n = 2 is an exact tie: the first name in sorted order leads.
    assert expected_max.leaders({"b": b, "a": a}) == ["a", "a", "b"]
    assert expected_max.leaders({"b": b, "a": a}, "minimize") == ["b", "a", "a"]
    assert expected_max.settled_from(["a", "a", "b", "b"]) == 3
    assert expected_max.settled_from(["a", "b", "a", "a"]) == 3
    assert expected_max.settled_from(["b", "b", "b"]) == 1
    assert expected_max.settled_from(["a", "a", "b"]) == 3
    assert expected_max.settled_from(["a"]) == 1


# ----- the section -------------------------------------------------------------------------------------------

# One seed each; the leader (hand computation in test_the_section_shows_the_curves_and_the_leader_settling):
# steady at 0.825, 0.82875, 0.8296875, ... while bold rises 0.725, 0.8125, 0.85625, 0.8828125: steady leads
# at n = 1 and 2, bold from n = 3 on.
STUDIES_SETTLING = {
    "steady": [["0.81", "0.83", "0.83", "0.83"]],
    "bold": [["0.50", "0.70", "0.75", "0.95"]],
    "weak": [["0.40", "0.50", "0.60", "0.45"], ["0.55", "0.30", None, "0.52"]],
}
# steady flat at 0.87: bold passes it only at n = 4 = N.
STUDIES_LATE = {"steady": [["0.87", "0.87", "0.87", "0.87"]], "bold": STUDIES_SETTLING["bold"]}
VALIDATION = "a stratified 10% of train (20 rows), carved per seed"
SPACE = {"learning_rate": {"low": 1e-5, "high": 1e-4, "log": True}, "epochs": [1, 2, 3]}


def _record(scores: list[str | None], narrowed: bool) -> TuningRecord:
    trials = [
        TrialRecord(number=k, params={"learning_rate": 1e-5 * (k + 1.5), "epochs": k % 3 + 1},
                    validation_score=None if v is None else float(v), status="failed" if v is None else "completed")
        for k, v in enumerate(scores)
    ]
    best = max((t for t in trials if t.validation_score is not None), key=lambda t: (t.validation_score, -t.number))
    space = {"learning_rate": {"low": 1e-5, "high": 5e-5, "log": True}, "epochs": [1, 2, 3]} if narrowed else SPACE
    return TuningRecord(metric="f1_macro", direction="maximize", trials_planned=4, trials=trials, selected=best.number,
                        space=space, narrowed=narrowed, sampler="TPESampler(seed=7)", validation=VALIDATION)


def _tuned_store(root: Path, studies: dict[str, list[list[str | None]]], tuned: bool = True):
    spec, _ = load_benchmark("tiny_three", FIXTURES / "benchmarks")
    store = ResultsStore(root)
    config = synthetic.configuration(spec)
    labels = np.array([0, 1, 2, 0, 1, 2])
    for model, seeds in studies.items():
        for seed, scores in enumerate(seeds, 1):
            run_dir = synthetic.write_run(store, spec, config, model, seed, labels, np.eye(3)[labels] * 0.7 + 0.1,
                                          family="tfidf")
            if tuned:
                path = run_dir / "result.json"
                result = read_result(path)
                write_result(path, result.model_copy(update={"tuning": _record(scores, narrowed=model == "bold")}))
    store.set_current(config)
    return Leaderboard.from_store(store, spec, n_boot=50)


def _section(markdown: str) -> str:
    start = markdown.index("## Expected validation performance")
    end = markdown.index("\n## ", start + 1)
    return markdown[start:end]


def _cell(seeds: list[list[str | None]], n: int) -> str:
    completed = [[v for v in s if v is not None] for s in seeds]
    mean, variance = enumerated_over_seeds(completed, n)
    return f"{float(mean):.4f} ± {math.sqrt(variance):.4f}"


@pytest.fixture(scope="module")
def settling(tmp_path_factory):
    board = _tuned_store(tmp_path_factory.mktemp("settling"), STUDIES_SETTLING)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish, "draw_figures", lambda board: [])  # the leaderboard's other plots: not tested here
        files = publish.report_files(board)
    return board, files


def test_the_section_shows_the_curves_and_the_leader_settling(settling):
    board, files = settling
    text = _section(files.texts["leaderboard.md"])
    assert "The leader by expected best validation macro-F1 stops changing at n = 3: bold from n = 3 to 4 " \
           "(steady at n = 2)." in text
    rows = [line for line in text.splitlines() if re.match(r"\|\s+\d+ \|", line)]
    assert len(rows) == 4
    for n, row in enumerate(rows, 1):
        cells = [c.strip() for c in row.strip("|").split("|")]
        # Columns in leaderboard order (all three score the same on test: by name), then the leader.
        assert cells[0] == str(n)
        expected = [_cell(STUDIES_SETTLING[m], n) for m in ("bold", "steady", "weak")]
        assert cells[1:4] == expected
        assert cells[4] == ("steady" if n < 3 else "bold")
    # The comment's figures, by the enumeration: what makes the lead change at n = 3.
    assert [enumerated(STUDIES_SETTLING["bold"][0], n)[0] for n in (1, 2, 3)] == [
        Fraction("0.725"), Fraction("0.8125"), Fraction("0.85625")]
    assert [enumerated(STUDIES_SETTLING["steady"][0], n)[0] for n in (1, 2, 3)] == [
        Fraction("0.825"), Fraction("0.82875"), Fraction("0.8296875")]


def test_the_section_states_validation_selection_and_narrowed_spaces(settling):
    board, files = settling
    text = _section(files.texts["leaderboard.md"])
    assert f"**Validation set**: {VALIDATION}; trials are scored on it only, never on the test split" in text
    assert "**Budget**: 4 trial(s) per model and seed; sampler TPESampler(seed=7); selected on validation macro-F1" in text
    header = next(line for line in text.splitlines() if line.lstrip("| ").startswith("trials n"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["trials n", "bold †", "steady", "weak", "leader"]
    assert "†: the model's entry narrowed the benchmark's search space" in text
    selected = {tuple(c.strip() for c in line.strip("|").split("|")[:6])
                for line in text.splitlines() if line.startswith("| ") and " of 4 " in line}
    assert selected == {
        # (markdown escapes the underscore)
        ("bold †", "1", "3", "learning\\_rate=4.5e-05, epochs=1", "0.9500", "4 of 4"),
        ("steady", "1", "1", "learning\\_rate=2.5e-05, epochs=2", "0.8300", "4 of 4"),
        ("weak", "1", "2", "learning\\_rate=3.5e-05, epochs=3", "0.6000", "4 of 4"),
        ("weak", "2", "0", "learning\\_rate=1.5e-05, epochs=1", "0.5500", "3 of 4"),
    }
    assert "narrowed: learning\\_rate: (low=1e-05, high=5e-05, log=true); epochs: one of (1, 2, 3) |" in text
    assert "**Search space**: learning\\_rate: (low=1e-05, high=0.0001, log=true); epochs: one of (1, 2, 3)\n" in text
    assert text.count("the benchmark's") >= 3
    assert "![expected best validation macro-F1 after n trials](plots/expected_validation.png)" in text


def test_the_plot_and_the_page_chart_are_drawn_from_the_same_curves(settling):
    board, files = settling
    png = files.pngs["plots/expected_validation.png"]
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    (chart,) = page.charts(board)["plots/expected_validation.png"]
    by_name = {s["name"]: s for s in chart["series"]}
    assert list(by_name) == ["bold †", "steady", "weak"] and by_name["bold †"]["x"] == [1, 2, 3, 4]
    assert abs(by_name["bold †"]["y"][3] - 226 / 256) < 1e-12
    mean, variance = enumerated(STUDIES_SETTLING["bold"][0], 2)
    assert abs(by_name["bold †"]["high"][1] - float(mean) - math.sqrt(variance)) < 1e-12
    if "leaderboard.html" in files.texts:
        assert "Expected validation performance" in files.texts["leaderboard.html"]


def test_a_leader_that_still_changes_at_n(tmp_path):
    board = _tuned_store(tmp_path, STUDIES_LATE)
    text = _section(publish.render_markdown(board))
    assert "The leader by expected best validation macro-F1 still changes at n = 4: bold at n = 4, steady at " \
           "n = 3; more trials could change it." in text
    assert "plots/expected_validation.png" not in text  # no files: no figure


def test_an_untuned_configuration_shows_nothing_of_it(tmp_path):
    board = _tuned_store(tmp_path, STUDIES_LATE, tuned=False)
    assert board.expected_validation is None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish, "draw_figures", lambda board: [])
        files = publish.report_files(board)
    assert "Expected validation" not in files.texts["leaderboard.md"]
    assert "plots/expected_validation.png" in files.absent and "plots/expected_validation.png" not in files.pngs
    assert "plots/expected_validation.png" not in page.charts(board)


def test_the_page_draws_the_curves_with_their_bands(settling, tmp_path):
    """The page's chart in headless Chromium: one line and one band per model, no console error."""
    if "leaderboard.html" not in settling[1].texts:
        pytest.skip("plotly is not installed: no page (pip install plotly)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from tests.test_html_page import _chromium

    found = _chromium()
    if found is None:
        pytest.skip("no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    page_file = tmp_path / "leaderboard.html"
    page_file.write_text(settling[1].texts["leaderboard.html"], encoding="utf-8")
    chrome = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        chrome.get(page_file.resolve().as_uri())
        chrome.execute_script("window.drawAllCharts()")
        traces = chrome.execute_script(
            "var h = [...document.querySelectorAll('h2')].find(e => e.textContent === 'Expected validation performance');"
            "var plot = h.parentElement.querySelector('.js-plotly-plot');"
            "return plot.data.map(t => [t.name || '', t.fill || '', t.y.length]);"
        )
        assert chrome.get_log("browser") == []
    finally:
        chrome.quit()
    lines = [t for t in traces if t[0]]
    assert lines == [["bold †", "", 4], ["steady", "", 4], ["weak", "", 4]]
    assert sum(1 for t in traces if t[1] == "tonexty") == 3


def test_the_leader_line_without_a_completed_trial_or_with_different_metrics():
    record = TuningRecord(metric="f1_macro", direction="maximize", trials_planned=2, selected=None, space={},
                          narrowed=False, sampler="RandomSampler(seed=1)", validation=VALIDATION,
                          trials=[TrialRecord(number=k, params={}, validation_score=None, status="failed") for k in (0, 1)])
    failed = tuning.ModelStudy("m", [tuning.SeedStudy(1, record, [], None)], None)
    empty = tuning.ExpectedValidation([failed], 2, ["f1_macro"], "maximize", [VALIDATION], ["RandomSampler(seed=1)"], [])
    assert sections._leader_line(empty) == "No trial completed: there is no curve to compare."
    assert sections._selected_table(empty).rows == [["m", 1, "none", "n/a", "n/a", "0 of 2", "the benchmark's"]]
    curve = expected_max.curve([0.5], 2)
    mixed = tuning.ExpectedValidation([tuning.ModelStudy("a", [], curve), tuning.ModelStudy("b", [], curve)], 2,
                                      ["accuracy", "f1_macro"], "maximize", [VALIDATION], ["s"], [])
    assert sections._leader_line(mixed) == ("The models were tuned on different metrics (accuracy, f1\\_macro): "
                                            "their curves are not ranked against each other.")
