"""Prefill at fixed shapes, replayed as CUDA graphs.

An eager prefill of a small model on a GPU is bound by Python launching its kernels: for
SmolLM2-135M on an H200 about 40 ms whether it holds 1 or 64 prompts, against 5.6 ms for a
captured decode step of 256 rows; with two new requests per step at 256 streams, eager
prefill capped the whole server near 3.6x static ``generate``. Here a group of prompts is
left-padded to a bucket of rows and of columns (powers of two) and the forward of each
bucket is captured once, then replayed: a prefill's kernels launch at once and cost what
their arithmetic costs.

The keys and values come out as one prefill group, as an eager prefill's do, and the fixed
cache slots (``slot_kv.SlotKV``) merge them the same way. Padding sits before each row's
start, where the slots' mask never looks; a padding query attends to its own column only,
so nothing there is NaN. Without a CUDA device (or once a capture failed) the same
fixed-shape forward runs eagerly.

Our own because transformers captures graphs only around ``generate`` with a static cache
of one fixed batch (``torch.compile``), not around a server's prefill of changing groups."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hfserve.engines.torch_lm.cuda_graphs import capture
from hfserve.engines.torch_lm.kv_batch import Group, Row
from hfserve.engines.torch_lm.slot_kv import power_of_two
from hfserve.engines.torch_lm.upload import upload_into

log = logging.getLogger(__name__)

MIN_COLUMNS = 16
# Captured buckets at most: each holds its static inputs and outputs. The buckets captured
# at load (below) take up to 24 of them; the rest are for the shapes traffic brings.
MAX_GRAPHS = 48
# Device memory the captured buckets' outputs (every layer's keys and values for each of
# their tokens) may hold together, beside the KV-cache slots' share.
HELD_BYTES = 1 << 30
# Buckets captured when the model loads, smallest first and within the caps above: groups
# of up to this many chat-sized prompts, what a busy server gathers between two steps.
WARM_ROWS, WARM_COLUMNS = 32, 128


@dataclass(eq=False)
class Layer:
    keys: Any = None
    values: Any = None


class PrefillCache:
    """The cache a prefill from nothing writes: each layer's keys and values as computed
    (a fixed-shape stand-in for ``DynamicCache``, whose first update allocates)."""

    def __init__(self, layers: int) -> None:
        self.layers = [Layer() for _ in range(layers)]

    def update(self, key_states: Any, value_states: Any, layer_idx: int, *args: Any,
               **kwargs: Any) -> tuple[Any, Any]:
        layer = self.layers[layer_idx]
        layer.keys, layer.values = key_states, value_states
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.layers)


@dataclass(eq=False)
class Bucket:
    """One shape's static input (``meta``: the ids row by row, then each row's start) and,
    once captured, its graph and outputs."""

    rows: int
    columns: int
    meta: Any
    graph: Any = None
    outputs: Any = None


class PrefillGraphs:
    """``forward(ids, mask, positions, cache)`` is the model call returning the logits of
    each row's last position. ``graphs``: capture each bucket (on a CUDA device only).
    ``max_tokens``: the largest bucket (rows x columns) run at a fixed shape;
    ``token_bytes``: what one token's keys and values take over all layers (the buckets
    together hold at most ``HELD_BYTES`` of them); ``fits`` tells whether a group runs at a
    fixed shape."""

    def __init__(self, forward: Callable[..., Any], *, device: str, layers: int, pad_id: int,
                 bool_mask: bool, dtype: Any, graphs: bool, max_tokens: int,
                 token_bytes: int = 0) -> None:
        import torch

        self.forward, self.layers, self.pad_id = forward, layers, pad_id
        self.device = torch.device(device)
        self.bool_mask, self.dtype, self.max_tokens = bool_mask, dtype, max_tokens
        self.graphs = graphs and self.device.type == "cuda"
        self.buckets: dict[tuple[int, int], Bucket] = {}
        self._pool = None
        self.max_held = HELD_BYTES // max(1, token_bytes)     # tokens
        self.held = 0

    def shape(self, prompts: list[list[int]]) -> tuple[int, int]:
        return (power_of_two(len(prompts)),
                max(MIN_COLUMNS, power_of_two(max(map(len, prompts)))))

    def fits(self, prompts: list[list[int]]) -> bool:
        return self._fits(*self.shape(prompts))

    def _fits(self, rows: int, columns: int) -> bool:
        return rows * columns <= self.max_tokens and (
            (rows, columns) in self.buckets or len(self.buckets) < MAX_GRAPHS
            and self.held + rows * columns <= self.max_held)

    def capture_common(self, max_rows: int) -> int:
        """Capture the buckets of up to ``min(WARM_ROWS, max_rows)`` rows and
        ``WARM_COLUMNS`` columns now rather than on first use, where each capture stalls every
        running stream for three forwards; returns how many buckets are captured."""
        if not self.graphs:
            return 0
        most = power_of_two(min(WARM_ROWS, max_rows))
        shapes = [(1 << r, MIN_COLUMNS << c) for r in range(most.bit_length())
                  for c in range((WARM_COLUMNS // MIN_COLUMNS).bit_length())]
        for rows, columns in sorted(shapes, key=lambda s: (s[0] * s[1], s)):
            if self.graphs and self._fits(rows, columns):
                bucket = self._bucket(rows, columns)
                if bucket.graph is None:     # captured on its zeroed input; no output kept
                    self._run(bucket)
        return sum(b.graph is not None for b in self.buckets.values())

    def _bucket(self, rows: int, columns: int) -> Bucket:
        bucket = self.buckets.get((rows, columns))
        if bucket is None:
            import torch

            meta = torch.zeros(rows * columns + rows, dtype=torch.long, device=self.device)
            bucket = self.buckets[rows, columns] = Bucket(rows, columns, meta)
            self.held += rows * columns
        return bucket

    def prefill(self, prompts: list[list[int]]) -> tuple[list[Row], Any]:
        """Rows of one new prefill group and the logits of each prompt's last token."""
        rows, columns = self.shape(prompts)
        bucket = self._bucket(rows, columns)
        # Rows past the prompts hold one padding token at their last column.
        padded = [[self.pad_id] * (columns - len(p)) + p for p in prompts]
        padded += [[self.pad_id] * columns] * (rows - len(prompts))
        starts = [columns - len(p) for p in prompts] + [columns - 1] * (rows - len(prompts))
        upload_into(bucket.meta, [t for p in padded for t in p] + starts)
        logits, cache = self._run(bucket)
        n = len(prompts)
        if self.graphs and bucket.graph is not None:   # the next replay overwrites these
            logits = logits[:n].clone()
            cache = _Detached([Layer(layer.keys[:n].clone(), layer.values[:n].clone())
                               for layer in cache.layers])
        group = Group(cache)
        group.rows = [Row(length=len(p), group=group, index=i) for i, p in enumerate(prompts)]
        return list(group.rows), logits[:n]

    def _step(self, bucket: Bucket) -> tuple[Any, PrefillCache]:
        import torch

        rows, columns = bucket.rows, bucket.columns
        ids = bucket.meta[: rows * columns].view(rows, columns)
        starts = bucket.meta[rows * columns:]
        places = torch.arange(columns, device=self.device)
        query, key = places[None, :, None], places[None, None, :]
        visible = ((key <= query) & (key >= starts[:, None, None])) | (key == query)
        if self.bool_mask:
            mask = visible[:, None]
        else:
            mask = torch.zeros(visible.shape, dtype=self.dtype, device=self.device)
            mask = mask.masked_fill(~visible, torch.finfo(self.dtype).min)[:, None]
        positions = (places[None, :] - starts[:, None]).clamp(min=0)
        cache = PrefillCache(self.layers)
        return self.forward(ids, mask, positions, cache), cache

    def _run(self, bucket: Bucket) -> tuple[Any, PrefillCache]:
        if not self.graphs:
            return self._step(bucket)
        if bucket.graph is None:
            import torch

            try:
                if self._pool is None:
                    self._pool = torch.cuda.graph_pool_handle()
                bucket.graph, bucket.outputs = capture(
                    lambda: self._step(bucket), lambda out: out[0], self.device, self._pool)
            except Exception as exc:  # eager prefill still works: fall back, once
                log.warning("prefill stays eager: CUDA graph capture of %d x %d tokens "
                            "failed: %s", bucket.rows, bucket.columns, exc)
                self.graphs = False
                for other in self.buckets.values():
                    other.graph = other.outputs = None
                return self._step(bucket)
            return bucket.outputs
        bucket.graph.replay()
        return bucket.outputs


class _Detached:
    """A replayed prefill's keys and values, copied out of the graph's outputs."""

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers
