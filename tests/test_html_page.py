"""leaderboard.html: the same sections as leaderboard.md in one self-contained page, checked in headless Chromium.

The renderer's text handling is checked without a browser; the page's behaviour (no network, no console error,
sorting, column groups, the error browser's counts, a hostile label, a non-blank screenshot) with selenium and
the system's Chromium, skipped with a reason where chromium or chromedriver is not installed.
"""

from __future__ import annotations

import html as std_html
import json
import logging
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main, open_page
from harness.config.registry import load_benchmark
from harness.core.escape import escape, script_json
from harness.report import html, publish
from harness.report.document import Figure, Paragraph, Section, Table
from harness.store.results_store import ResultsStore
from tests import synthetic

FIXTURES = Path(__file__).parent / "fixtures"
BENCHMARK = "tiny_multilingual"
EVIL = "<img src=x onerror=window.pwned=1>"


# ----- the renderer, without a browser ------------------------------------------------------------------------


def test_plain_undoes_exactly_the_markdown_escaping():
    alphabet = list("ab c1#+-.)(|\\`*_[]~<>&\"'$!:\n\t") + ["&amp;", "&lt;", "**", "1.", "# ", "é"]
    rng = random.Random(0)
    for _ in range(3000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        shown = " ".join(raw.split())
        assert html.plain(escape(raw)) == shown, raw
        assert html.inline(escape(raw)) == std_html.escape(shown), raw


def test_inline_marks_become_tags_and_user_markup_stays_text():
    assert html.inline("**Data**: `a_b` and _vs best_: tfidf_logreg") == (
        "<strong>Data</strong>: <code>a_b</code> and <em>vs best</em>: tfidf_logreg"
    )
    assert html.inline(f"label {escape(EVIL)}") == "label &lt;img src=x onerror=window.pwned=1&gt;"
    links = {"leaderboard.md": "leaderboard.html"}
    assert html.inline("[`c1`](../c1/leaderboard.md)", links) == '<a href="../c1/leaderboard.html"><code>c1</code></a>'
    assert html.inline("[x](javascript:alert(1))") == "[x](javascript:alert(1))"
    assert html.inline("[x](javascript:go)") == "x"  # a scheme other than http(s) is never a link


def test_script_json_cannot_close_a_script_block():
    text = script_json({"t": "</script><!-- & \u2028", "n": float("nan"), "k": [float("inf"), 1.5]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"t": "</script><!-- & \u2028", "n": None, "k": [None, 1.5]}


def test_sort_keys_are_the_cells_first_number():
    assert [html.sort_key(c) for c in ["0.8123 ± 0.01 [0.8, 0.82]", "1,234", "n/a", "-", 3, "<1e-04 (floor)"]] == [
        0.8123, 1234.0, None, None, 3.0, 1e-4,
    ]


def test_a_page_renders_every_section_of_the_markdown(tmp_path):
    doc = [
        Section(f"Leaderboard: {escape(EVIL)}", [Paragraph("intro")], level=1),
        Section("Numbers", [Table(["model", "ms"], [["m", "1.5"]], groups=["", "cost"], marks=["best"])]),
        Section("Plot", [Figure("plots/x.png", "X")]),
    ]
    page = html.render(doc, images={"plots/x.png": b"\x89PNG"})
    assert f'content="{html.CSP}"' in page and "<title>Leaderboard: &lt;img" in page
    assert '<tr class="mark-best">' in page and 'data-group="cost"' in page and 'data-v="1.5"' in page
    assert 'src="data:image/png;base64,iVBORw=="' in page
    assert EVIL not in page


def test_without_plotly_the_page_is_skipped_in_one_log_line(report_dir, monkeypatch, caplog):
    def missing():
        raise ImportError("No module named 'plotly'")

    monkeypatch.setattr(html, "plotly_js", missing)
    spec, _ = load_benchmark(BENCHMARK, FIXTURES / "benchmarks")
    from harness.report.board import Leaderboard

    board = Leaderboard.from_store(ResultsStore(report_dir.parent), spec, None)
    logger = logging.getLogger("harness")
    logger.addHandler(caplog.handler)
    try:
        files = publish.report_files(board)
    finally:
        logger.removeHandler(caplog.handler)
    assert publish.PAGE_FILE not in files.texts and publish.PAGE_FILE in files.absent
    assert [r.message for r in caplog.records if "leaderboard.html" in r.message] == [
        "leaderboard.html not written: No module named 'plotly' (pip install plotly)"
    ]


def test_open_prints_the_path_when_there_is_no_browser(tmp_path, monkeypatch, capsys):
    import webbrowser

    page = tmp_path / "leaderboard.html"
    page.write_text("<!doctype html>")
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda uri: opened.append(uri) or False)
    assert open_page(page) is False
    assert opened == [page.resolve().as_uri()] and f"open {page} in a browser" in capsys.readouterr().out
    monkeypatch.setattr(webbrowser, "open", lambda uri: True)
    assert open_page(page) is True and capsys.readouterr().out == ""


# ----- stores to report ---------------------------------------------------------------------------------------


def _report(results: Path, benchmarks: Path, name: str) -> Path:
    code = main(["report", "--benchmark", name, "--benchmarks-dir", str(benchmarks), "--results-dir", str(results),
                 "--quiet"])
    assert code == 0
    return results / name


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """The fixture store (TF-IDF, 2 seeds, a transfer matrix) plus a second model, 'rival', wrong on every third
    example and faster at batch 1; reported by the CLI."""
    results = tmp_path_factory.mktemp("page") / "results"
    shutil.copytree(FIXTURES / "store", results)
    spec, _ = load_benchmark(BENCHMARK, FIXTURES / "benchmarks")
    store = ResultsStore(results)
    config = store.configurations(BENCHMARK)[0]
    first = next(store.config_dir(BENCHMARK, config.label).glob("runs/tfidf-logreg/seed-42"))
    preds = pd.read_csv(first / "predictions.csv")
    labels = preds["label"].to_numpy()
    wrong = np.where(np.arange(len(labels)) % 3 == 0, (labels + 1) % 3, labels)
    probs = np.full((len(labels), 3), 0.1)
    probs[np.arange(len(labels)), wrong] = 0.8
    synthetic.write_run(store, spec, config, "rival", 42, labels, probs, {"lang": preds["group_lang"].to_numpy()},
                        latency=0.05, family="tfidf")
    return _report(results, FIXTURES / "benchmarks", BENCHMARK)


@pytest.fixture(scope="module")
def evil_dir(tmp_path_factory) -> Path:
    """A benchmark whose label, text and description carry markup, with two models, reported by the CLI."""
    root = tmp_path_factory.mktemp("evil")
    benchmarks = root / "benchmarks"
    benchmarks.mkdir()
    yaml = (FIXTURES / "benchmarks" / f"{BENCHMARK}.yaml").read_text()
    yaml = yaml.replace(f"name: {BENCHMARK}", "name: evil").replace(
        "label_names: [negative, neutral, positive]", f"label_names: [negative, '{EVIL}', positive]"
    ).replace("description: hand-written tweets", "description: <script>window.pwned=3</script> tweets")
    (benchmarks / "evil.yaml").write_text(yaml)
    spec, _ = load_benchmark("evil", benchmarks)
    store = ResultsStore(root / "results")
    config = synthetic.configuration(spec)
    labels = np.arange(12) % 3
    for model, shift in (("tfidf-a", 0), ("tfidf-b", 1)):
        probs = np.full((12, 3), 0.1)
        probs[np.arange(12), (labels + (np.arange(12) < 4) * shift) % 3] = 0.8
        synthetic.write_run(store, spec, config, model, 42, labels, probs)
    texts = [f"text {i} </script><script>window.pwned=2</script> {EVIL}" for i in range(12)]
    store.write_eval_texts(spec.name, config.label, np.arange(12), texts)
    return _report(root / "results", benchmarks, "evil")


def test_the_page_is_written_beside_every_leaderboard(report_dir):
    config_dir = next((report_dir / "configs").iterdir())
    top, inner = (report_dir / "leaderboard.html").read_text(), (config_dir / "leaderboard.html").read_text()
    assert top == inner.replace('href="../', 'href="configs/')
    md = (report_dir / "leaderboard.md").read_text()
    for title in (line[3:] for line in md.splitlines() if line.startswith("## ")):
        assert f">{html.inline(title)}</h2>" in top  # the same sections, not a second report
    markup = top.split('<script type="application/json"', 1)[0]
    assert not re.search(r"(?:src|href)=\"?(?:https?:)?//|url\(", markup)  # the markup names no remote source
    assert len(top.encode()) < 8 * 2**20


# ----- in the browser -----------------------------------------------------------------------------------------


def _chromium() -> tuple[str, str] | None:
    browser = next((p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).is_file()), None
    )
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def driver():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    found = _chromium()
    if found is None:
        pytest.skip("no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    chrome = webdriver.Chrome(service=Service(found[1]), options=options)
    chrome.set_page_load_timeout(120)
    yield chrome
    chrome.quit()


def _open(driver, page: Path):
    driver.get(page.resolve().as_uri())
    driver.get_log("browser")  # nothing from an earlier page counts
    driver.refresh()
    return driver


def test_opening_from_disk_requests_nothing_and_logs_no_error(driver, report_dir):
    page = report_dir / "leaderboard.html"
    driver.get_log("performance")
    _open(driver, page)
    messages = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(("file://", "data:")) for u in urls), urls
    driver.execute_script("window.drawAllCharts()")  # charts are drawn as they come near the screen
    assert driver.execute_script("return document.querySelectorAll('.js-plotly-plot').length") >= 8
    assert driver.get_log("browser") == []
    messages = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"]
    assert all(u.startswith(("file://", "data:")) for u in urls), urls


def _column(driver, table, header: str) -> list[str]:
    heads = [th.text for th in table.find_elements("css selector", "thead th")]
    k = heads.index(header)
    return [tr.find_elements("css selector", "td")[k].text for tr in table.find_elements("css selector", "tbody tr")]


def test_clicking_the_latency_header_orders_rows_by_latency(driver, report_dir):
    _open(driver, report_dir / "leaderboard.html")
    table = driver.find_element("id", "table-1")
    assert _column(driver, table, "model")[0].startswith("tfidf-logreg")  # ranked by macro-F1
    table.find_element("xpath", ".//th[normalize-space()='p50 ms (b=1)']").click()
    latency = [float(v.split()[0]) for v in _column(driver, table, "p50 ms (b=1)")]
    assert latency == sorted(latency) and _column(driver, table, "model")[0].startswith("rival")
    table.find_element("xpath", ".//th[normalize-space()='p50 ms (b=1)']").click()
    assert [float(v.split()[0]) for v in _column(driver, table, "p50 ms (b=1)")] == sorted(latency, reverse=True)


def test_hiding_a_column_group_hides_its_columns(driver, report_dir):
    _open(driver, report_dir / "leaderboard.html")
    cost = driver.find_elements("css selector", "#table-1 [data-group='cost']")
    quality = driver.find_elements("css selector", "#table-1 [data-group='quality']")
    assert cost and all(c.is_displayed() for c in cost[:3])
    driver.find_element("id", "group-cost").click()
    assert not any(c.is_displayed() for c in cost) and all(q.is_displayed() for q in quality[:3])
    driver.find_element("id", "group-cost").click()
    assert all(c.is_displayed() for c in cost[:3])


def test_the_error_browser_counts_a_right_b_wrong_from_the_predictions(driver, report_dir):
    from selenium.webdriver.support.ui import Select

    config_dir = next((report_dir / "configs").iterdir())
    first = {m: pd.read_csv(config_dir / "runs" / m / "seed-42" / "predictions.csv") for m in ("tfidf-logreg", "rival")}
    truth = first["rival"]["label"].to_numpy()
    pred = {m: f[[f"prob_{k}" for k in range(3)]].to_numpy().argmax(axis=1) for m, f in first.items()}
    _open(driver, report_dir / "leaderboard.html")
    count = driver.find_element("id", "eb-count")
    assert count.get_attribute("data-count") == str(len(truth))
    models = [o.text for o in Select(driver.find_element("id", "eb-a")).options]
    for k, name in enumerate(["negative", "neutral", "positive"]):
        expected = int(((truth == k) & (pred["tfidf-logreg"] == truth) & (pred["rival"] != truth)).sum())
        Select(driver.find_element("id", "eb-true")).select_by_visible_text(name)
        Select(driver.find_element("id", "eb-a")).select_by_index(models.index("tfidf-logreg"))
        Select(driver.find_element("id", "eb-b")).select_by_index(models.index("rival"))
        assert count.get_attribute("data-count") == str(expected) and expected > 0
        rows = driver.find_elements("css selector", "#eb-table tbody tr")
        assert len(rows) == expected and all(r.find_elements("css selector", "td")[1].text == name for r in rows)
    driver.find_element("id", "eb-search").send_keys("zzz-no-such-text")
    assert count.get_attribute("data-count") == "0"


def test_a_label_with_markup_stays_text(driver, evil_dir):
    page = evil_dir / "leaderboard.html"
    assert EVIL not in page.read_text() and "</script><script>window.pwned" not in page.read_text()
    _open(driver, page)
    assert driver.execute_script("return window.pwned") is None
    assert driver.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    body = driver.find_element("tag name", "body").text
    assert f"F1 {EVIL}" in body and "<script>window.pwned=3</script> tweets" in body
    assert driver.get_log("browser") == []
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "eb-true")).select_by_visible_text(EVIL)
    assert driver.find_element("id", "eb-count").get_attribute("data-count") == "4"
    assert EVIL in driver.find_element("id", "eb-table").text


def test_a_screenshot_of_the_page_is_not_blank(driver, report_dir, tmp_path):
    from PIL import Image

    _open(driver, report_dir / "leaderboard.html")
    shot = tmp_path / "leaderboard.png"  # kept under pytest's tmp dir as the test's artifact
    assert driver.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape[0] > 500 and pixels.std() > 20


@pytest.fixture(scope="module")
def variant_dir(tmp_path_factory) -> Path:
    """The fixture store with an int8 deployment variant measured beside the first TF-IDF seed, reported."""
    results = tmp_path_factory.mktemp("variant") / "results"
    shutil.copytree(FIXTURES / "store", results)
    store = ResultsStore(results)
    config = store.configurations(BENCHMARK)[0]
    path = next(store.config_dir(BENCHMARK, config.label).glob("runs/tfidf-logreg/seed-42")) / "result.json"
    result = json.loads(path.read_text())
    latency = {"p50_ms": 0.25, "p90_ms": 0.3, "p95_ms": 0.31, "p99_ms": 0.4, "mean_ms": 0.26, "std_ms": 0.02,
               "min_ms": 0.2, "max_ms": 0.5, "repetitions": 20, "warmup": 2}
    result["deployment_variants"] = {"onnx-int8": {
        "status": "completed", "runtime": "onnxruntime int8", "file": "model-int8.onnx", "size_on_disk_bytes": 1000,
        "accuracy": 0.5, "f1_macro": 0.45, "agreement_with_pytorch": 0.9, "max_probability_difference": 0.1,
        "paired_test": {"b": 3, "c": 1, "statistic": 1.0, "p_value": 0.625, "method": "exact"},
        "inference": {"eval_examples": 12, "eval_seconds": 0.01, "throughput_samples_per_s": 1234.0,
                      "throughput_warmup_examples": 0, "eval_batch_size": 64, "latency_batch1_end_to_end": latency},
    }}
    path.write_text(json.dumps(result))
    return _report(results, FIXTURES / "benchmarks", BENCHMARK)


def test_a_deployment_variant_is_drawn_linked_to_its_model(driver, variant_dir):
    _open(driver, variant_dir / "leaderboard.html")
    driver.execute_script("window.drawAllCharts()")
    assert driver.get_log("browser") == []
    traces = driver.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('.js-plotly-plot'), function (d) {"
        "  return d.data.filter(function (t) { return t.name === 'deployment variants' || t.name === 'variant of'; })"
        "    .map(function (t) { return {name: t.name, x: t.x, y: t.y, text: t.text}; }); })"
        ".filter(function (found) { return found.length; })")
    assert len(traces) == 2  # the latency and the throughput charts; training time has no variant point
    points = {tuple(t["x"]) for chart in traces for t in chart if t["name"] == "deployment variants"}
    assert points == {(0.25,), (1234.0,)}
    for chart in traces:
        line = next(t for t in chart if t["name"] == "variant of")
        assert line["x"][1] in (0.25, 1234.0) and line["x"][2] is None and line["y"][1] == 0.45
