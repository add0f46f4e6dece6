"""Capturing one model step as a CUDA graph, checked against the eager step it replaces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def capture(step: Callable[[], Any], logits_of: Callable[[Any], Any], device: Any,
            pool: Any) -> tuple[Any, Any]:
    """``(graph, outputs)`` for ``step()``, whose outputs (``logits_of(outputs)`` the
    logits among them) the graph's replays overwrite in place. Two eager warm-up runs on a
    side stream come first (they compute this very step: writing a cache column twice with
    the same values is harmless), then the capture in ``pool``, then one replay whose logits
    must match the eager ones. Raises where any of it fails."""
    import torch

    stream = torch.cuda.Stream(device=device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(2):
            eager = logits_of(step()).clone()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
        outputs = step()
    graph.replay()
    if not torch.allclose(logits_of(outputs).float(), eager.float(), rtol=1e-2, atol=1e-2):
        raise RuntimeError("a replayed step differs from the eager one")
    return graph, outputs
