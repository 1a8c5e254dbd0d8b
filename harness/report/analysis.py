"""What the leaderboard's numbers are made of: per-example predictions read back from the store.

Uncertainty of each model's scores (bootstrap intervals, calibration), paired tests against the leader,
and the error analysis (confident mistakes, error rates by length and group, disagreements) as markdown.
Reads only; report.py writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from harness.core.escape import escape
from harness.metrics import stats
from harness.metrics.columns import columns
from harness.store.results_store import ResultsStore

# Headline metrics with an interval: the catalogue's table columns that declare one, name -> stats function.
CI_METRICS = {column.name: column.interval for column in columns("table") if column.interval is not None}
# The metric the leaderboard ranks by, and so the one the tie test is run on.
RANK_METRIC = "f1_macro"
TIE_ALPHA = 0.05
# Resamples for intervals and paired tests: with 10,000 the smallest p a test can show is about 1e-4.
N_BOOT = 10_000


@dataclass(frozen=True)
class Predictions:
    """One run's per-example predictions, in the order of its predictions.csv."""

    model: str
    seed: int
    ids: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)

    def __len__(self) -> int:
        return len(self.ids)


def read_predictions(run_dir: Path, model: str, seed: int, num_labels: int) -> Predictions | None:
    """A run's predictions.csv as arrays, or None when the file is missing or has other classes."""
    path = Path(run_dir) / "predictions.csv"
    if not path.exists():
        return None
    frame = ResultsStore.read_predictions(run_dir)
    prob_columns = [f"prob_{k}" for k in range(num_labels)]
    if any(c not in frame.columns for c in prob_columns):
        return None
    groups = {
        c.removeprefix("group_"): frame[c].astype(str).to_numpy()
        for c in frame.columns
        if c.startswith("group_")
    }
    return Predictions(
        model=model,
        seed=int(seed),
        ids=frame["id"].to_numpy(dtype=np.int64),
        labels=frame["label"].to_numpy(dtype=np.int64),
        probs=frame[prob_columns].to_numpy(dtype=np.float64),
        groups=groups,
    )


def load_model_predictions(runs: list, num_labels: int) -> list[Predictions]:
    """Predictions of a model's completed runs (``StoredRun``), lowest seed first, all on the same examples.

    Seeds scored on other examples than the first seed (a store edited by hand) are left out, so every
    statistic over seeds compares like with like.
    """
    out: list[Predictions] = []
    for run in sorted(runs, key=lambda r: r.result.seed):
        if not run.result.completed:
            continue
        preds = read_predictions(run.run_dir, run.result.model, run.result.seed, num_labels)
        if preds is None:
            continue
        if out and not np.array_equal(out[0].ids, preds.ids):
            continue
        out.append(preds)
    return out


def identical_predictions(runs: list[Predictions]) -> bool:
    """True when several seeds gave exactly the same probabilities (a deterministic model)."""
    return len(runs) > 1 and all(np.array_equal(runs[0].probs, r.probs) for r in runs[1:])


def aligned(a: Predictions, b: Predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of ``a`` and ``b`` for the examples both scored, in the same order, and the ids."""
    common, ia, ib = np.intersect1d(a.ids, b.ids, assume_unique=True, return_indices=True)
    return ia, ib, common


# --------------------------------------------------------------------------------------------------
# Uncertainty, calibration and the tie test
# --------------------------------------------------------------------------------------------------


def model_statistics(runs: list[Predictions], n_boot: int = N_BOOT, n_bins: int = 15) -> dict:
    """Intervals of the mean over seeds (resampling test examples), and ECE / Brier of every seed.

    Returns:
        ``{"seeds", "n", "ci": {metric: {"point", "low", "high", "n_boot", "seeds"}}, "ece": [per seed],
        "brier": [per seed]}``.
    """
    first = runs[0]
    ci = stats.seed_mean_bootstrap_cis(first.labels, [r.probs for r in runs], CI_METRICS, n_boot=n_boot, seed=0)
    return {
        "seeds": [r.seed for r in runs],
        "n": len(first),
        "ci": ci,
        "ece": [stats.expected_calibration_error(r.labels, r.probs, n_bins) for r in runs],
        "brier": [stats.brier_score(r.labels, r.probs) for r in runs],
    }


def compare_to_leader(leader: list[Predictions], other: list[Predictions], n_boot: int = N_BOOT) -> dict | None:
    """Paired bootstrap of the ranking metric over every seed, and McNemar's exact test per seed pair.

    Only the examples both models scored are compared. ``tied`` is true when the paired bootstrap of the
    difference of seed means cannot tell them apart at the 5% level (p >= 0.05). McNemar pairs the i-th seed
    of each model (as many pairs as the smaller seed count) and reports each pair's exact p; a model with one
    seed is paired with every seed of the other. None when they share no example.
    """
    ia, ib, common = aligned(leader[0], other[0])
    if len(common) == 0:
        return None
    labels = leader[0].labels[ia]
    paired = stats.paired_seed_mean_bootstrap(
        labels, [r.probs[ib] for r in other], [r.probs[ia] for r in leader], CI_METRICS[RANK_METRIC], n_boot=n_boot, seed=0
    )
    pairs = list(zip(other, leader, strict=False)) if min(len(other), len(leader)) > 1 else [
        (o, ld) for o in other for ld in leader
    ]
    tests = [
        {"seed": o.seed, "leader_seed": ld.seed, **stats.mcnemar(labels, o.predicted[ib], ld.predicted[ia], exact_below=10**9)}
        for o, ld in pairs
    ]
    p = paired["p_value"]
    return {
        "n": int(len(common)),
        "paired_bootstrap": paired,
        "mcnemar": tests,
        "tied": bool(math.isfinite(p) and p >= TIE_ALPHA),
    }


# --------------------------------------------------------------------------------------------------
# Error analysis (markdown)
# --------------------------------------------------------------------------------------------------


def _cell_text(text: str, limit: int = 240) -> str:
    return escape(text, limit)


def _pct(errors: int, n: int) -> str:
    return "n/a" if n == 0 else f"{100 * errors / n:.1f}% ({n})"


def confident_mistakes(preds: Predictions, texts: dict[int, str], label_names: list[str], k: int = 10) -> str:
    """The ``k`` wrong predictions with the highest confidence, as a markdown table."""
    wrong = np.flatnonzero(preds.predicted != preds.labels)
    if len(wrong) == 0:
        return "No mistakes."
    order = wrong[np.argsort(-preds.confidence[wrong], kind="stable")][:k]
    rows = [
        [
            int(preds.ids[i]),
            escape(label_names[preds.labels[i]]),
            escape(label_names[preds.predicted[i]]),
            f"{preds.confidence[i]:.3f}",
            _cell_text(texts.get(int(preds.ids[i]), "(text not in the store)")),
        ]
        for i in order
    ]
    return tabulate(
        rows,
        headers=["id", "true", "predicted", "confidence", "text"],
        tablefmt="github",
        disable_numparse=True,
    )


def length_buckets(word_counts: np.ndarray, n_buckets: int = 5) -> tuple[np.ndarray, list[str]]:
    """Quantile buckets of input length in words: bucket index per example and a label per bucket."""
    edges = np.unique(np.quantile(word_counts, np.linspace(0, 1, n_buckets + 1)).round().astype(int))
    if len(edges) < 2:
        return np.zeros(len(word_counts), dtype=int), [f"{edges[0]} words"]
    bucket = np.clip(np.searchsorted(edges, word_counts, side="right") - 1, 0, len(edges) - 2)
    # Buckets are [edge_i, edge_{i+1}), the last one closed on the right.
    labels = [
        f"{edges[i]}–{edges[i + 1] - 1 if i < len(edges) - 2 else edges[i + 1]} words"
        for i in range(len(edges) - 1)
    ]
    return bucket, labels


def error_rate_table(
    first: dict[str, Predictions], keys: dict[str, dict[int, str]], key_order: list[str]
) -> str:
    """Error rate (and count) per model for each value of a per-example key (length bucket, group)."""
    header = ["", *first]
    per_example = {
        name: np.array([keys[name].get(int(i), "") for i in preds.ids], dtype=object)
        for name, preds in first.items()
    }
    rows = []
    for value in key_order:
        row = [escape(value)]
        for name, preds in first.items():
            mask = per_example[name] == value
            row.append(_pct(int((preds.predicted[mask] != preds.labels[mask]).sum()), int(mask.sum())))
        rows.append(row)
    return tabulate(rows, headers=header, tablefmt="github", disable_numparse=True)


def disagreements(
    first: dict[str, Predictions], texts: dict[int, str], label_names: list[str], k: int = 10
) -> str:
    """Pairwise agreement and the examples on which the models' predictions differ most."""
    models = list(first)
    common = first[models[0]].ids
    for preds in first.values():
        common = np.intersect1d(common, preds.ids)
    if len(common) == 0:
        return "The models share no evaluation example."
    pred = {}
    p_true = {}
    labels = None
    for name, preds in first.items():
        index = pd.Series(np.arange(len(preds)), index=preds.ids).loc[common].to_numpy()
        pred[name] = preds.predicted[index]
        labels = preds.labels[index]
        p_true[name] = preds.probs[index, labels]
    stacked = np.stack([pred[m] for m in models])
    differ = (stacked != stacked[0]).any(axis=0)
    all_wrong = (stacked != labels).all(axis=0)
    lines = [
        f"On the {len(common):,} examples every model scored: the models disagree on {int(differ.sum()):,} "
        f"({100 * differ.mean():.1f}%); all of them are wrong on {int(all_wrong.sum()):,} ({100 * all_wrong.mean():.1f}%).",
        "",
        "Agreement between models (fraction of examples with the same predicted label):",
        "",
    ]
    agree = [[a, *(f"{(pred[a] == pred[b]).mean():.3f}" for b in models)] for a in models]
    lines.append(tabulate(agree, headers=["", *models], tablefmt="github", disable_numparse=True))
    if differ.any():
        # Most informative first: where the models' belief in the true label is furthest apart.
        spread = np.stack([p_true[m] for m in models]).std(axis=0)
        chosen = np.flatnonzero(differ)
        chosen = chosen[np.argsort(-spread[chosen], kind="stable")][:k]
        rows = [
            [
                int(common[i]),
                escape(label_names[labels[i]]),
                *(f"{escape(label_names[pred[m][i]])} (P(true)={p_true[m][i]:.2f})" for m in models),
                _cell_text(texts.get(int(common[i]), "(text not in the store)"), 200),
            ]
            for i in chosen
        ]
        lines += [
            "",
            f"The {len(rows)} disagreements where the models' probability of the true label differs most:",
            "",
            tabulate(rows, headers=["id", "true", *models, "text"], tablefmt="github", disable_numparse=True),
        ]
    return "\n".join(lines)


def error_report(
    first: dict[str, Predictions], texts: pd.DataFrame | None, label_names: list[str], title: str, k: int = 10
) -> str:
    """The whole errors.md: confident mistakes, error rate by length and by group, disagreements.

    Args:
        first: each model's first-seed predictions, in leaderboard order.
        texts: the store's ``id,text`` table, or None (the text columns then say so).
        label_names: class names in index order.
        title: the benchmark's name, for the heading.
        k: rows per example table.
    """
    text_of = (
        {} if texts is None else dict(zip(texts["id"].astype(int), texts["text"].astype(str), strict=True))
    )
    lines = [
        f"# Error analysis: {title}",
        "",
        "Each model's first seed, on its evaluation predictions (ids are rows of the evaluation split file). "
        "Rebuilt from the results store with the leaderboard.",
    ]
    if not first:
        return "\n".join([*lines, "", "No completed run with predictions yet."]) + "\n"
    if texts is None:
        lines += [
            "",
            "_The store holds no eval_texts.csv (it is a copy of the benchmark data, so it is not kept in git; any run of this benchmark writes it again): texts and lengths are missing._",
        ]

    lines += ["", "## Most confident mistakes", ""]
    for name, preds in first.items():
        errors = int((preds.predicted != preds.labels).sum())
        lines += [
            f"### {name} (seed {preds.seed}): {errors:,} errors in {len(preds):,} examples",
            "",
            confident_mistakes(preds, text_of, label_names, k),
            "",
        ]

    if text_of:
        ids = np.array(sorted(text_of))
        words = np.array([len(text_of[i].split()) for i in ids])
        bucket, bucket_labels = length_buckets(words)
        key = {int(i): bucket_labels[b] for i, b in zip(ids, bucket, strict=True)}
        lines += [
            "## Error rate by input length",
            "",
            "Length in whitespace-separated words, in quantile buckets of the evaluation texts; "
            "each cell: error rate (examples).",
            "",
            error_rate_table(first, dict.fromkeys(first, key), bucket_labels),
            "",
        ]

    group_columns = sorted({c for preds in first.values() for c in preds.groups})
    for column in group_columns:
        keys = {
            name: dict(zip(preds.ids.tolist(), preds.groups[column].tolist(), strict=True))
            if column in preds.groups
            else {}
            for name, preds in first.items()
        }
        values = sorted({v for mapping in keys.values() for v in mapping.values()})
        lines += [
            f"## Error rate by {escape(column)}",
            "",
            "Each cell: error rate (examples).",
            "",
            error_rate_table(first, keys, values),
            "",
        ]

    lines += ["## Where the models disagree", ""]
    if len(first) < 2:
        lines.append("Only one model has predictions: nothing to compare yet.")
    else:
        lines.append(disagreements(first, text_of, label_names, k))
    return "\n".join(lines).rstrip() + "\n"
