#!/usr/bin/env python
"""What a model costs where it will run: PyTorch, ONNX Runtime fp32 and int8 side by side, in one harness run.

Trains minilm-l6 (the packaged all-MiniLM-L6-v2) once through the harness's own run path, which then evaluates
the benchmark's deployment variants on the same test texts, and prints, from the run's result.json:
accuracy, McNemar's exact p against the run's own PyTorch predictions, batch-1 p50/p95/p99 (end to end and
model-only), evaluation throughput, peak RSS, file size, export and quantization seconds, and the ratios the
deployment issue asks for (int8 batch-1 end-to-end p50 / PyTorch's, int8 throughput / PyTorch's). The load
average before and after is printed too: on a shared machine the figures move with it, the ratios less.

    python benchmarks/deployment_variants.py --data ../shared/data/amazon_polarity --limit-train 2000 --limit-test 2000
    python benchmarks/deployment_variants.py --limit-train 500 --limit-test 500 --epochs 1   # a loaded 2-core CPU
    python benchmarks/deployment_variants.py --interleave <run>/model --calls 100           # the three in turn, per text
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "amazon_polarity")
    parser.add_argument("--benchmark", default="amazon_polarity")
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--limit-train", type=int, default=2000)
    parser.add_argument("--limit-test", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--epochs", type=float, default=None,
                        help="train the quick budget this many epochs instead of its own (a loaded CPU: 1)")
    parser.add_argument("--results-dir", type=Path, default=None, help="default: a fresh temporary folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--interleave", type=Path, default=None, metavar="MODEL_DIR",
                        help="train nothing: batch-1 end-to-end latency of a saved run's model folder, PyTorch and "
                             "both variants called in turn on each text (the same load for all three)")
    parser.add_argument("--calls", type=int, default=100, help="texts timed with --interleave")
    return parser.parse_args(argv)


def figures(result: dict) -> dict:
    """One row per variant, PyTorch first, from a run's result.json."""
    inference, memory = result["inference"], result["memory"]["inference"]
    rows = {"pytorch": {
        "status": "completed", "runtime": f"torch {result['model_settings'].get('precision') or result.get('precision')}",
        "accuracy": result["metrics"]["accuracy"], "f1_macro": result["metrics"]["f1_macro"], "p_value": None,
        "e2e": inference["latency_batch1_end_to_end"], "model_only": inference["latency_batch1_model_only"],
        "throughput": inference["throughput_samples_per_s"], "rss_peak_bytes": memory["rss_peak_bytes"],
        "bytes": result["model_info"].get("size_on_disk_bytes"),
    }}
    for name, v in result.get("deployment_variants", {}).items():
        if v["status"] != "completed":
            rows[name] = {"status": v["status"], "reason": v.get("reason")}
            continue
        rows[name] = {
            "status": "completed", "runtime": v["runtime"], "accuracy": v["accuracy"], "f1_macro": v["f1_macro"],
            "p_value": v["paired_test"]["p_value"], "b": v["paired_test"]["b"], "c": v["paired_test"]["c"],
            "agreement": v["agreement_with_pytorch"], "max_prob_diff": v["max_probability_difference"],
            "e2e": v["inference"]["latency_batch1_end_to_end"], "model_only": v["inference"]["latency_batch1_model_only"],
            "throughput": v["inference"]["throughput_samples_per_s"], "rss_peak_bytes": v["memory"]["rss_peak_bytes"],
            "bytes": v["size_on_disk_bytes"], "export_seconds": v["export_seconds"],
            "quantize_seconds": v.get("quantize_seconds"),
        }
    base = rows["pytorch"]
    for row in rows.values():
        if row["status"] == "completed":
            row["p50_ratio"] = row["e2e"]["p50_ms"] / base["e2e"]["p50_ms"]
            row["throughput_ratio"] = row["throughput"] / base["throughput"]
    return rows


def print_table(rows: dict) -> None:
    print("| variant | runtime | accuracy | McNemar p (b/c) | e2e p50 / p95 / p99 ms | model-only p50 ms | "
          "samples/s | p50 vs PyTorch | throughput vs PyTorch | peak RSS MiB | file MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        if r["status"] != "completed":
            print(f"| {name} | {r['status']}: {r.get('reason')} |")
            continue
        e, m = r["e2e"], r["model_only"]
        test = "-" if r["p_value"] is None else f"{r['p_value']:.3g} ({r['b']}/{r['c']})"
        size = f"{r['bytes'] / 2**20:.1f}" if r.get("bytes") else "-"
        print(f"| {name} | {r['runtime']} | {r['accuracy']:.4f} | {test} | {e['p50_ms']:.2f} / {e['p95_ms']:.2f} / "
              f"{e['p99_ms']:.2f} | {m['p50_ms']:.2f} | {r['throughput']:.1f} | {r['p50_ratio']:.2f}x | "
              f"{r['throughput_ratio']:.2f}x | {r['rss_peak_bytes'] / 2**20:.0f} | {size} |")


def interleaved(model_dir: Path, data: Path, calls: int) -> dict:
    """Batch-1 latency of PyTorch, onnx and onnx-int8 from one model folder, the three called in turn per text,
    so a change of the machine's load during the measurement falls on all three alike."""
    import pandas as pd

    from harness.models import load_model
    from harness.models.onnx_variants import OnnxClassifier, default_threads

    frame = pd.read_csv(data / "test.csv")
    texts = (frame["title"].astype(str) + ": " + frame["content"].astype(str)).tolist()[:calls]
    pytorch = load_model(model_dir)
    servers = {"pytorch": pytorch}
    for name in ("onnx", "onnx-int8"):
        servers[name] = OnnxClassifier.load(model_dir, name, threads=default_threads())
    times: dict[str, list[float]] = {name: [] for name in servers}
    for text in texts[:5]:
        for server in servers.values():
            server.predict_proba([text], batch_size=1)
    for text in texts:
        for name, server in servers.items():
            start = time.perf_counter()
            server.predict_proba([text], batch_size=1)
            times[name].append(1000 * (time.perf_counter() - start))
    out = {name: {f"p{q}_ms": float(np.percentile(t, q)) for q in (50, 95, 99)} for name, t in times.items()}
    for name in out:
        out[name]["p50_ratio"] = out[name]["p50_ms"] / out["pytorch"]["p50_ms"]
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.interleave:
        load_before = os.getloadavg()
        out = interleaved(args.interleave, args.data, args.calls)
        print(f"interleaved batch-1 end to end, {args.calls} texts, load average {load_before[0]:.1f} before / "
              f"{os.getloadavg()[0]:.1f} after")
        for name, row in out.items():
            print(f"| {name} | {row['p50_ms']:.2f} / {row['p95_ms']:.2f} / {row['p99_ms']:.2f} | {row['p50_ratio']:.2f}x |")
        return 0
    from harness.cli import main as cli

    results = args.results_dir or Path(tempfile.mkdtemp(prefix="deployment-variants-"))
    extra = []
    if args.epochs is not None:
        # The same benchmark with fewer epochs in its quick budget: a copy of its YAML beside the results.
        import yaml

        definition = yaml.safe_load((ROOT / "benchmarks" / f"{args.benchmark}.yaml").read_text())
        definition["budgets"]["quick"]["epochs"] = args.epochs
        folder = Path(results) / "benchmarks"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{args.benchmark}.yaml").write_text(yaml.safe_dump(definition, sort_keys=False))
        extra = ["--benchmarks-dir", str(folder), "--budget", "quick"]
    load_before = os.getloadavg()
    start = time.perf_counter()
    code = cli(["run", "--benchmark", args.benchmark, "--models", args.model, "--data-dir", str(args.data),
                "--limit-train", str(args.limit_train), "--limit-test", str(args.limit_test),
                "--latency-samples", str(args.latency_samples), "--results-dir", str(results), "--quiet", "--yes",
                "--force", *extra])
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()
    if code != 0:
        return code
    found = sorted(Path(results).glob(f"{args.benchmark}/configs/*/runs/{args.model}/seed-*/result.json"))
    result = json.loads(found[-1].read_text())
    rows = figures(result)
    print(f"{args.model} on {args.benchmark}: {args.limit_train} train rows x {result['budget']['epochs']} epochs, "
          f"{result['metrics']['n']} test rows, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after, "
          f"run {seconds:.0f} s, store {found[-1].parent}")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"load_before": load_before, "load_after": load_after, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
