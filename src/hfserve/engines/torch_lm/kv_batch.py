"""The running sequences' KV caches, kept stacked in one left-padded transformers
``DynamicCache`` so that a decode step is one forward with no per-step copying.

Rows join in groups (one batched prefill each) and are merged into the running batch at the
next step; rows that finish are dropped with one ``index_select`` when the membership
changes, and columns that only padding uses are trimmed away. Every row ends at the same
column, so each step appends one column for all rows; a row's real tokens are its last
``length`` columns.

Our own because transformers' batching either fixes the batch for a whole ``generate`` call
or (its continuous-batching manager) fixes sampling per manager rather than per request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Row:
    """One sequence's place: in a pending prefill group (``group``) until it is merged."""

    length: int
    group: Group | None = None
    index: int = 0               # row in ``group.cache`` while pending
    alive: bool = True
    adapter: str | None = None   # the LoRA adapter its forwards take (None: the base model)


@dataclass(eq=False)
class Group:
    """The cache of one batched prefill, left-padded to its longest prompt."""

    cache: Any
    rows: list[Row] = field(default_factory=list)


def _layers(cache: Any) -> list[Any]:
    return cache.layers


def _pad_left(cache: Any, columns: int) -> None:
    import torch

    if columns <= 0:
        return
    for layer in _layers(cache):
        for name in ("keys", "values"):
            t = getattr(layer, name)
            pad = torch.zeros(*t.shape[:2], columns, t.shape[3], dtype=t.dtype, device=t.device)
            setattr(layer, name, torch.cat([pad, t], dim=2))


def _select(cache: Any, index: Any) -> None:
    for layer in _layers(cache):
        layer.keys = layer.keys.index_select(0, index)
        layer.values = layer.values.index_select(0, index)


def _trim(cache: Any, columns: int) -> None:
    for layer in _layers(cache):
        layer.keys = layer.keys[:, :, columns:]
        layer.values = layer.values[:, :, columns:]


def _width(cache: Any) -> int:
    return _layers(cache)[0].keys.shape[2]


def pending_groups(wanted: list[Row]) -> list[tuple[Group, list[Row]]]:
    """The prefill groups ``wanted`` rows are still waiting in, each with those rows (in the
    order wanted), in order of first appearance."""
    groups: dict[Group, list[Row]] = {}
    for row in wanted:
        if row.group is not None:
            groups.setdefault(row.group, []).append(row)
    return list(groups.items())


def zero_padding(cache: Any, lengths: list[int]) -> None:
    """Zero the padded columns a prefill wrote, so nothing there (a NaN from a fully masked
    query) can reach a later step through the masked attention."""
    import torch

    width = _width(cache)
    first = _layers(cache)[0].keys
    columns = torch.arange(width, device=first.device)
    starts = torch.tensor([width - n for n in lengths], device=first.device)
    pad = (columns[None, :] < starts[:, None])[:, None, :, None]
    for layer in _layers(cache):
        layer.keys = layer.keys.masked_fill(pad, 0)
        layer.values = layer.values.masked_fill(pad, 0)


class KVBatch:
    """The stacked cache of the rows being decoded, in the order they were last asked for.
    ``forward(ids, mask, positions, cache)`` is the model call returning next-token logits."""

    def __init__(self, forward: Callable[..., Any], device: str) -> None:
        self.forward, self.device = forward, device
        self.cache: Any = None
        self.rows: list[Row] = []

    def decode(self, states: list[Row], last_tokens: list[int]) -> Any:
        """Feed each state's last token; logits ``[len(states), vocab]`` in their order."""
        import torch

        self.arrange(states)
        mask, positions = self.step_inputs()
        ids = torch.tensor(last_tokens, device=self.device)[:, None]
        logits = self.forward(ids, mask, positions, self.cache)
        self.advanced()
        return logits

    def arrange(self, wanted: list[Row]) -> None:
        """Make the batch hold exactly ``wanted``, in that order: merge pending groups,
        drop rows no longer asked for, trim columns only padding uses."""
        import torch

        for group, rows in pending_groups(wanted):
            self._merge(group, rows)
        if self.rows != wanted:
            position = {r: i for i, r in enumerate(self.rows)}
            device = _layers(self.cache)[0].keys.device
            _select(self.cache, torch.tensor([position[r] for r in wanted], device=device))
            self.rows = list(wanted)
        unused = _width(self.cache) - max(r.length for r in self.rows)
        if unused > 0:
            _trim(self.cache, unused)

    def _merge(self, group: Group, rows: list[Row]) -> None:
        import torch

        cache = group.cache
        device = _layers(cache)[0].keys.device
        _select(cache, torch.tensor([r.index for r in rows], device=device))
        for row in rows:
            row.group = None
        if self.cache is None:
            self.cache, self.rows = cache, list(rows)
            return
        width, theirs = _width(self.cache), _width(cache)
        _pad_left(self.cache, theirs - width)
        _pad_left(cache, width - theirs)
        for mine, other in zip(_layers(self.cache), _layers(cache), strict=True):
            mine.keys = torch.cat([mine.keys, other.keys])
            mine.values = torch.cat([mine.values, other.values])
        self.rows += rows

    def step_inputs(self) -> tuple[Any, Any]:
        """Attention mask (cached columns plus the new one) and position ids for a step."""
        import torch

        width = _width(self.cache)
        device = _layers(self.cache)[0].keys.device
        lengths = torch.tensor([r.length for r in self.rows], device=device)
        columns = torch.arange(width + 1, device=device)
        mask = (columns[None, :] >= (width - lengths)[:, None]).long()
        return mask, lengths[:, None]

    def advanced(self) -> None:
        for row in self.rows:
            row.length += 1

    def clear_if_idle(self) -> None:
        """Free the tensors once no row is alive."""
        if not any(r.alive for r in self.rows):
            self.cache, self.rows = None, []
