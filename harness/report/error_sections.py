"""The error analysis (errors.md) as sections: confident mistakes, error rates by length and group, disagreements.

Built from each model's first-seed predictions (:meth:`Leaderboard.first_predictions`) and the stored evaluation
texts; ``harness.report.markdown`` writes them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.core.escape import escape
from harness.report.analysis import Predictions
from harness.report.document import Paragraph, Section, Table

NO_TEXTS = (
    "_The store holds no eval_texts.csv (it is a copy of the benchmark data, so it is not kept in git; any run of "
    "this benchmark writes it again): texts and lengths are missing._"
)


def _pct(errors: int, n: int) -> str:
    return "n/a" if n == 0 else f"{100 * errors / n:.1f}% ({n})"


def confident_mistakes(preds: Predictions, texts: dict[int, str], label_names: list[str], k: int = 10):
    """The ``k`` wrong predictions with the highest confidence: a Table (a Paragraph when there is none)."""
    wrong = np.flatnonzero(preds.predicted != preds.labels)
    if len(wrong) == 0:
        return Paragraph("No mistakes.")
    order = wrong[np.argsort(-preds.confidence[wrong], kind="stable")][:k]
    rows = [
        [
            int(preds.ids[i]),
            escape(label_names[preds.labels[i]]),
            escape(label_names[preds.predicted[i]]),
            f"{preds.confidence[i]:.3f}",
            escape(texts.get(int(preds.ids[i]), "(text not in the store)"), 240),
        ]
        for i in order
    ]
    return Table(["id", "true", "predicted", "confidence", "text"], rows)


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


def error_rate_table(first: dict[str, Predictions], keys: dict[str, dict[int, str]], key_order: list[str]) -> Table:
    """Error rate (and count) per model for each value of a per-example key (length bucket, group)."""
    per_example = {
        name: np.array([keys[name].get(int(i), "") for i in preds.ids], dtype=object) for name, preds in first.items()
    }
    rows = []
    for value in key_order:
        row = [escape(value)]
        for name, preds in first.items():
            mask = per_example[name] == value
            row.append(_pct(int((preds.predicted[mask] != preds.labels[mask]).sum()), int(mask.sum())))
        rows.append(row)
    return Table(["", *first], rows)


def _on_common(first: dict[str, Predictions], common: np.ndarray):
    pred, p_true, labels = {}, {}, None
    for name, preds in first.items():
        index = pd.Series(np.arange(len(preds)), index=preds.ids).loc[common].to_numpy()
        pred[name] = preds.predicted[index]
        labels = preds.labels[index]
        p_true[name] = preds.probs[index, labels]
    return pred, p_true, labels


def _most_apart(models, common, pred, p_true, labels, differ, texts, label_names, k) -> list:
    # Most informative first: where the models' belief in the true label is furthest apart.
    spread = np.stack([p_true[m] for m in models]).std(axis=0)
    chosen = np.flatnonzero(differ)
    chosen = chosen[np.argsort(-spread[chosen], kind="stable")][:k]
    return [
        [
            int(common[i]),
            escape(label_names[labels[i]]),
            *(f"{escape(label_names[pred[m][i]])} (P(true)={p_true[m][i]:.2f})" for m in models),
            escape(texts.get(int(common[i]), "(text not in the store)"), 200),
        ]
        for i in chosen
    ]


def disagreements(first: dict[str, Predictions], texts: dict[int, str], label_names: list[str], k: int = 10) -> list:
    """Pairwise agreement and the examples on which the models' predictions differ most, as blocks."""
    models = list(first)
    common = first[models[0]].ids
    for preds in first.values():
        common = np.intersect1d(common, preds.ids)
    if len(common) == 0:
        return [Paragraph("The models share no evaluation example.")]
    pred, p_true, labels = _on_common(first, common)
    stacked = np.stack([pred[m] for m in models])
    differ = (stacked != stacked[0]).any(axis=0)
    all_wrong = (stacked != labels).all(axis=0)
    agree = [[a, *(f"{(pred[a] == pred[b]).mean():.3f}" for b in models)] for a in models]
    blocks = [
        Paragraph(
            f"On the {len(common):,} examples every model scored: the models disagree on {int(differ.sum()):,} "
            f"({100 * differ.mean():.1f}%); all of them are wrong on {int(all_wrong.sum()):,} "
            f"({100 * all_wrong.mean():.1f}%)."
        ),
        Paragraph("Agreement between models (fraction of examples with the same predicted label):"),
        Table(["", *models], agree),
    ]
    if differ.any():
        rows = _most_apart(models, common, pred, p_true, labels, differ, texts, label_names, k)
        blocks += [
            Paragraph(f"The {len(rows)} disagreements where the models' probability of the true label differs most:"),
            Table(["id", "true", *models, "text"], rows),
        ]
    return blocks


def _mistakes(first, text_of, label_names, k) -> Section:
    parts = []
    for name, preds in first.items():
        errors = int((preds.predicted != preds.labels).sum())
        title = f"{name} (seed {preds.seed}): {errors:,} errors in {len(preds):,} examples"
        parts.append(Section(title, [confident_mistakes(preds, text_of, label_names, k)], level=3))
    return Section("Most confident mistakes", parts)


def _by_length(first, text_of) -> Section | None:
    if not text_of:
        return None
    ids = np.array(sorted(text_of))
    words = np.array([len(text_of[i].split()) for i in ids])
    bucket, bucket_labels = length_buckets(words)
    key = {int(i): bucket_labels[b] for i, b in zip(ids, bucket, strict=True)}
    caption = (
        "Length in whitespace-separated words, in quantile buckets of the evaluation texts; each cell: error rate "
        "(examples)."
    )
    return Section("Error rate by input length", [error_rate_table(first, dict.fromkeys(first, key), bucket_labels)],
                   caption=caption)


def _by_group(first, column: str) -> Section:
    keys = {
        name: dict(zip(preds.ids.tolist(), preds.groups[column].tolist(), strict=True)) if column in preds.groups else {}
        for name, preds in first.items()
    }
    values = sorted({v for mapping in keys.values() for v in mapping.values()})
    return Section(f"Error rate by {escape(column)}", [error_rate_table(first, keys, values)],
                   caption="Each cell: error rate (examples).")


def error_sections(
    first: dict[str, Predictions], texts: pd.DataFrame | None, label_names: list[str], title: str, k: int = 10
) -> list[Section]:
    """The whole errors.md as sections.

    Args:
        first: each model's first-seed predictions, in leaderboard order.
        texts: the store's ``id,text`` table, or None (the text columns then say so).
        label_names: class names in index order.
        title: the benchmark's name, for the heading.
        k: rows per example table.
    """
    text_of = {} if texts is None else dict(zip(texts["id"].astype(int), texts["text"].astype(str), strict=True))
    intro = Paragraph(
        "Each model's first seed, on its evaluation predictions (ids are rows of the evaluation split file). "
        "Rebuilt from the results store with the leaderboard."
    )
    top = Section(f"Error analysis: {title}", [intro], level=1)
    if not first:
        top.blocks.append(Paragraph("No completed run with predictions yet."))
        return [top]
    if texts is None:
        top.blocks.append(Paragraph(NO_TEXTS))
    group_columns = sorted({c for preds in first.values() for c in preds.groups})
    disagree = ([Paragraph("Only one model has predictions: nothing to compare yet.")] if len(first) < 2
                else disagreements(first, text_of, label_names, k))
    return [
        top,
        _mistakes(first, text_of, label_names, k),
        *([s] if (s := _by_length(first, text_of)) else []),
        *(_by_group(first, column) for column in group_columns),
        Section("Where the models disagree", disagree),
    ]
