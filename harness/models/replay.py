"""Batch-1 inference replayed: one captured forward per padded width, so one text costs the model's arithmetic
rather than the host's kernel launches.

On a GPU a small encoder's batch-1 forward is bound by launches, not arithmetic: BERT-base in bf16 took 4.6 ms
eager and 0.77 ms replayed as one CUDA graph on an H100. Here a text's token ids are padded to a multiple of 16
(at most 8 widths at max length 128); each width is captured on first use into static buffers and replayed after.
The attention mask hides the padding, so the logits are those of the unpadded text (a test checks it).

Capture happens on CUDA only: on a CPU there are no launches to save, and the eager forward runs. Where capture
fails (a model whose forward reads a device value, which a graph cannot hold), the eager forward runs for every
later call and the reason is kept, so the leaderboard never reports a replay that did not happen.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Capture = Callable[[Callable[[], torch.Tensor]], tuple[Callable[[], None], torch.Tensor]]


def cuda_graph_capture(forward: Callable[[], torch.Tensor]) -> tuple[Callable[[], None], torch.Tensor]:
    """Capture ``forward`` into a CUDA graph: (replay, its static output)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires (kernel choice, workspaces)
        for _ in range(2):
            forward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = forward()
    return graph.replay, out


def recompute_capture(forward: Callable[[], torch.Tensor]) -> tuple[Callable[[], None], torch.Tensor]:
    """A stand-in with the same contract that recomputes on every replay (for tests off a GPU)."""
    out = forward().clone()
    return (lambda: out.copy_(forward())), out


class ReplayedForward:
    """Batch-1 logits from token ids, through one captured forward per padded width.

    Args:
        model: the inference model (in its eval precision, on ``device``, in eval mode).
        pad_id: the tokenizer's padding id.
        widths: the padded width for a length (``padded_width`` with the model's max length).
        mask_4d: whether the model takes the (1, 1, 1, width) boolean mask SDPA uses, ready-made: only then is
            the forward free of decisions on device values (from a 2-D mask transformers checks ``mask.all()``,
            which a graph cannot hold), so only then is it captured.
        capture: how a width's forward is captured (CUDA graphs by default).
    """

    def __init__(self, model, pad_id: int, widths: Callable[[int], int], mask_4d: bool, device: torch.device,
                 capture: Capture = cuda_graph_capture):
        self.model = model
        self.pad_id = pad_id
        self.widths = widths
        self.mask_4d = mask_4d
        self.device = device
        self.capture = capture
        self.slots: dict[int, tuple[torch.Tensor, torch.Tensor, Callable[[], None], torch.Tensor]] = {}
        self.failed: str | None = None  # why capture failed: every call is eager from then on

    @property
    def path(self) -> str:
        """What a batch-1 call runs, for the result: a replay, or the eager forward and why."""
        return f"eager ({self.failed})" if self.failed else "replayed (CUDA graph per padded width)"

    def _slot(self, width: int):
        ids = torch.full((1, width), self.pad_id, dtype=torch.long, device=self.device)
        mask = torch.ones((1, 1, 1, width), dtype=torch.bool, device=self.device)

        def forward() -> torch.Tensor:
            with torch.inference_mode():
                return self.model(input_ids=ids, attention_mask=mask).logits

        replay, out = self.capture(forward)
        return ids, mask, replay, out

    def eager(self, input_ids: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(input_ids=input_ids).logits

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits (1, K) for one text's ids (1, length), on the device."""
        length = input_ids.shape[1]
        if self.failed:
            return self.eager(input_ids)
        if not self.mask_4d:
            self.failed = "the model takes no ready-made mask, and deciding one reads the device"
            return self.eager(input_ids)
        width = self.widths(length)
        if width not in self.slots:
            try:
                self.slots[width] = self._slot(width)
            except Exception as exc:  # noqa: BLE001 - any capture failure means: run eagerly, say why
                self.failed = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
                return self.eager(input_ids)
        ids, mask, replay, out = self.slots[width]
        ids.fill_(self.pad_id)
        ids[:, :length].copy_(input_ids, non_blocking=True)
        mask.zero_()
        mask[..., :length] = 1
        replay()
        return out.clone()
