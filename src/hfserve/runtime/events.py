"""What a front end sends the engine and gets back: the request types and the events of a
generation (its prompt, text deltas, its end), and the handle of a running generation. With
``runtime/client.py`` this is the seam every front end (HTTP routes, and later MCP, Ray,
the UI) stands on; nothing else of the runtime is theirs to import."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from hfserve import metrics, usage
from hfserve.errors import ModelError
from hfserve.runtime.generation.stream import EventStream
from hfserve.types import SamplingParams, TokenChoice


@dataclass
class GenerationInput:
    """A generation request before tokenization: chat messages or a raw prompt."""

    messages: list[dict[str, Any]] | None = None
    prompt: str | list[int] | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None       # None: fill up to the model's default / context
    n: int = 1
    priority: str = "normal"
    timeout: float | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """The results of encoder work (one per input item)."""

    results: list[Any]
    prompt_tokens: int
    model: str


@dataclass
class PromptInfo:
    """First event of every generation: prompt size and, when asked, prompt logprobs."""

    prompt_tokens: int
    prompt_choices: list[TokenChoice] | None


@dataclass
class Delta:
    """What one step adds to a choice's output."""

    index: int
    text: str | None           # None: tokens only, for the server process to decode
    tokens: list[TokenChoice]
    finish_reason: str | None = None


@dataclass
class Finished:
    """Last event of every generation."""

    prompt_tokens: int
    completion_tokens: int


def joined(first: Delta, then: Delta) -> Delta:
    """One delta for two consecutive ones of the same choice."""
    return Delta(first.index, first.text + then.text, first.tokens + then.tokens,
                 then.finish_reason or first.finish_reason)


def coalesce(events: list[Any]) -> list[Any]:
    """Each run of consecutive deltas becomes one delta per choice (texts and tokens joined,
    the last finish reason); other events keep their place. A reader that fell behind then
    sends one chunk per choice instead of one per token, as servers under load do."""
    out: list[Any] = []
    run: dict[int, Delta] = {}
    for event in events:
        if not isinstance(event, Delta):
            out.extend(run.values())
            run.clear()
            out.append(event)
            continue
        prev = run.get(event.index)
        run[event.index] = event if prev is None else joined(prev, event)
    out.extend(run.values())
    return out


@dataclass(eq=False)
class GenerationHandle:
    """One running generation. Iterate it for its events; it ends itself: leaving
    ``async with handle`` (or ``close()``) tells the engine the generation is over, and
    aborts it in its model unless its ``Finished`` event was seen. Time to first token is
    recorded here, where the first delta arrives."""

    request_id: str
    model: str
    prompt_ids: list[int]
    events: EventStream
    created: int
    end: Callable[[str, bool], None]          # (request id, finished)
    created_monotonic: float = field(default_factory=time.monotonic)
    # The format to read tool calls from the output in (``hfserve.tool_calls.FORMATS``);
    # None: the request offered no tools to call.
    tool_parser: str | None = None
    finished: bool = False
    closed: bool = False

    async def __aiter__(self) -> AsyncIterator[Any]:
        first = True
        async for event in self.events:
            if first and isinstance(event, Delta):
                first = False
                metrics.TIME_TO_FIRST_TOKEN.labels(self.model).observe(
                    max(0.0, time.monotonic() - self.created_monotonic))
            elif isinstance(event, Finished):
                self.finished = True
                usage.record(event.prompt_tokens + event.completion_tokens)
            yield event

    async def __aenter__(self) -> GenerationHandle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.end(self.request_id, self.finished)


@dataclass
class ChoiceResult:
    text: str = ""
    tokens: list[TokenChoice] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class Collected:
    prompt: PromptInfo | None = None
    choices: dict[int, ChoiceResult] = field(default_factory=dict)
    finished: Finished | None = None


async def collect(handle: GenerationHandle, n: int) -> Collected:
    """Drain a generation into whole choices (non-streaming responses)."""
    out = Collected(choices={i: ChoiceResult() for i in range(n)})
    async with handle:
        async for event in handle:
            if isinstance(event, Delta):
                choice = out.choices[event.index]
                choice.text += event.text
                choice.tokens.extend(event.tokens)
                choice.finish_reason = event.finish_reason or choice.finish_reason
            elif isinstance(event, PromptInfo):
                out.prompt = event
            elif isinstance(event, Finished):
                out.finished = event
    if out.finished is None:
        raise ModelError("generation ended without a result")
    return out
