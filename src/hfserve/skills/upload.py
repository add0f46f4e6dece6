"""Host values onto a device without making the host wait for the work queued there."""

from __future__ import annotations

from typing import Any


def upload(values: Any, device: Any) -> Any:
    """``values`` (a list, or a tensor on the host) as a tensor on ``device``. A plain
    ``torch.tensor(values, device=...)`` copies synchronously, which waits for every step
    already queued on the device; on CUDA the values go through pinned memory instead
    (torch's host allocator keeps the buffer until the copy has run), so a step can be
    queued while the one before still computes."""
    import torch

    host = values if isinstance(values, torch.Tensor) else torch.tensor(values)
    if torch.device(device).type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def upload_into(target: Any, values: list) -> None:
    """``upload`` into the existing tensor ``target`` (same length as ``values``)."""
    import torch

    host = torch.tensor(values, dtype=target.dtype)
    if target.device.type == "cuda":
        target.copy_(host.pin_memory(), non_blocking=True)
    else:
        target.copy_(host)
