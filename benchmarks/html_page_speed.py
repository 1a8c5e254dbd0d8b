#!/usr/bin/env python
"""How fast a large leaderboard page opens and sorts in headless Chromium: 50 models x 3 seeds, synthetic.

Writes a synthetic store (50 models, 3 seeds each, 3 classes, ``--examples`` test examples with texts), builds
its leaderboard.html through ``harness.report.publish`` and, in headless Chromium, times: the page's load (from
navigation start to the end of its own script: Plotly parsed, every chart drawn, the error browser filled), and
a click on the latency header until the 50 rows are reordered. Prints one JSON line; a benchmark, not a test.

    python benchmarks/html_page_speed.py                 # needs chromium and chromedriver (apt: chromium-driver)
    python benchmarks/html_page_speed.py --examples 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def build(root: Path, models: int, seeds: int, examples: int) -> Path:
    from harness.config.registry import load_benchmark
    from harness.report import publish
    from harness.report.board import Leaderboard
    from harness.store.results_store import ResultsStore
    from tests import synthetic

    spec, _ = load_benchmark("tiny_three", ROOT / "tests" / "fixtures" / "benchmarks")
    store = ResultsStore(root)
    config = synthetic.configuration(spec)
    if store.configurations(spec.name):  # kept from an earlier call (--keep): the page alone is rebuilt
        board = Leaderboard.from_store(store, spec, config.label, n_boot=200)
        publish.publish(store, board)
        return root / spec.name / "leaderboard.html"
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, examples)
    for m in range(models):
        skill = 0.4 + 0.5 * m / models
        for seed in range(seeds):
            right = rng.random(examples) < skill
            predicted = np.where(right, labels, (labels + rng.integers(1, 3, examples)) % 3)
            probs = rng.dirichlet(np.ones(3), examples) * 0.4
            probs[np.arange(examples), predicted] += 0.6
            synthetic.write_run(store, spec, config, f"model-{m:02d}", seed, labels, probs,
                                latency=float(rng.uniform(0.2, 50)), memory_mib=float(rng.uniform(50, 4000)))
    store.write_eval_texts(spec.name, config.label, np.arange(examples), [f"example text {i} " * 8 for i in range(examples)])
    board = Leaderboard.from_store(store, spec, config.label, n_boot=200)
    publish.publish(store, board)
    return root / spec.name / "leaderboard.html"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="build the store here and keep it (reused when there)")
    args = parser.parse_args(argv)

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    work = args.keep or Path(tempfile.mkdtemp(prefix="page-speed-"))
    try:
        started = time.perf_counter()
        page = build(work / "results", args.models, args.seeds, args.examples)
        built = time.perf_counter() - started
        options = Options()
        options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
        loads, sorts = [], []
        try:
            for _ in range(args.repeats):
                driver.get(page.resolve().as_uri())
                # The page's script is the last element; its end is when the page is ready to use.
                loads.append(driver.execute_script(
                    "var t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;"))
                sorts.append(driver.execute_script(
                    "var th = Array.from(document.querySelectorAll('#table-1 th'))"
                    ".find(function (h) { return h.textContent.trim() === 'p50 ms (b=1)'; });"
                    "var t = performance.now(); th.click(); document.body.offsetHeight; return performance.now() - t;"))
                rows = driver.execute_script("return document.querySelectorAll('#table-1 tbody tr').length")
                assert rows == args.models, rows
        finally:
            driver.quit()
        print(json.dumps({
            "models": args.models, "seeds": args.seeds, "examples": args.examples,
            "page_mib": round(page.stat().st_size / 2**20, 2), "build_s": round(built, 1),
            "open_ms_median": round(statistics.median(loads), 1), "sort_ms_median": round(statistics.median(sorts), 1),
            "open_plus_sort_ms": round(statistics.median(loads) + statistics.median(sorts), 1),
        }))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
