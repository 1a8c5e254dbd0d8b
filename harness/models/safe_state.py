"""Training state on disk that reading back cannot turn into running code.

A checkpoint folder lies in the results store, which may be shared (a cluster's filesystem): whoever can write
there must not be able to run code as the next user who resumes. Pickle can run code while it loads, so:

- the harness's own random states are written as a safetensors file (the torch generators' byte tensors) and a
  JSON file (Python's and NumPy's Mersenne Twister states), formats that hold numbers only;
- every other file of a checkpoint (Accelerate's optimizer, scheduler, scaler and random states, written by
  ``torch.save``) is opened first with torch's restricted unpickler (``weights_only=True``, tensors memory-mapped
  so nothing large is read) and an allow-list of NumPy's array types; a file that needs anything else, a file
  Accelerate would unpickle without the restriction (``custom_checkpoint_*``), or a file that does not open, makes
  the whole checkpoint untrusted: the run starts over instead of resuming from it.
"""

from __future__ import annotations

import codecs
import json
import random
from pathlib import Path

import numpy as np
import torch

RANDOM_TENSORS = "random_states_harness_{rank}.safetensors"
RANDOM_NUMBERS = "random_states_harness_{rank}.json"
# Formats that hold data only: read by parsers that build numbers and strings, never objects.
DATA_ONLY_SUFFIXES = (".json", ".safetensors")
# Accelerate loads these with weights_only=False (state of objects registered with register_for_checkpointing;
# the harness registers none).
UNRESTRICTED_NAMES = ("custom_checkpoint_",)


def _numpy_array_globals() -> list:
    """What a pickled NumPy array (Accelerate's saved NumPy random state) needs: its constructor and dtypes."""
    core = getattr(np, "_core", None) or np.core
    allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype, codecs.encode]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in ("UInt32DType", "Int64DType", "Float64DType")
                    if hasattr(dtypes, name)]
    return allowed


def save_random_states(directory: Path, rank: int) -> None:
    """Python, NumPy and torch (CPU and every CUDA device) generator states, as safetensors + JSON."""
    from safetensors.torch import save_file

    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    numbers = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {"name": name, "keys": np.asarray(keys).tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{index}"] = state
    directory = Path(directory)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / RANDOM_TENSORS.format(rank=rank)))
    (directory / RANDOM_NUMBERS.format(rank=rank)).write_text(json.dumps(numbers))


def restore_random_states(directory: Path, rank: int) -> None:
    """Put back the generator states :func:`save_random_states` wrote; nothing read here can run code."""
    from safetensors.torch import load_file

    directory = Path(directory)
    numbers = json.loads((directory / RANDOM_NUMBERS.format(rank=rank)).read_text())
    tensors = load_file(str(directory / RANDOM_TENSORS.format(rank=rank)))
    python = numbers["python"]
    random.setstate((int(python["version"]), tuple(int(x) for x in python["internal"]), python["gauss_next"]))
    state = numbers["numpy"]
    np.random.set_state((str(state["name"]), np.asarray(state["keys"], dtype=np.uint32), int(state["pos"]),
                         int(state["has_gauss"]), float(state["cached_gaussian"])))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda_{i}"] for i in range(len(tensors)) if f"cuda_{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def has_random_states(directory: Path, rank: int = 0) -> bool:
    directory = Path(directory)
    return all((directory / name.format(rank=rank)).is_file() for name in (RANDOM_TENSORS, RANDOM_NUMBERS))


def _data_file_problem(path: Path) -> str | None:
    """Why a JSON or safetensors file does not parse (a resume would fail on it), or None."""
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        else:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
    except Exception as exc:  # noqa: BLE001 - a damaged file is not resumed from
        return f"does not parse: {type(exc).__name__}"
    return None


def untrusted_file(directory: Path) -> str | None:
    """The first file of a checkpoint folder that could run code when loaded, with why; None when none could.

    Loads each pickle-format file under torch's restricted unpickler (memory-mapped: the tensors are not read),
    so what Accelerate loads afterwards has already been opened without running anything.
    """
    directory = Path(directory)
    for path in sorted(directory.rglob("*")):
        if path.is_dir():
            continue
        name = path.relative_to(directory).as_posix()
        if path.name.startswith(UNRESTRICTED_NAMES):
            return f"{name} (Accelerate loads it with unrestricted pickle)"
        if path.suffix in DATA_ONLY_SUFFIXES:
            problem = _data_file_problem(path)
            if problem is not None:
                return f"{name} ({problem})"
            continue
        try:
            with torch.serialization.safe_globals(_numpy_array_globals()):
                torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001 - any file that does not open as plain data is not trusted
            return f"{name} ({type(exc).__name__}: {' '.join(str(exc).split())[:160] or 'no details'})"
    return None
