"""Batches for the transformer family: length-bucketed in training, length-sorted in evaluation, padded to a
multiple of 16, built on the host and handed to the device ahead of the step that needs them.
"""

from __future__ import annotations

import numpy as np
import torch


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


def pad_collate(pad_id: int, max_length: int | None = None, multiple: int = PAD_MULTIPLE, mask_4d: bool = False):
    """Pad a batch to its own longest example rounded up to ``multiple`` (dynamic padding), with numpy.

    Rounding keeps the number of distinct shapes small (8 for max length 128): every new shape costs
    kernel selection and cached buffers (oneDNN on CPU, cuBLAS/compile on GPU), and on CPU the memory of
    many shapes fragments the heap. Never wider than ``max_length`` (the position table may end there).
    With ``mask_4d`` the mask is handed ready-made, as in training (see ``build_host_batch``), so a forward
    never waits on the device to decide it.
    """

    def collate(rows: dict) -> dict:
        ids = rows["input_ids"]
        longest = max(len(r) for r in ids)
        width = padded_width(longest, max_length, multiple)
        input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, r in enumerate(ids):
            input_ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
        if mask_4d:
            batch.pop("attention_mask")
            if not mask.all():
                batch["attention_mask"] = torch.from_numpy(mask.astype(bool)[:, None, None, :])
        if "label" in rows:
            batch["labels"] = torch.as_tensor(rows["label"], dtype=torch.long)
        batch["idx"] = torch.as_tensor(rows["idx"], dtype=torch.long)
        return batch

    return collate


# Texts tokenised at a time in evaluation: big enough to sort into well-filled batches, small enough that the
# first batch starts soon and the next chunk's tokenisation overlaps the device's work on this one.
EVAL_CHUNK = 8192


def tokenized_chunks(tokenizer, texts: list[str], max_length: int, chunk: int, overlap: bool):
    """``(offset, token ids)`` for consecutive chunks of ``texts``; with ``overlap`` the next chunk is tokenised
    in a background thread while the caller works on this one. The ids are the same either way."""
    def encode(start: int) -> list[list[int]]:
        return tokenizer(list(texts[start : start + chunk]), truncation=True, max_length=max_length)["input_ids"]

    starts = range(0, len(texts), max(1, chunk))
    if not overlap or len(starts) == 1:
        for start in starts:
            yield start, encode(start)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize-ahead") as pool:
        pending = pool.submit(encode, starts[0])
        for i, start in enumerate(starts):
            ids = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(encode, starts[i + 1])
            yield start, ids


def padded_width(longest: int, max_length: int | None, multiple: int = PAD_MULTIPLE) -> int:
    """The longest example rounded up to ``multiple``, never past ``max_length`` (the position table may end)."""
    width = -(-longest // multiple) * multiple
    if max_length is not None:
        width = max(longest, min(width, max_length))
    return width


class TokenIds:
    """A tokenised split as one flat id array plus offsets, read from the Arrow table without Python lists.

    Building a batch is then a handful of numpy copies (tens of microseconds), cheap enough to do between
    steps; the Arrow table's per-row conversion to Python lists cost more than a small model's step.
    """

    def __init__(self, table):
        column = table.flatten_indices().data.column("input_ids") if table._indices is not None else \
            table.data.column("input_ids")
        ids = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        self.offsets = ids.offsets.to_numpy().astype(np.int64)
        self.values = ids.values.to_numpy()
        self.lengths = np.diff(self.offsets)
        self.labels = np.asarray(table["label"], dtype=np.int64) if "label" in table.column_names else None

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, rows: np.ndarray, pad_id: int, max_length: int | None) -> dict[str, np.ndarray]:
        """Input ids, attention mask and labels for ``rows``, padded as ``pad_collate`` pads."""
        lengths = self.lengths[rows]
        width = padded_width(int(lengths.max()), max_length)
        input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, (row, n) in enumerate(zip(rows.tolist(), lengths.tolist(), strict=True)):
            start = self.offsets[row]
            input_ids[i, :n] = self.values[start : start + n]
            mask[i, :n] = 1
        batch = {"input_ids": input_ids, "attention_mask": mask}
        if self.labels is not None:
            batch["labels"] = self.labels[rows]
        return batch


def shard_rows(rows: list[int], epoch_order: list[list[int]], world: int) -> list[np.ndarray]:
    """One global batch split into ``world`` equal parts, one per process (the budget's batch is global).

    A short last batch that does not divide evenly is completed with the epoch's first examples, as
    Accelerate's ``even_batches`` does, so every process takes part in every step.
    """
    rows = list(rows)
    if len(rows) % world:
        first = [i for b in epoch_order for i in b]
        rows += first[: world - len(rows) % world]
    per = len(rows) // world
    return [np.asarray(rows[r * per : (r + 1) * per], dtype=np.int64) for r in range(world)]


class HostBatch:
    """One process's share of a global batch as numpy arrays, with the host-known counts of the whole batch."""

    __slots__ = ("arrays", "examples", "real_tokens", "padded_tokens")

    def __init__(self, arrays: dict, examples: int, real_tokens: int, padded_tokens: int):
        self.arrays = arrays
        self.examples = examples
        self.real_tokens = real_tokens
        self.padded_tokens = padded_tokens


# Architectures whose SDPA attention takes a ready 4-D boolean mask unchanged (checked: identical logits).
MASK_4D_MODEL_TYPES = frozenset({"bert", "distilbert", "roberta", "xlm-roberta"})


def takes_4d_mask(config) -> bool:
    """Whether to hand the model its attention mask ready-made (see ``build_host_batch``)."""
    return getattr(config, "model_type", None) in MASK_4D_MODEL_TYPES and \
        getattr(config, "_attn_implementation", None) == "sdpa"


def build_host_batch(ids: TokenIds, rows: list[int], order: list[list[int]], world: int, rank: int, pad_id: int,
                     max_length: int | None, mask_4d: bool = False) -> HostBatch:
    """This process's share of a global batch, and the counts of the whole batch (known here, on the host).

    With ``mask_4d`` the attention mask is given as the (batch, 1, 1, length) boolean mask SDPA uses, or left
    out when the share has no padding: from a 2-D mask transformers decides that itself with
    ``padding_mask.all()``, a device read that makes every forward pass wait for the previous step.
    """
    shards = shard_rows(rows, order, world)
    real = int(sum(int(ids.lengths[s].sum()) for s in shards))
    padded = int(sum(len(s) * padded_width(int(ids.lengths[s].max()), max_length) for s in shards))
    examples = int(sum(len(s) for s in shards))
    arrays = ids.batch(shards[rank], pad_id, max_length)
    if mask_4d:
        mask = arrays.pop("attention_mask")
        if not mask.all():
            arrays["attention_mask"] = mask.astype(bool)[:, None, None, :]
    return HostBatch(arrays, examples, real, padded)


class BatchStream:
    """The batches of one epoch from position ``start`` on, as device tensors.

    On CUDA a background thread builds the next batches into pinned memory while the GPU works and the copy
    to the device is non-blocking; on CPU a batch is built in the loop (a few numpy copies), which costs
    less than handing it between threads.
    """

    def __init__(self, make, count: int, start: int, device, prefetch: int = 4):
        self.make, self.count, self.start, self.device = make, count, start, device
        self.threaded = device.type == "cuda"
        self.prefetch = prefetch
        self._stop = None

    @staticmethod
    def _tensors(batch: HostBatch, pin: bool) -> dict:
        out = {k: torch.from_numpy(v) for k, v in batch.arrays.items()}
        return {k: v.pin_memory() for k, v in out.items()} if pin else out

    def __iter__(self):
        if not self.threaded:
            for position in range(self.start, self.count):
                batch = self.make(position)
                yield position, batch, self._tensors(batch, False)
            return
        import queue
        import threading

        slots: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = self._stop = threading.Event()

        def produce():
            try:
                for position in range(self.start, self.count):
                    batch = self.make(position)
                    item = (position, batch, self._tensors(batch, True))
                    while not stop.is_set():
                        try:
                            slots.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                slots.put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the training loop, which raises it
                slots.put(exc)

        worker = threading.Thread(target=produce, daemon=True, name="batch-builder")
        worker.start()
        try:
            while True:
                item = slots.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                position, batch, tensors = item
                yield position, batch, {k: v.to(self.device, non_blocking=True) for k, v in tensors.items()}
        finally:
            stop.set()
            worker.join(timeout=5)
