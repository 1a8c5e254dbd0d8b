"""Model cards for saved models, written with huggingface_hub's ModelCard so the hub reads their metadata.

The card's YAML header carries ``base_model``, ``datasets`` and a ``model-index`` with the measured scores,
so a model pushed to the hub shows its evaluation results; the body says how it was trained and how to load it
(each family's own text: a TF-IDF model is not a transformers model and says so).
"""

from __future__ import annotations

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from harness.config.schema import BenchmarkSpec, ModelSpec
from harness.metrics.columns import columns
from harness.models import family_class
from harness.store.results import RunResult


def _base_model(model: ModelSpec) -> str | None:
    source = model.source
    if source is None:
        return None
    return source.hub_id or None


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


def build_model_card(spec: BenchmarkSpec, model: ModelSpec, result: RunResult) -> ModelCard:
    """A card for the model of a completed run: metadata for the hub, then a readable body."""
    metrics = result.metrics
    assert metrics is not None and result.data is not None and result.budget is not None
    dataset_name = spec.dataset.hub_id if spec.dataset and spec.dataset.hub_id else spec.name
    split = result.data.eval_split
    revision = None
    if spec.dataset and spec.dataset.hub_id:
        revision = result.configuration.data.get("revision")
    on_card = columns("hub")
    scores = [(c.hub, value) for c in on_card if (value := getattr(metrics, c.name)) is not None]
    eval_results = [
        EvalResult(
            task_type="text-classification",
            dataset_type=dataset_name,
            dataset_name=spec.name,
            dataset_split=split,
            dataset_revision=revision,
            metric_type=hub.type,
            metric_name=hub.name,
            metric_value=round(float(value), 6),
            metric_args=hub.args,
        )
        for hub, value in scores
    ]
    family = family_class(model.family)
    data = ModelCardData(
        model_name=f"{model.name}-{spec.name}",
        base_model=_base_model(model),
        datasets=[dataset_name],
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
    body = f"""
# {model.name} fine-tuned on {spec.name}

{model.description}

Base: `{origin}`. Labels: {", ".join(spec.label_names)}. Seed {result.seed}, configuration `{result.configuration.label}`.

## Evaluation ({split} split, {metrics.n} examples)
{headline}

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

## Training budget
{budget_lines}

## Model settings
{settings or "- (none)"}

## Data
- {result.data.train_rows} train rows, {result.data.eval_rows} rows of the '{split}' split ({result.data.kind} source)

## Use
{family.card_usage}

or `textclf-bench predict --model-dir <this directory> "some text"`.
{_variants_text(result)}"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
