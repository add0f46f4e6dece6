"""The one seam every front end calls: what the HTTP routes (and later the MCP server, the
Ray Serve ingress, the UI's JSON endpoints) may ask of the engine. ``runtime.engine.Engine``
implements it; a front end holds an ``EngineClient`` and imports nothing else of the runtime
but ``runtime.events``. Cancellation, deadlines, priorities and time to first token live
below it, so every front end gets them alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from hfserve.runtime.events import GenerationHandle, GenerationInput, RunResult
from hfserve.types import Task, TokenSpan


class EngineClient(Protocol):
    # --- lifecycle (the application that owns the engine) ------------------------------
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def begin_drain(self) -> None:
        """Readiness false, new work refused; what runs goes on."""

    def end_streams(self, reason: str) -> int:
        """End every generation still running with an error; how many there were."""

    # --- work ---------------------------------------------------------------------------
    async def run(self, model: str, task: Task, items: list[Any],
                  options: dict[str, Any] | None = None, *, priority: str = "normal",
                  timeout: float | None = None, cache: bool = True) -> RunResult:
        """Encoder work: one result per item, batched with other requests; with ``cache``
        an input seen before (same model revision, task and options) is answered from the
        response cache without running, and a new result is stored."""

    async def stream(self, model: str, request: GenerationInput) -> GenerationHandle:
        """Start a generation; its handle ends itself (``async with``)."""

    async def stream_many(self, model: str, requests: list[GenerationInput]
                          ) -> list[GenerationHandle]:
        """Start several generations admitted as one (all or none)."""

    async def detokenize(self, model: str, token_ids: list[int]) -> str: ...

    async def tokenize(self, model: str, texts: list[str],
                       add_special_tokens: bool = True) -> list[list[TokenSpan]]:
        """Each text as the model's tokenizer cuts it (any model with a tokenizer)."""

    async def decode(self, model: str, sequences: list[list[int]],
                     skip_special_tokens: bool = True) -> list[str]:
        """Each sequence of token ids as text."""

    # --- introspection ------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]: ...

    def describe(self, name: str) -> dict[str, Any]: ...

    def label_of(self, name: str) -> str:
        """The served name for metric labels (a fixed one for unknown names)."""

    def group(self, name: str) -> dict[str, Any]:
        """A model group's arms: posterior, requests and traffic share of each."""

    def feedback(self, response_id: str, score: float) -> dict[str, Any]:
        """Credit the model of a group that served ``response_id`` with ``score`` in
        [0, 1]."""

    def hardware(self) -> dict[str, Any]: ...

    def ready(self) -> tuple[bool, dict[str, str]]:
        """Whether every model that should serve does, and each known model's state."""

    def breakers(self) -> dict[str, str]:
        """Models whose circuit breaker is not closed, and its state."""

    def broken(self) -> dict[str, str]: ...

    # --- administration -----------------------------------------------------------------
    def load_events(self, name: str, device: str | None = None,
                    backend: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Load a known model; events ``resolving``, ``loading``, then ``ready`` or
        ``error`` (each a dict with ``event`` and ``model``)."""

    async def unload_model(self, name: str) -> dict[str, Any]:
        """Unload after requests in flight finish; the model stays known."""

    async def register_model(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Make a local model under the model roots known (``id``, ``source``, ModelConfig
        fields); its description."""

    async def add_adapter(self, model: str, name: str, path: str) -> dict[str, Any]:
        """Serve the LoRA adapter in folder ``path`` (under the model roots) on generation
        model ``model`` as ``name``; its card."""

    async def remove_adapter(self, model: str, name: str) -> None:
        """Stop serving adapter ``name`` of ``model`` (requests in flight finish first)."""

    async def forget_model(self, name: str) -> None:
        """Unload and forget a model."""
