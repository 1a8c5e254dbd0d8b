"""Precision and threads on this machine, decided by measuring, never by the CPU's flags alone.

- threads: the run's share of the usable cores (all of them for a run alone; ``OMP_NUM_THREADS`` wins when
  lower), so the precision probe measures with the threads the run trains with;
- training precision: the budget's explicit value, else an Accelerate launch's mixed precision, else ``auto``:
  bf16 on CUDA (fp16 without bf16), and on a CPU whichever of fp32 and bf16 autocast a short probe of training
  steps at the model's shapes measured faster (bf16 autocast was slower than fp32 on an AVX512-BF16 Xeon without
  AMX);
- prediction with a model trained in reduced precision: on a CPU, a probe of forwards with the weights cast.

Probes are cached under the cache root, keyed by CPU model, torch version, model shape, batch and threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from harness.metrics.machine import rebalance_threads, shared, thread_share, usable_cores
from harness.models.cache import cache_root

PRECISIONS = ("fp32", "bf16", "fp16")
# bf16 must beat fp32 by this factor in the probe: a near-tie is noise, and fp32 is the safer numeric choice.
BF16_MARGIN = 0.95
PROBE_DIR = "precision-probe"


def pick_precision(requested: str) -> str:
    """The precision for ``requested`` without a probe: explicit values as given; 'auto' is bf16 on CUDA with
    bf16 (fp16 without), fp32 on CPU. Training on CPU resolves 'auto' by measuring (``resolve_precision``)."""
    if requested == "no":
        return "fp32"
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def inference_precision(model, length: int = 128) -> str:
    """For predicting with a model trained in reduced precision: bf16 (fp16 without) on CUDA; on a CPU whichever
    of fp32 and bf16 weights a short forward probe measured faster there (never the CPU's flags alone)."""
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return probe_cpu_inference_precision(model, 8, length, torch.get_num_threads())["choice"]


def configure_threads() -> dict:
    """Intra-op threads: OMP_NUM_THREADS when set, else the run's share of the usable cores (every usable core
    for a run alone); never more than that share.

    Tokenisation (the fast tokenizer's own thread pool) runs before training and evaluation, never beside
    them, so its threads do not compete with these; the one batch-building thread (CUDA only) mostly waits.
    """
    cores = usable_cores()
    share = thread_share()["threads"]
    env = os.environ.get("OMP_NUM_THREADS", "")
    wanted = int(env) if env.strip().isdigit() and int(env) > 0 else share
    threads = max(1, min(wanted, share, cores))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    rebalance_threads(force=True)  # fewer while other commands' runs train on this host (and so the probe)
    if shared():
        # Beside other runs the inter-op pool is cut to the share too; a run alone keeps torch's default.
        with contextlib.suppress(RuntimeError):  # settable only before the first inter-op work
            torch.set_num_interop_threads(threads)
    return {"intra_op": torch.get_num_threads(), "usable_cores": cores, "share": share,
            "omp_num_threads": env or None, "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM")}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _shape_key(model) -> dict:
    config = model.config
    keys = ("model_type", "hidden_size", "dim", "num_hidden_layers", "n_layers", "num_attention_heads", "n_heads",
            "intermediate_size", "hidden_dim", "vocab_size")
    return {k: getattr(config, k) for k in keys if getattr(config, k, None) is not None}


def _time_train_step(model, batch: dict, dtype, repeats: int, stop_after: float | None = None) -> list[float]:
    """Seconds per forward + backward of ``batch`` (first call included as element 0)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        context = torch.autocast("cpu", dtype=dtype) if dtype is not None else _null_context()
        with context:
            loss = model(**batch).loss
        loss.backward()
        times.append(time.perf_counter() - start)
        if stop_after is not None and times[-1] > stop_after:
            break
    return times


def _null_context():
    import contextlib

    return contextlib.nullcontext()


def _probe_path(identity: dict) -> tuple[str, Path]:
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return key, cache_root() / PROBE_DIR / f"{key}.json"


def _read_probe(path: Path, identity: dict) -> dict | None:
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return cached["probe"] if isinstance(cached, dict) and cached.get("identity") == identity else None


def _write_probe(path: Path, identity: dict, probe: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"identity": identity, "probe": probe}) + "\n")
        os.replace(tmp, path)
    except OSError:  # a read-only cache costs a probe per call, nothing else
        pass


def _time_forward(model, batch: dict, repeats: int) -> list[float]:
    """Seconds per inference forward of ``batch`` (first call included as element 0)."""
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            model(**batch)
            times.append(time.perf_counter() - start)
    return times


def probe_cpu_inference_precision(model, batch_size: int, length: int, threads: int) -> dict:
    """Time a forward of ``model`` in fp32 and with its weights cast to bf16 (as predictions run) on CPU; cached
    like the training probe. The model is left as it was.

    Returns:
        ``{"fp32_s", "bf16_s", "choice", "key", "cached"}``: median seconds per forward for each.
    """
    import copy

    identity = {"cpu": _cpu_model(), "torch": torch.__version__, "shape": _shape_key(model), "batch": batch_size,
                "length": length, "threads": threads, "kind": "inference"}
    key, path = _probe_path(identity)
    if (cached := _read_probe(path, identity)) is not None:
        return {**cached, "cached": True}
    generator = torch.Generator().manual_seed(0)
    vocab = int(getattr(model.config, "vocab_size", 1000))
    batch = {"input_ids": torch.randint(min(5, vocab - 1), vocab, (batch_size, length), generator=generator)}
    was_training = model.training
    model.eval()
    fp32_s = float(np.median(_time_forward(model, batch, 4)[1:]))
    bf16_s = float(np.median(_time_forward(copy.deepcopy(model).to(torch.bfloat16), batch, 4)[1:]))
    model.train(was_training)
    probe = {"fp32_s": round(fp32_s, 6), "bf16_s": round(bf16_s, 6), "key": key,
             "choice": "bf16" if bf16_s < BF16_MARGIN * fp32_s else "fp32"}
    _write_probe(path, identity, probe)
    return {**probe, "cached": False}


def probe_cpu_precision(model, batch_size: int, length: int, threads: int) -> dict:
    """Time a training step of ``model`` at (``batch_size``, ``length``) in fp32 and in bf16 autocast on CPU.

    The result is cached on disk under the cache root, keyed by CPU model, torch version, model shape, batch
    shape and thread count, so a machine pays for the probe once per shape. The model's weights, gradients
    and random state are left as they were: what is trained does not depend on the probe.

    Returns:
        ``{"fp32_s", "bf16_s", "choice", "key", "cached", "seconds"}``: median seconds per step for each.
    """
    identity = {"cpu": _cpu_model(), "torch": torch.__version__, "shape": _shape_key(model), "batch": batch_size,
                "length": length, "threads": threads}
    key, path = _probe_path(identity)
    if (cached := _read_probe(path, identity)) is not None:
        return {**cached, "cached": True, "seconds": 0.0}
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    vocab = int(getattr(model.config, "vocab_size", 1000))
    batch = {
        "input_ids": torch.randint(min(5, vocab - 1), vocab, (batch_size, length), generator=generator),
        "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
        "labels": torch.zeros(batch_size, dtype=torch.long),
    }
    was_training = model.training
    model.train()
    with torch.random.fork_rng(devices=[]):
        # The first call of each precision pays one-off set-up and is not counted. One timed step each is
        # enough when the two differ by more than 30% (the usual case: 3x either way); a closer call takes
        # two more steps of each and compares medians.
        fp32 = _time_train_step(model, batch, None, 2)
        # A CPU without native bf16 can be ten times slower: stop as soon as one step shows it cannot win.
        bf16 = _time_train_step(model, batch, torch.bfloat16, 2, stop_after=3 * fp32[-1])
        if len(bf16) > 1 and 0.7 < bf16[-1] / fp32[-1] < 1.3:
            fp32 += _time_train_step(model, batch, None, 2)
            bf16 += _time_train_step(model, batch, torch.bfloat16, 2)
        fp32_s = float(np.median(fp32[1:]))
        bf16_s = float(np.median(bf16[1:])) if len(bf16) > 1 else float(bf16[0])
    for parameter in model.parameters():
        parameter.grad = None
    model.train(was_training)
    choice = "bf16" if bf16_s < BF16_MARGIN * fp32_s else "fp32"
    probe = {"fp32_s": round(fp32_s, 6), "bf16_s": round(bf16_s, 6), "choice": choice, "key": key,
             "identity": identity}
    _write_probe(path, identity, probe)
    return {**probe, "cached": False, "seconds": round(time.perf_counter() - start, 3)}


def resolve_precision(requested: str, model=None, batch_size: int = 32, length: int = 128,
                      threads: int | None = None) -> dict:
    """One order of precedence: the budget's explicit value, else an Accelerate launch's mixed precision,
    else 'auto' (bf16 on a CUDA device with bf16, fp16 on one without; on CPU whichever a probe measured
    faster at the model's shapes).

    Returns:
        ``{"resolved": "fp32"|"bf16"|"fp16", "requested": ..., "reason": ..., "probe": dict|None}``.
    """
    record = {"requested": requested, "probe": None}
    if requested != "auto":
        return {**record, "resolved": pick_precision(requested), "reason": "set in the budget"}
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "")
    # 'accelerate launch' always exports this, "no" included when nothing was configured: only a reduced
    # precision counts as a choice made in the Accelerate config.
    if launched in ("bf16", "fp16"):
        return {**record, "resolved": launched, "reason": "the Accelerate launch configuration"}
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return {**record, "resolved": "bf16", "reason": "auto: the CUDA device does bf16 natively"}
        return {**record, "resolved": "fp16", "reason": "auto: the CUDA device has no bf16"}
    if model is None:
        return {**record, "resolved": "fp32", "reason": "auto on CPU without a model to probe"}
    probe = probe_cpu_precision(model, batch_size, length, threads or torch.get_num_threads())
    faster = probe["choice"]
    how = "cached probe" if probe["cached"] else "probe"
    reason = (f"auto on CPU: {how} at batch {batch_size} x {length} tokens measured "
              f"{'bf16' if faster == 'bf16' else 'fp32'} faster (fp32 {probe['fp32_s'] * 1000:.1f} ms, "
              f"bf16 {probe['bf16_s'] * 1000:.1f} ms a step)")
    return {**record, "resolved": faster, "reason": reason, "probe": probe}
