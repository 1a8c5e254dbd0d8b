#!/usr/bin/env python
"""Kill and resume over the real command line: does a run killed with SIGKILL and restarted end where an
uninterrupted run ends?

The same command runs twice into two results folders. The first time it runs to the end. The second time it
is killed with SIGKILL at random moments (a seeded draw, so the moments are reproducible), restarted after
each kill, and finally left to finish. The two leaderboards' model rows (``leaderboard.csv``) are then compared
with the columns that measure time or memory left out, and so are the per-example predictions of every run.

    python benchmarks/kill_resume.py --data-dir ../shared/data/amazon_polarity

Prints each kill (seconds after the start of that attempt), what each restart skipped, resumed or redid (from
its own output and the transformer's checkpoint), the differences found, and PASS or FAIL (exit code 0 or 1).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Columns that measure the machine rather than the model: they differ between any two runs.
MASKED_PREFIXES = ("train_seconds", "train_samples_per_s", "train_tokens_per_s", "mfu", "latency_", "eval_samples_per_s",
                   "peak_rss_", "cuda_peak_")


def command(args, results: Path) -> list[str]:
    return [
        sys.executable, str(ROOT / "run_benchmark.py"), "--models", args.models, "--benchmark", args.benchmark,
        "--data-dir", str(args.data_dir), "--limit-train", str(args.limit_train), "--limit-test", str(args.limit_test),
        "--latency-samples", str(args.latency_samples), "--results-dir", str(results), "--no-save-model",
    ]


def start(args, results: Path, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")  # noqa: SIM115 - closed by the caller through the process
    # A session of its own: the kill reaches only this command and the model process it started.
    return subprocess.Popen(command(args, results), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True)


def run_lines(log_path: Path) -> list[str]:
    """The lines of an attempt's output that say what happened to each run."""
    keep = ("- ", "  done", "  FAILED", "  stored run not used", "error:", "Traceback")
    return [line.rstrip() for line in log_path.read_text(errors="replace").splitlines() if line.startswith(keep)]


def checkpoint_steps(results: Path) -> dict[str, int]:
    """The optimizer step each transformer checkpoint in the store holds (where a restart resumes)."""
    steps = {}
    for marker in results.glob("*/configs/*/runs/*/seed-*/checkpoint/harness_state.json"):
        try:
            steps[marker.parents[2].name] = json.loads(marker.read_text())["step"]
        except (OSError, ValueError, KeyError):
            steps[marker.parents[2].name] = -1
    return steps


def finished(results: Path) -> list[str]:
    done = []
    for path in sorted(results.glob("*/configs/*/runs/*/seed-*/result.json")):
        try:
            if json.loads(path.read_text()).get("status") == "completed":
                done.append(path.parents[1].name)
        except (OSError, ValueError):
            pass
    return done


def leaderboard_rows(results: Path, benchmark: str) -> tuple[list[str], dict[tuple[str, str], dict[str, str]]]:
    with open(results / benchmark / "leaderboard.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = [c for c in rows[0] if not c.startswith(MASKED_PREFIXES)] if rows else []
    return columns, {(r["model"], r["seed"]): {c: r[c] for c in columns} for r in rows}


def compare(first: Path, second: Path, benchmark: str) -> list[str]:
    problems = []
    columns, a = leaderboard_rows(first, benchmark)
    _, b = leaderboard_rows(second, benchmark)
    if set(a) != set(b):
        problems.append(f"rows differ: {sorted(a)} vs {sorted(b)}")
    for key in sorted(set(a) & set(b)):
        for column in columns:
            if a[key][column] != b[key][column]:
                problems.append(f"{key[0]} seed {key[1]} {column}: {a[key][column]!r} uninterrupted, "
                                f"{b[key][column]!r} killed and resumed")
    for path in sorted(first.glob(f"{benchmark}/configs/*/runs/*/seed-*/predictions.csv")):
        twin = second / path.relative_to(first)
        if not twin.exists():
            problems.append(f"{twin} is missing")
        elif twin.read_bytes() != path.read_bytes():
            problems.append(f"{path.relative_to(first)} differs")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tfidf-logreg,minilm-l6")
    parser.add_argument("--benchmark", default="amazon_polarity")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "amazon_polarity")
    parser.add_argument("--limit-train", type=int, default=500)
    parser.add_argument("--limit-test", type=int, default=500)
    parser.add_argument("--latency-samples", type=int, default=5)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--offset", type=float, default=0.0,
                        help="seconds added to every kill moment: the start-up each attempt pays (process start, "
                        "data, weights) before training, so kills land in training and checkpoints are resumed")
    parser.add_argument("--checkpoint-seconds", type=float, default=5.0,
                        help="a transformer checkpoints this often (TEXTCLF_BENCH_CHECKPOINT_S)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the two stores (default: a temporary one)")
    parser.add_argument("--reuse-uninterrupted", action="store_true",
                        help="keep the uninterrupted run already in --work (its store, log and duration) and redo "
                        "only the killed one")
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()

    work = args.work or Path(tempfile.mkdtemp(prefix="kill-resume-"))
    reuse = args.reuse_uninterrupted and (work / "uninterrupted.seconds").exists()
    if reuse:
        shutil.rmtree(work / "killed", ignore_errors=True)
        shutil.rmtree(work / "cache-killed", ignore_errors=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    os.environ["TEXTCLF_BENCH_CHECKPOINT_S"] = str(args.checkpoint_seconds)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print("command:", " ".join(command(args, Path("<results>"))))
    print(f"TEXTCLF_BENCH_CHECKPOINT_S={args.checkpoint_seconds}, kill seed {args.seed}, work folder {work}")

    # Each store gets its own tokenisation cache, so the killed run cannot lean on the uninterrupted one's.
    os.environ["TEXTCLF_BENCH_CACHE"] = str(work / "cache-uninterrupted")
    if reuse:
        code, full = 0, float((work / "uninterrupted.seconds").read_text())
        print(f"\nuninterrupted: reusing the run already in {work / 'uninterrupted'}")
    else:
        began = time.perf_counter()
        process = start(args, work / "uninterrupted", work / "uninterrupted.log")
        code = process.wait()
        full = time.perf_counter() - began
        if code == 0:
            (work / "uninterrupted.seconds").write_text(f"{full:.1f}")
    print(f"\nuninterrupted: exit {code} in {full:.1f}s")
    for line in run_lines(work / "uninterrupted.log"):
        print("   ", line)
    if code != 0:
        print("FAIL: the uninterrupted run did not succeed")
        return 1

    os.environ["TEXTCLF_BENCH_CACHE"] = str(work / "cache-killed")
    rng = random.Random(args.seed)
    killed = work / "killed"
    # Moments averaging an uninterrupted run's length over the number of kills: together the attempts cover
    # about one whole run (the checkpoints keep their progress), so the kills land all along it, in data
    # loading, TF-IDF, training, checkpointing, prediction and writing, and the proof stays within minutes.
    moments = [round(args.offset + rng.uniform(1.0, 2 * full / args.kills), 1) for _ in range(args.kills)]
    print(f"\nkill moments (seconds after each attempt starts): {moments}")
    for attempt, moment in enumerate([*moments, None], start=1):
        before = (finished(killed), checkpoint_steps(killed))
        log_path = work / f"attempt-{attempt:02d}.log"
        process = start(args, killed, log_path)
        if moment is None:
            code = process.wait()
            outcome = f"left to finish: exit {code}"
        else:
            try:
                code = process.wait(timeout=moment)
                outcome = f"finished before its kill at {moment}s: exit {code}"
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                code = None
                outcome = f"SIGKILL at {moment}s"
        print(f"\nattempt {attempt}: {outcome}; found complete: {before[0] or 'none'}; "
              f"checkpoints: {before[1] or 'none'}")
        for line in run_lines(log_path):
            print("   ", line)
        if moment is None and code != 0:
            print("FAIL: the last attempt did not succeed")
            return 1

    for path in sorted(killed.glob(f"{args.benchmark}/configs/*/runs/*/seed-*/result.json")):
        training = json.loads(path.read_text()).get("training") or {}
        print(f"{path.parents[1].name}: resumed_from_step {training.get('resumed_from_step')}, "
              f"optimizer_steps {training.get('optimizer_steps')}")
    columns, rows = leaderboard_rows(killed, args.benchmark)
    print(f"\ncompared columns ({len(columns)}): {', '.join(columns)}")
    for key, row in sorted(rows.items()):
        print(f"  {key[0]} seed {key[1]}: accuracy {row.get('accuracy')}, f1_macro {row.get('f1_macro')}, "
              f"roc_auc {row.get('roc_auc')}")
    problems = compare(work / "uninterrupted", killed, args.benchmark)
    for problem in problems:
        print("  DIFFERENT:", problem)
    print("PASS: the leaderboard rows and predictions equal the uninterrupted run's" if not problems else "FAIL")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
