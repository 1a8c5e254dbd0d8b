#!/usr/bin/env python
"""Runs that share a machine: is a grid run side by side no slower than the same grid run one after another?

Times one grid (models x seeds on a train sample) four ways, each into a fresh results folder:

1. one command, its runs one after another;
2. one command with ``--parallel N`` (each run gets its share of the cores: usable cores // N threads);
3. two commands on one store, one after another (the second finds the grid done);
4. two commands on one store at the same time (they split the grid: each leaves the other's runs to it).

and prints the wall times and the ratios 2/1 and 4/3 (the target: at most ``--target``, 1.1 by default), with
each run's thread share and any contention note its result recorded. Each of 1, 2 and 3 uses a fresh cache
folder, so every one pays the same tokenising and precision probes; the two commands of 4 share one, as two
commands on one machine do. Run it on a quiet machine (the load average is printed before each step):

    python benchmarks/shared_machine.py --data-dir ../shared/data/amazon_polarity

(minilm-l6 x 2 seeds on 500 train rows; ``--models tfidf-logreg`` is a smoke test of the script in seconds).
Exit code 0 when both ratios meet the target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "amazon_polarity"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="minilm-l6")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--benchmark", default="amazon_polarity")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit-train", type=int, default=500)
    parser.add_argument("--limit-test", type=int, default=500)
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--target", type=float, default=1.1, help="the largest ratio that passes")
    parser.add_argument("--work", type=Path, default=None, help="where the stores go (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not (args.data_dir / "train.csv").exists():
        parser.error(f"--data-dir {args.data_dir}: no train.csv there (the real data lives in ../shared/data)")
    return args


def command(args: argparse.Namespace, results: Path, *extra: str) -> list[str]:
    return [
        sys.executable, str(ROOT / "run_benchmark.py"), "--models", args.models, "--benchmark", args.benchmark,
        "--data-dir", str(args.data_dir), "--seeds", str(args.seeds), "--limit-train", str(args.limit_train),
        "--limit-test", str(args.limit_test), "--latency-samples", str(args.latency_samples),
        "--results-dir", str(results), "--no-save-model", "--yes", "--quiet", *extra,
    ]


def start(args: argparse.Namespace, results: Path, cache: Path, log: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TEXTCLF_BENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    handle = open(log, "w")  # noqa: SIM115 - the process holds it; closed when the process is waited for
    return subprocess.Popen(command(args, results, *extra), stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
                            env=env)


def wait_all(processes: list[subprocess.Popen], logs: list[Path]) -> None:
    for process, log in zip(processes, logs, strict=True):
        if process.wait() != 0:
            sys.exit(f"a command failed (exit {process.returncode}); its output:\n{log.read_text()}")


def timed(label: str, steps: list[list[tuple]]) -> float:
    """Wall seconds of ``steps``: each step a list of commands started together, the steps one after another."""
    print(f"{label}: load average before {os.getloadavg()[0]:.2f}", flush=True)
    begin = time.perf_counter()
    for together in steps:
        processes = [start(*spec) for spec in together]
        wait_all(processes, [spec[3] for spec in together])
    return time.perf_counter() - begin


def runs_said(results: Path) -> list[str]:
    """Each stored run's thread share and what its result says of the machine, one line each."""
    lines = []
    for path in sorted(results.glob("*/configs/*/runs/*/seed-*/result.json")):
        result = json.loads(path.read_text())
        share = (result.get("device") or {}).get("thread_share") or {}
        load = result.get("load") or {}
        busy = sorted({w["busy"] for w in (load.get("windows") or {}).values() if w.get("busy")})
        others = [f"pid {o['pid']}" for o in load.get("others") or []]
        lines.append(f"    {result['model']} seed {result['seed']}: {result['status']}, "
                     f"{(result.get('training') or {}).get('train_seconds', 0.0):.1f} s training, "
                     f"{share.get('threads', '?')} thread(s) ({share.get('given_by', '?')})"
                     + (f", {'/'.join(map(str, share['beside_other_commands']))} beside the other command"
                        if share.get("beside_other_commands") else "")
                     + (f"; busy: {', '.join(busy)}" if busy else "")
                     + (f"; beside {', '.join(others)}" if others else ""))
    return lines


def measure(args: argparse.Namespace, work: Path) -> dict[str, float]:
    seconds = {}
    plans = {
        "one command, runs one after another": [[(args, work / "sequential", work / "cache-1", work / "1.log")]],
        f"one command, --parallel {args.parallel}": [[(args, work / "parallel", work / "cache-2", work / "2.log",
                                                        "--parallel", str(args.parallel))]],
        "two commands on one store, one after another": [[(args, work / "two-in-turn", work / "cache-3", work / "3a.log")],
                                                         [(args, work / "two-in-turn", work / "cache-3", work / "3b.log")]],
        "two commands on one store at the same time": [[(args, work / "two-at-once", work / "cache-4", work / "4a.log"),
                                                        (args, work / "two-at-once", work / "cache-4", work / "4b.log")]],
    }
    for label, steps in plans.items():
        seconds[label] = timed(label, steps)
        print(f"  {seconds[label]:.1f} s", flush=True)
        for line in runs_said(steps[0][0][1]):
            print(line)
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"{args.models} x {args.seeds} seeds, {args.limit_train} train / {args.limit_test} test rows of "
          f"{args.data_dir}, usable cores {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="shared-machine-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        s = list(measure(args, work).values())
    ratios = {f"--parallel {args.parallel} / one after another": s[1] / s[0],
              "two commands at once / one after another": s[3] / s[2]}
    print(f"sequential {s[0]:.1f} s, --parallel {args.parallel} {s[1]:.1f} s; "
          f"two commands in turn {s[2]:.1f} s, at once {s[3]:.1f} s")
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}x ({'PASS' if ratio <= args.target else 'FAIL'}, target <= {args.target:.2f}x)")
    return 0 if all(r <= args.target for r in ratios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
