"""The running sequences' KV caches in fixed slots of preallocated buffers, so that a decode
step has the same shapes and addresses every time and can replay as a CUDA graph.

A ``DynamicCache`` grows by one column per step, and eager decode of a small model is bound by
Python launching kernels; a captured graph launches a whole step at once but replays fixed
kernels on fixed memory. Here each layer's keys and values live in buffers
``[slots, kv heads, columns, head dim]``. Active rows hold slots ``0..n-1`` (a leaving row's
slot is taken by the last one) and, as in ``KVBatch``, every row ends at the same column: row
``r`` owns columns ``[start_r, column)``. A step writes column ``column`` of every slot of its
bucket (``n`` rounded up to a power of two) and attends over all columns under a mask built
from the starts on the device, so its shapes depend on the bucket only and one graph per
bucket serves every step. When the columns run out, the rows shift left by the padding all of
them have, or the buffers grow (and the graphs are captured again).

Our own because transformers' ``StaticCache`` has one fixed batch and one shared position for
all rows, with no way for rows to join and leave between steps."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hfserve.engines.torch_lm.cuda_graphs import capture
from hfserve.engines.torch_lm.kv_batch import Row, pending_groups
from hfserve.engines.torch_lm.upload import upload, upload_into

log = logging.getLogger(__name__)

MIN_COLUMNS = 256


def power_of_two(n: int) -> int:
    """The smallest power of two at least ``n``."""
    size = 1
    while size < n:
        size *= 2
    return size


def bucket(n: int, slots: int) -> int:
    """The number of slots a step over ``n`` rows covers: a power of two, at most ``slots``."""
    return min(power_of_two(n), slots)


class SlotCache:
    """What the model sees as its cache during a step: ``update`` writes the new column of
    every slot in the bucket and returns the bucket's whole buffers."""

    def __init__(self, keys: list[Any], values: list[Any], column: Any) -> None:
        self.keys, self.values, self.column = keys, values, column
        self.size = 0          # the bucket of the step being run (a Python int: per graph)

    def update(self, key_states: Any, value_states: Any, layer_idx: int, *args: Any,
               **kwargs: Any) -> tuple[Any, Any]:
        keys = self.keys[layer_idx][: self.size]
        values = self.values[layer_idx][: self.size]
        keys.index_copy_(2, self.column, key_states)
        values.index_copy_(2, self.column, value_states)
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.keys[layer_idx].shape[2]

    def __len__(self) -> int:
        return len(self.keys)


class SlotKV:
    """Slots for up to ``slots`` rows; ``forward(ids, mask, positions, cache)`` is the model
    call returning next-token logits ``[rows, vocab]``. ``graphs``: capture each bucket's step
    as a CUDA graph (on a CUDA device only). The buffers take the layer count, head shape and
    dtype of the first prefill merged in."""

    def __init__(self, forward: Callable[..., Any], *, device: str, slots: int,
                 max_columns: int, pad_id: int, bool_mask: bool, graphs: bool) -> None:
        import torch

        self.forward = forward
        self.device = torch.device(device)
        self.slots, self.max_columns, self.pad_id = slots, max_columns, pad_id
        self.bool_mask = bool_mask
        self.graphs = graphs and self.device.type == "cuda"
        self.rows: list[Row] = []       # by slot
        self.starts: list[int] = []     # by slot
        self.column = 0
        self.columns = 0
        self.cache: SlotCache | None = None
        # ids (slots), starts (slots), column (1), then for the rows fed on the device their
        # slots and their places among the step before's tokens: one upload per step.
        self.meta = torch.zeros(4 * slots + 1, dtype=torch.long, device=self.device)

    # --- buffers ---------------------------------------------------------------------
    def _allocate(self, columns: int) -> None:
        import torch

        layers, heads, dim = self.shape
        old = self.cache
        shape = (self.slots, heads, columns, dim)
        keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(layers)]
        values = [torch.zeros(shape, dtype=self.dtype, device=self.device)
                  for _ in range(layers)]
        if old is not None:
            width = old.keys[0].shape[2]
            for new, prev in zip(keys + values, old.keys + old.values, strict=True):
                new[:, :, :width] = prev
        self.cache = SlotCache(keys, values, self.meta[2 * self.slots: 2 * self.slots + 1])
        self.columns = columns
        self.positions = torch.arange(columns, device=self.device)
        self._graphs: dict[int, tuple[Any, Any]] = {}   # bucket -> (graph, logits)
        self._pool = None

    def _shift(self, by: int) -> None:
        """Move every row ``by`` columns right (> 0) or left (< 0)."""
        n = len(self.rows)
        for buf in self.cache.keys + self.cache.values if n and by else ():
            live = buf[:n]
            if by > 0:
                live[:, :, by:] = live[:, :, : self.columns - by].clone()
            else:
                live[:, :, :by] = live[:, :, -by:].clone()
        self.starts = [s + by for s in self.starts]
        self.column += by

    def _room_for(self, width: int) -> None:
        """Make ``column`` at least ``width`` with a free column after it."""
        if width > self.column:
            self._grow_to(width + 1)
            self._shift(width - self.column)
        if self.column >= self.columns:
            spare = min(self.starts, default=self.column)
            if spare > 0:
                self._shift(-spare)
            else:
                self._grow_to(self.column + 1)

    def _grow_to(self, needed: int) -> None:
        if needed <= self.columns:
            return
        columns = self.columns
        while columns < needed:
            columns *= 2
        self._allocate(min(max(columns, needed), max(self.max_columns, needed)))

    # --- membership ------------------------------------------------------------------
    def arrange(self, wanted: list[Row]) -> None:
        """Hold exactly ``wanted``: free the slots of rows gone, merge pending groups."""
        keep = set(wanted)
        gone = [i for i, r in enumerate(self.rows) if r not in keep]
        if gone:
            stay = [i for i, r in enumerate(self.rows) if r in keep]
            moved = [(dst, src) for dst, src in enumerate(stay) if dst != src]
            if moved:
                places = upload([d for d, _ in moved] + [s for _, s in moved], self.device)
                dst, src = places[: len(moved)], places[len(moved):]
                for buf in self.cache.keys + self.cache.values:
                    buf.index_copy_(0, dst, buf.index_select(0, src))
            self.rows = [self.rows[i] for i in stay]
            self.starts = [self.starts[i] for i in stay]
        if not self.rows:
            self.column = 0
        for group, rows in pending_groups(wanted):
            self._merge(group, rows)
        if self.cache is not None:
            self._room_for(self.column)

    def _merge(self, group: Any, rows: list[Row]) -> None:
        """Copy a prefill group's rows (left-padded to its width) into new slots, ending at
        ``column``; the padding they bring sits before each row's start."""
        import torch

        layers = group.cache.layers
        width = layers[0].keys.shape[2]
        if self.cache is None:
            _, heads, _, dim = layers[0].keys.shape
            self.shape, self.dtype = (len(layers), heads, dim), layers[0].keys.dtype
            self._allocate(min(max(MIN_COLUMNS, width + 1), max(self.max_columns, width + 1)))
        if len(self.rows) + len(rows) > self.slots:
            raise RuntimeError(f"{len(self.rows) + len(rows)} sequences for "
                               f"{self.slots} cache slots")
        self._room_for(width)
        first = len(self.rows)
        dst = torch.arange(first, first + len(rows), device=self.device)
        src = upload([r.index for r in rows], self.device)
        window = slice(self.column - width, self.column)
        for i, layer in enumerate(layers):
            for buf, part in ((self.cache.keys[i], layer.keys), (self.cache.values[i],
                                                                   layer.values)):
                buf[:, :, window].index_copy_(0, dst, part.index_select(0, src).to(buf.dtype))
        for row in rows:
            row.group = None
            self.rows.append(row)
            self.starts.append(self.column - row.length)

    def clear_if_idle(self) -> None:
        """Forget the rows once none is alive (the buffers stay: graphs point into them)."""
        if not any(r.alive for r in self.rows):
            self.rows, self.starts, self.column = [], [], 0

    def capture_all(self) -> int:
        """Capture every bucket's step now, while no row lives (each step then writes a
        column nobody reads); returns how many buckets are captured. A bucket captured on
        first use instead stalls every running stream for three forwards."""
        self.clear_if_idle()
        if not self.graphs or self.rows:
            return len(self._graphs) if self.graphs else 0
        if self.cache is None:          # no prefill merged yet: nothing to capture against
            return 0
        upload_into(self.meta[: 2 * self.slots + 1],
                    [self.pad_id] * self.slots + [self.column] * (self.slots + 1))
        size = 1
        while self.graphs:
            if size not in self._graphs:
                self._capture(size)
            if size >= self.slots:
                break
            size = bucket(2 * size, self.slots)
        return len(self._graphs)

    # --- a step ----------------------------------------------------------------------
    def decode(self, states: list[Row], last_tokens: list[int],
               fed: tuple[Any, list[int]] | None = None) -> Any:
        """Feed each state's last token; logits ``[len(states), vocab]`` in their order.
        ``fed``: ``(tokens, indices)``, a tensor of token ids on the device (the step
        before's choices) and, for the first ``len(indices)`` states, the entry of it that
        is their last token (their ``last_tokens`` are then ignored). Nothing here waits
        for the device, so a step can be queued behind the one whose tokens it takes."""
        self.arrange(states)
        n = len(self.rows)
        size = bucket(n, self.slots)
        slot = {r: i for i, r in enumerate(self.rows)}
        order = [slot[s] for s in states]
        ids = [self.pad_id] * self.slots
        for i, token in zip(order, last_tokens, strict=True):
            ids[i] = token
        # Slots past the rows attend to their own column only, so they stay finite.
        starts = self.starts + [self.column] * (self.slots - n)
        values = ids + starts + [self.column]
        k = len(fed[1]) if fed is not None else 0
        if k:
            values += order[:k] + fed[1]
        upload_into(self.meta[: len(values)], values)
        if k:
            first = 2 * self.slots + 1
            self.meta[: self.slots].index_copy_(
                0, self.meta[first: first + k],
                fed[0].index_select(0, self.meta[first + k: first + 2 * k]))
        logits = self._run(size)[:n]
        self.column += 1
        for row in self.rows:
            row.length += 1
        if order != list(range(n)):
            logits = logits.index_select(0, upload(order, logits.device))
        return logits

    def _step(self, size: int) -> Any:
        """The work a graph captures: inputs from ``meta``, logits of the bucket's slots."""
        import torch

        ids = self.meta[:size, None]
        starts = self.meta[self.slots: self.slots + size]
        column = self.meta[2 * self.slots]
        visible = (self.positions[None, :] >= starts[:, None]) & \
            (self.positions[None, :] <= column)
        if self.bool_mask:
            mask = visible[:, None, None, :]
        else:
            mask = torch.zeros(visible.shape, dtype=self.dtype, device=self.device)
            mask = mask.masked_fill(~visible, torch.finfo(self.dtype).min)[:, None, None, :]
        positions = (column - starts)[:, None]
        self.cache.size = size
        return self.forward(ids, mask, positions, self.cache)

    def _run(self, size: int) -> Any:
        if not self.graphs:
            return self._step(size)
        captured = self._graphs.get(size)
        if captured is None:
            return self._capture(size)
        graph, logits = captured
        graph.replay()
        return logits

    def stay_eager(self) -> None:
        """Run every step eagerly from now on (the captured graphs are dropped)."""
        self.graphs = False
        self._graphs.clear()

    def _capture(self, size: int) -> Any:
        """Capture ``size``'s step; any failure leaves this cache eager for good."""
        import torch

        try:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph, logits = capture(lambda: self._step(size), lambda out: out, self.device,
                                    self._pool)
        except Exception as exc:  # eager decode still works: fall back, once
            log.warning("decode stays eager: CUDA graph capture of %d slots failed: %s",
                        size, exc)
            self.graphs = False
            self._graphs.clear()
            return self._step(size)
        self._graphs[size] = (graph, logits)
        return logits
