"""POST /v1/completions, including ``echo`` and prompt ``logprobs`` as evaluation harnesses
use them to score text."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from hfserve.api.generation import (
    TokenChunks,
    collect_all,
    event_stream,
    unless_client_leaves,
)
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses, usage
from hfserve.api.schemas.completions import Completion, CompletionRequest
from hfserve.api.state import engine_of, note_model
from hfserve.errors import InvalidRequest
from hfserve.runtime.client import EngineClient
from hfserve.runtime.events import Collected, Delta, Finished, GenerationInput
from hfserve.types import TokenChoice

router = APIRouter()


def prompts_of(prompt: Any) -> list[str | list[int]]:
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(t, int) for t in prompt):
        return [prompt]
    return list(prompt)


def completion_logprobs(tokens: list[TokenChoice], start_offset: int) -> dict[str, Any]:
    texts = [t.text or "" for t in tokens]
    offsets, pos = [], start_offset
    for text in texts:
        offsets.append(pos)
        pos += len(text)
    return {"tokens": texts,
            "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [dict(t.top_text) if t.top_text is not None else None
                             for t in tokens],
            "text_offset": offsets}


def to_input(req: CompletionRequest, prompt: str | list[int]) -> GenerationInput:
    k = req.logprobs
    return GenerationInput(prompt=prompt, params=req.sampling(
        logprobs=k, prompt_logprobs=k if (req.echo and k is not None) else None),
        max_tokens=req.max_tokens, n=req.n, priority=req.priority, timeout=req.timeout)


async def _choices(engine: EngineClient, req: CompletionRequest, prompt: str | list[int],
                   got: Collected, base: int) -> list[dict[str, Any]]:
    echo_text = ""
    if req.echo:
        echo_text = prompt if isinstance(prompt, str) else \
            await engine.detokenize(req.model, prompt)
    choices = []
    for i, c in sorted(got.choices.items()):
        logprobs = None
        if req.logprobs is not None:
            tokens = (got.prompt.prompt_choices or []) if req.echo else []
            logprobs = completion_logprobs([*tokens, *c.tokens], 0)
        choices.append({"index": base + i, "text": echo_text + c.text,
                        "finish_reason": c.finish_reason or "length", "logprobs": logprobs})
    return choices


@router.post("/v1/completions", response_model=Completion,
             responses={200: {"content": {"text/event-stream": {}}},
                        **error_responses(*MODEL_ERRORS)})
async def completions(body: CompletionRequest, request: Request) -> Response:
    engine = engine_of(request)
    note_model(request, body.model)
    prompts = prompts_of(body.prompt)
    if not prompts:
        raise InvalidRequest("prompt must not be empty", param="prompt")
    if body.stream:
        if len(prompts) > 1:
            raise InvalidRequest("streaming takes a single prompt", param="prompt")
        if body.echo:
            raise InvalidRequest("echo is not supported with stream", param="echo")
        handle = await engine.stream(body.model, to_input(body, prompts[0]))
        return StreamingResponse(event_stream(handle, _renderer(body, handle),
                                              choices=body.n),
                                 media_type="text/event-stream",
                                 # ends the handle even if the body never starts
                                 background=BackgroundTask(handle.close))
    # Admitted as one (all or none), and ended as one: a failure or a client that leaves
    # ends every sibling generation at once.
    handles = await engine.stream_many(body.model, [to_input(body, p) for p in prompts])
    collected = await unless_client_leaves(request, collect_all(handles, body.n), handles)
    choices = [c for i, (p, got) in enumerate(zip(prompts, collected, strict=True))
               for c in await _choices(engine, body, p, got, i * body.n)]
    prompt_tokens = sum(got.finished.prompt_tokens for got in collected)
    completion_tokens = sum(got.finished.completion_tokens for got in collected)
    result = Completion(id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()),
                        model=body.model,
                        choices=choices, usage=usage(prompt_tokens, completion_tokens))
    return Response(result.model_dump_json(), media_type="application/json")


def _renderer(body: CompletionRequest, handle):
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    base = {"id": f"cmpl-{handle.request_id}", "object": "text_completion",
            "created": handle.created, "model": handle.model}
    offsets: dict[int, int] = {}
    token_chunk = TokenChunks(base, "text")

    def render(event: Any) -> list[Any]:
        if isinstance(event, Delta):
            if not event.text and not event.finish_reason:
                return []
            if body.logprobs is None:
                return [token_chunk(event.index, event.text, event.finish_reason)]
            logprobs = completion_logprobs(event.tokens, offsets.get(event.index, 0))
            offsets[event.index] = offsets.get(event.index, 0) + len(event.text)
            return [{**base, "choices": [{"index": event.index, "text": event.text,
                                          "finish_reason": event.finish_reason,
                                          "logprobs": logprobs}]}]
        if isinstance(event, Finished) and include_usage:
            return [{**base, "choices": [],
                     "usage": usage(event.prompt_tokens, event.completion_tokens)}]
        return []

    return render
