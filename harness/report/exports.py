"""What leaderboard.csv, leaderboard_models.csv and leaderboard.json hold: the numbers the page shows, typed.

Two kinds of record, both drawn from the :class:`~harness.report.board.Leaderboard` (never recomputed here):

- one per model (``leaderboard_models.csv``, ``leaderboard.json``'s ``models``): the seed means and spreads,
  the 95% interval of every interval-bearing metric exactly as the markdown prints it (the interval of the mean
  over seeds), the paired test against the best row (test, metric, difference, its interval, p), McNemar per
  seed pair, the tie verdict and the row's notes;
- one per model and seed (``leaderboard.csv``, ``leaderboard.json``'s ``rows``): every metric and cost figure
  of the run (:func:`harness.report.records.result_record`), that seed's own interval bounds (the same
  resamples), its McNemar test against the best row's paired seed, and the model's verdict and notes.

``leaderboard.json`` carries :data:`SCHEMA_VERSION`; its JSON Schema is generated from the pydantic models here
(``python -m harness.report.exports > docs/leaderboard.schema.json``), as result.json's is from the store's.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from harness.metrics.columns import column, columns
from harness.report import analysis
from harness.report.board import Leaderboard, ModelRow, tested_column
from harness.report.records import get
from harness.store.results import Configuration

SCHEMA_VERSION = 1
LIST_SEPARATOR = ";"  # a CSV cell holding one value per seed pair


def _interval_columns() -> list[str]:
    """The metrics the page prints with an interval (the table's columns that declare one)."""
    return list(analysis.CI_METRICS)


# ----- the records ------------------------------------------------------------------------------------------


def _finite(value) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _mean_std(values: list) -> tuple[float | None, float | None]:
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return None, None
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None)


def _verdict(row: ModelRow) -> str | None:
    if row.vs_best == "leader":
        return "best"
    return ("tied" if row.vs_best["tied"] else "below") if isinstance(row.vs_best, dict) else None


def _paired_fields(row: ModelRow) -> dict:
    """The paired test against the best row, as the "vs best" cell and the paired-tests table show it."""
    versus = row.vs_best if isinstance(row.vs_best, dict) else None
    boot = versus["paired_bootstrap"] if versus else {}
    tests = versus["mcnemar"] if versus else []
    return {
        "vs_best": _verdict(row),
        "tied": bool(versus["tied"]) if versus else None,
        "vs_best_test": "paired bootstrap" if versus else None,
        "vs_best_metric": versus.get("metric", analysis.RANK_METRIC) if versus else None,
        "vs_best_diff": _finite(boot.get("diff")),
        "vs_best_low": _finite(boot.get("low")),
        "vs_best_high": _finite(boot.get("high")),
        "vs_best_p": _finite(boot.get("p_value")),
        "vs_best_p_floor": _finite(boot.get("p_floor")),
        "vs_best_resamples": boot.get("n_boot"),
        "vs_best_examples": versus["n"] if versus else None,
        "mcnemar": [_mcnemar(t) for t in tests],
    }


def _mcnemar(test: dict) -> dict:
    return {"seed": test["seed"], "leader_seed": test["leader_seed"], "metric": "accuracy", "test": "McNemar",
            "method": test["method"], "b": test["b"], "c": test["c"], "statistic": float(test["statistic"]),
            "p_value": float(test["p_value"])}


def model_record(rank: int, row: ModelRow) -> dict:
    """One model as the page shows it: seed means, intervals of the mean, the test against the best, notes."""
    results = row.results
    record: dict[str, Any] = {
        "rank": rank if row.completed else None,
        "model": row.model,
        "family": (row.completed or row.failed)[0].result.family if (row.completed or row.failed) else None,
        "seeds": [r.result.seed for r in row.completed],
        "identical_seeds": row.identical_seeds,
        "failed_seeds": [r.result.seed for r in row.failed],
    }
    for metric in columns("export"):
        record[metric.name], record[f"{metric.name}_std"] = _mean_std([get(r, "metrics", metric.name) for r in results])
    for name in _interval_columns():
        ci = get(row.stats, "ci", name) or {}
        record[f"{name}_low"], record[f"{name}_high"] = _finite(ci.get("low")), _finite(ci.get("high"))
    record["interval_resamples"] = next((ci.get("n_boot") for ci in (get(row.stats, "ci") or {}).values()), None)
    record["ece"], record["ece_std"] = _mean_std(get(row.stats, "ece") or [])
    record["brier"], record["brier_std"] = _mean_std(get(row.stats, "brier") or [])
    record.update(_paired_fields(row))
    record.update({
        "train_seconds": _mean_std([get(r, "training", "train_seconds") for r in results])[0],
        "latency_p50_ms": _mean_std([get(r, "inference", "latency_batch1_end_to_end", "p50_ms") for r in results])[0],
        "eval_samples_per_s": _mean_std([get(r, "inference", "throughput_samples_per_s") for r in results])[0],
        "peak_rss_train_bytes": max((v for r in results if (v := get(r, "memory", "train", "rss_peak_bytes"))),
                                    default=None),
        "parameters": get(results[0], "model_info", "parameters") if results else None,
        "notes": list(row.prediction_notes),
    })  # fmt: skip
    return record


def model_records(board: Leaderboard) -> list[dict]:
    return [model_record(rank, row) for rank, row in enumerate(board.rows, 1)]


def _seed_extras(row: ModelRow) -> dict[int, dict]:
    """Per seed of a row: its own interval bounds and its McNemar tests against the best row."""
    seeds = get(row.stats, "seeds") or []
    out: dict[int, dict] = {}
    for i, seed in enumerate(seeds):
        extra: dict[str, Any] = {}
        for name in _interval_columns():
            own = (get(row.stats, "ci", name, "per_seed") or [{}] * len(seeds))[i]
            extra[f"{name}_low"], extra[f"{name}_high"] = _finite(own.get("low")), _finite(own.get("high"))
        tests = [t for t in (row.vs_best["mcnemar"] if isinstance(row.vs_best, dict) else []) if t["seed"] == seed]
        extra.update({
            "mcnemar_leader_seed": LIST_SEPARATOR.join(str(t["leader_seed"]) for t in tests) or None,
            "mcnemar_b": LIST_SEPARATOR.join(str(t["b"]) for t in tests) or None,
            "mcnemar_c": LIST_SEPARATOR.join(str(t["c"]) for t in tests) or None,
            "mcnemar_p": LIST_SEPARATOR.join(repr(float(t["p_value"])) for t in tests) or None,
        })  # fmt: skip
        out[seed] = extra
    return out


def seed_frame(board: Leaderboard) -> pd.DataFrame:
    """One row per model and seed: the board's records (``to_pandas``) with each seed's interval bounds, its
    McNemar test against the best row, and the model's verdict and notes."""
    frame = board.to_pandas()
    if frame.empty:
        return frame
    extras, verdicts, notes = {}, {}, {}
    for row in board.rows:
        first_seed = row.completed[0].result.seed if row.completed else None
        per_seed = _seed_extras(row)
        for run in row.completed:
            # Seeds with identical predictions are one run: each shows the first seed's figures.
            extras[(row.model, run.result.seed)] = per_seed.get(run.result.seed) or per_seed.get(first_seed, {})
        verdicts[row.model], notes[row.model] = _verdict(row), "; ".join(row.prediction_notes) or None
    keys = [f"{n}_{b}" for n in _interval_columns() for b in ("low", "high")]
    keys += ["mcnemar_leader_seed", "mcnemar_b", "mcnemar_c", "mcnemar_p"]
    found = [extras.get((m, s), {}) for m, s in zip(frame["model"], frame["seed"], strict=True)]
    for key in keys:
        frame[key] = [f.get(key) for f in found]
    frame["vs_best"] = [verdicts.get(m) for m in frame["model"]]
    frame["notes"] = [notes.get(m) for m in frame["model"]]
    return frame


def models_frame(records: list[dict]) -> pd.DataFrame:
    """The model records as one CSV row each (lists of seeds and of McNemar tests joined by ``;``)."""
    flat = []
    for record in records:
        out = {k: v for k, v in record.items() if k != "mcnemar"}
        for key in ("seeds", "failed_seeds"):
            out[key] = LIST_SEPARATOR.join(map(str, record[key]))
        out["notes"] = "; ".join(record["notes"]) or None
        tests = record["mcnemar"]
        for key, name in (("leader_seed", "leader_seed"), ("b", "b"), ("c", "c"), ("p_value", "p")):
            out[f"mcnemar_{name}"] = LIST_SEPARATOR.join(repr(t[key]) for t in tests) or None
        flat.append(out)
    return pd.DataFrame.from_records(flat)


def tests_explained(board: Leaderboard) -> dict:
    """Which test each p of the exports comes from (the page's "Tests" line)."""
    tested = tested_column(board.main).name
    return {
        "interval": "95% percentile bootstrap over test examples of the mean over seeds (every seed kept on each "
        "resample); per seed rows: that seed's own interval from the same resamples",
        "vs_best": f"paired bootstrap of the mean {tested} against the best row, every seed of both "
        "models on the same resamples; two-sided p",
        "tied": f"vs_best_p >= {analysis.TIE_ALPHA}",
        "mcnemar": "McNemar's exact binomial test of accuracy (which examples each model gets right), per seed pair "
        "(the i-th seed of each model)",
    }


def payload(board: Leaderboard, frame: pd.DataFrame, records: list[dict]) -> dict:
    """leaderboard.json: schema version, benchmark, configuration, the tests, per model and per seed records."""
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": board.spec.name,
        "main_metric": board.spec.main_metric,
        "configuration": board.configuration.model_dump(mode="json"),
        "tests": tests_explained(board),
        "tie_alpha": analysis.TIE_ALPHA,
        "resamples": board.n_boot,
        "models": json.loads(json.dumps(records, allow_nan=False, default=_json_default)),
        "rows": json.loads(frame.to_json(orient="records")),
    }


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


# ----- the schema -------------------------------------------------------------------------------------------


class McNemarTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int
    leader_seed: int = Field(description="the best row's seed it is paired with")
    metric: Literal["accuracy"]
    test: Literal["McNemar"]
    method: Literal["exact", "chi2"]
    b: int = Field(description="this model right, the best wrong")
    c: int = Field(description="this model wrong, the best right")
    statistic: float
    p_value: float


Number = float | None


def _model_fields() -> dict:
    fields: dict[str, Any] = {}
    for metric in columns("export"):
        fields[metric.name] = (Number, Field(None, description=f"mean over seeds: {metric.description}"))
        fields[f"{metric.name}_std"] = (Number, Field(None, description="sample std over seeds (null: one seed)"))
    for name in _interval_columns():
        label = column(name).label
        fields[f"{name}_low"] = (Number, Field(None, description=f"95% interval of the mean {label}: lower bound"))
        fields[f"{name}_high"] = (Number, Field(None, description=f"95% interval of the mean {label}: upper bound"))
    return fields


ModelExport = create_model(
    "ModelExport",
    __config__=ConfigDict(extra="forbid"),
    rank=(int | None, ...),
    model=(str, ...),
    family=(str | None, ...),
    seeds=(list[int], Field(description="the completed seeds (identical_seeds: they count as one run)")),
    identical_seeds=(bool, ...),
    failed_seeds=(list[int], ...),
    **_model_fields(),
    interval_resamples=(int | None, None),
    ece=(Number, None), ece_std=(Number, None), brier=(Number, None), brier_std=(Number, None),
    vs_best=(Literal["best", "tied", "below"] | None, Field(None, description="the paired test's verdict")),
    tied=(bool | None, None),
    vs_best_test=(Literal["paired bootstrap"] | None, None),
    vs_best_metric=(str | None, None),
    vs_best_diff=(Number, Field(None, description="this model minus the best row, mean over seeds")),
    vs_best_low=(Number, None), vs_best_high=(Number, None),
    vs_best_p=(Number, Field(None, description="two-sided p of the paired bootstrap")),
    vs_best_p_floor=(Number, Field(None, description="the smallest p the resamples can show")),
    vs_best_resamples=(int | None, None), vs_best_examples=(int | None, None),
    mcnemar=(list[McNemarTest], ...),
    train_seconds=(Number, None), latency_p50_ms=(Number, None), eval_samples_per_s=(Number, None),
    peak_rss_train_bytes=(int | None, None), parameters=(int | None, None),
    notes=(list[str], Field(description="degenerate predictions: classes never predicted, no better than chance")),
)  # fmt: skip


class SeedExport(BaseModel):
    """One model and seed; every metric and cost column of leaderboard.csv (per-class and variant columns vary)."""

    model_config = ConfigDict(extra="allow")

    rank: int | None
    model: str
    seed: int
    status: str
    vs_best: Literal["best", "tied", "below"] | None = None
    notes: str | None = None


class LeaderboardExport(BaseModel):
    """leaderboard.json."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    benchmark: str
    main_metric: str
    configuration: Configuration
    tests: dict[str, str] = Field(description="which test each p and interval comes from")
    tie_alpha: float
    resamples: int
    models: list[ModelExport]  # type: ignore[valid-type]
    rows: list[SeedExport]


def json_schema() -> dict:
    """The JSON Schema of ``leaderboard.json`` (also written to docs/leaderboard.schema.json)."""
    return LeaderboardExport.model_json_schema()


if __name__ == "__main__":  # python -m harness.report.exports > docs/leaderboard.schema.json
    print(json.dumps(json_schema(), indent=2))
