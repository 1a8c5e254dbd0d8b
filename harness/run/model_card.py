"""Model cards for saved models, written with huggingface_hub's ModelCard so the hub reads their metadata.

The card's YAML header carries ``base_model``, ``datasets`` and a ``model-index`` with the measured scores,
so a model pushed to the hub shows its evaluation results; the body says how it was trained and how to load it
(each family's own text: a TF-IDF model is not a transformers model and says so).
"""

from __future__ import annotations

import re

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from harness.config.schema import BenchmarkSpec, ModelSpec
from harness.metrics.columns import columns
from harness.models import family_class, weights
from harness.store.results import RunResult

# How a model's own card names the hub model it loads: ``from_pretrained('owner/name')``, ``SentenceTransformer(...)``.
_LOADED = re.compile(r"""(?:from_pretrained|SentenceTransformer)\(\s*['"]([\w.-]+/[\w.-]+)['"]""")
_FRONT_BASE = re.compile(r"^base_model:\s*['\"]?([\w.-]+/[\w.-]+)['\"]?\s*$", re.MULTILINE)


def _base_model(model: ModelSpec) -> str | None:
    """The hub id the weights come from: the source's, else what the local folder's own card names (its
    ``base_model`` metadata, else the id its usage code loads); None when nothing says."""
    source = model.source
    if source is None:
        return None
    if source.hub_id:
        return source.hub_id
    folder = weights.local_folder(source)
    card = folder / "README.md" if folder is not None else None
    if card is None or not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    head = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    found = _FRONT_BASE.search(head) or _LOADED.search(text)
    return found.group(1) if found else None


def _rows_of(rows: int, whole: int | None, where: str) -> str:
    if whole is not None and rows < whole:
        return f"a sample of {rows:,} of {whole:,} rows of {where}"
    return f"all {rows:,} rows of {where}" if whole is not None else f"{rows:,} rows of {where}"


def measured_on(spec: BenchmarkSpec, result: RunResult) -> tuple[list[str], bool]:
    """What the run trained and was scored on, one line per split, and whether that is the hub dataset's whole
    evaluation split (only then may the card's model-index claim results on it)."""
    data = result.data
    extra = data.model_extra or {}
    split = data.eval_split
    if data.kind == "hub":
        hub = spec.dataset.hub_id
        at = f" at commit {extra['commit']}" if extra.get("commit") else ""
        whole_eval = data.eval_split_rows or spec.official_sizes.get(split)
        lines = [f"train: {_rows_of(data.train_rows, data.train_split_rows or spec.official_sizes.get('train'), f'{hub} (train split){at}')}",
                 f"{split}: {_rows_of(data.eval_rows, whole_eval, f'{hub} ({split} split){at}')}"]
        return lines, whole_eval is not None and data.eval_rows >= whole_eval
    train_where = extra.get("train_file") or extra.get("data_dir") or "the local train split"
    eval_where = extra.get(f"{split}_file") or extra.get("data_dir") or f"the local {split} split"
    lines = [f"train: {_rows_of(data.train_rows, data.train_split_rows, train_where)}",
             f"{split}: {_rows_of(data.eval_rows, data.eval_split_rows, eval_where)}"]
    if extra.get("note"):
        lines.append(str(extra["note"]))
    return lines, False


def _variants_text(result: RunResult) -> str:
    """The card's "Deployment variants" section: each variant's file and measured figures (empty without any)."""
    if not result.deployment_variants:
        return ""
    base = result.inference
    lines = ["", "## Deployment variants",
             "Measured on the same test texts in the same process as the PyTorch model; McNemar's exact test against "
             "its predictions. Serve one with `textclf-bench predict --model-dir <this directory> --variant NAME`.", "",
             "| variant | file | accuracy | vs PyTorch | batch-1 p50 / p99 ms | eval samples/s | file MiB |",
             "|---|---|---|---|---|---|---|"]
    e2e = base.latency_batch1_end_to_end if base else None
    lines.append(f"| pytorch ({result.precision or 'n/a'}) | model.safetensors | {result.metrics.accuracy:.4f} | - | "
                 + (f"{e2e.p50_ms:.2f} / {e2e.p99_ms:.2f}" if e2e else "n/a")
                 + f" | {base.throughput_samples_per_s:.1f} | - |")
    for name, v in result.deployment_variants.items():
        if v.status != "completed":
            reason = v.verdict(None).replace("|", "\\|")
            lines.append(f"| {name} | - | - | {reason} | - | - | - |")
            continue
        latency = v.inference.latency_batch1_end_to_end
        lines.append(
            f"| {name} ({v.runtime}) | {v.file} | {v.accuracy:.4f} | {v.verdict(result.metrics.accuracy)} | "
            + (f"{latency.p50_ms:.2f} / {latency.p99_ms:.2f}" if latency else "n/a")
            + f" | {v.inference.throughput_samples_per_s:.1f} | {v.size_on_disk_bytes / 2**20:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _eval_results(spec: BenchmarkSpec, result: RunResult, dataset_name: str) -> list[EvalResult]:
    """The model-index entries: every hub column of the catalogue the run scored."""
    revision = result.configuration.data.get("revision") if spec.dataset and spec.dataset.hub_id else None
    scores = [(c.hub, value) for c in columns("hub") if (value := getattr(result.metrics, c.name)) is not None]
    return [
        EvalResult(
            task_type="text-classification",
            dataset_type=dataset_name,
            dataset_name=spec.name,
            dataset_split=result.data.eval_split,
            dataset_revision=revision,
            metric_type=hub.type,
            metric_name=hub.name,
            metric_value=round(float(value), 6),
            metric_args=hub.args,
        )
        for hub, value in scores
    ]


def build_model_card(spec: BenchmarkSpec, model: ModelSpec, result: RunResult) -> ModelCard:
    """A card for the model of a completed run: metadata for the hub, then a readable body."""
    metrics = result.metrics
    assert metrics is not None and result.data is not None and result.budget is not None
    dataset_name = spec.dataset.hub_id if spec.dataset and spec.dataset.hub_id else spec.name
    split = result.data.eval_split
    measured, whole_hub_split = measured_on(spec, result)
    on_card = columns("hub")
    # Results are claimed on the hub dataset only when they were measured on its whole evaluation split.
    eval_results = _eval_results(spec, result, dataset_name) if whole_hub_split else []
    family = family_class(model.family)
    data = ModelCardData(
        model_name=f"{model.name}-{spec.name}",
        base_model=_base_model(model),
        datasets=[dataset_name] if result.data.kind == "hub" else None,
        eval_results=eval_results,
        pipeline_tag="text-classification",
        library_name=family.card_library,
        tags=["text-classification", spec.name, "textclf-bench"],
        metrics=[c.hub.type for c in on_card],
    )
    per_class = "\n".join(
        f"| {name} | {c.precision:.4f} | {c.recall:.4f} | {c.f1:.4f} | {c.support} |"
        for name, c in metrics.per_class.items()
    )
    used = set(result.budget_fields_used) or set(result.budget.model_dump())
    budget_lines = "\n".join(
        f"- {k}: {v}" for k, v in result.budget.model_dump().items() if v is not None and k in used
    )
    settings = "\n".join(f"- {k}: {v}" for k, v in result.model_settings.items())
    origin = model.source.model_dump(exclude_none=True) if model.source else {"family": model.family}
    headline = ", ".join(
        f"{c.label} {'n/a' if (v := getattr(metrics, c.name)) is None else f'{v:.{c.digits}f}'}" for c in columns("table")
    )
    measured_text = "\n".join(f"- {line}" for line in measured)
    body = f"""
# {model.name} fine-tuned on {spec.name}

{model.description}

Base: `{origin}`. Labels: {", ".join(spec.label_names)}. Seed {result.seed}, configuration `{result.configuration.label}`.

## Evaluation ({split} split, {metrics.n} examples; see Data for which rows)
{headline}

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

## Training budget
{budget_lines}

## Model settings
{settings or "- (none)"}

## Data
What this model was trained and scored on ({result.data.kind} source):
{measured_text}

## Use
{family.card_usage}

or `textclf-bench predict --model-dir <this directory> "some text"`.
{_variants_text(result)}"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
