"""Host values onto a device without making the host wait for the work queued there.

A plain ``torch.tensor(values, device=...)`` copies synchronously, which waits for every step
already queued on the device. On CUDA the values go instead through pinned host buffers
reused in a ring: the copy is queued, and a buffer is written again only once the copy that
last read it has run (an event per buffer; by then it has, long ago). A fresh
``pin_memory()`` per upload would do the same, but torch's pinned allocator costs about as
much as a small step's launch on every call (8% of the model process at 256 streams on an
H100)."""

from __future__ import annotations

import threading
from typing import Any

RING = 16


class _Ring:
    """Pinned int64 buffers for uploads to one CUDA device, used in turn."""

    def __init__(self) -> None:
        self.buffers: list[Any] = [None] * RING
        self.events: list[Any] = [None] * RING
        self.turn = 0
        self.lock = threading.Lock()

    def stage(self, values: list[int]) -> tuple[Any, int]:
        """A pinned buffer holding ``values`` and its place in the ring, free to copy from
        until ``copied(place)``."""
        import torch

        with self.lock:
            place = self.turn
            self.turn = (place + 1) % RING
        event = self.events[place]
        if event is not None:
            event.synchronize()
        buffer = self.buffers[place]
        if buffer is None or buffer.shape[0] < len(values):
            buffer = torch.empty(max(len(values), 1024), dtype=torch.long, pin_memory=True)
            self.buffers[place] = buffer
        buffer.numpy()[: len(values)] = values
        return buffer[: len(values)], place

    def copied(self, place: int) -> None:
        import torch

        event = self.events[place] or torch.cuda.Event()
        event.record()
        self.events[place] = event


_rings: dict[Any, _Ring] = {}


def _ring(device: Any) -> _Ring:
    ring = _rings.get(device)
    if ring is None:
        ring = _rings.setdefault(device, _Ring())
    return ring


def upload(values: Any, device: Any) -> Any:
    """``values`` (a list of ints, or a tensor on the host) as a tensor on ``device``."""
    import torch

    if torch.device(device).type != "cuda":
        return (values if isinstance(values, torch.Tensor) else torch.tensor(values)).to(device)
    if isinstance(values, torch.Tensor) or (values and type(values[0]) is not int):
        # Floats, or a tensor already made: pinned once (rare: sampling with temperature).
        host = values if isinstance(values, torch.Tensor) else torch.tensor(values)
        return host.pin_memory().to(device, non_blocking=True)
    out = torch.empty(len(values), dtype=torch.long, device=device)
    upload_into(out, values)
    return out


def upload_into(target: Any, values: list[int]) -> None:
    """``values`` into ``target``, an int64 tensor of the same length."""
    import torch

    if target.device.type != "cuda":
        target.copy_(torch.tensor(values, dtype=target.dtype))
        return
    ring = _ring(target.device)
    staged, place = ring.stage(values)
    target.copy_(staged, non_blocking=True)
    ring.copied(place)
