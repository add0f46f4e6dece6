"""POST /v1/chat/completions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from hfserve.api.generation import (
    TokenChunks,
    collect,
    event_stream,
    logprob_bytes,
    unless_client_leaves,
)
from hfserve.api.schemas.chat import ChatCompletion, ChatCompletionRequest
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses, usage
from hfserve.api.state import engine_of, note_model
from hfserve.api.tool_output import StreamedCalls, finish_reason, whole_message
from hfserve.runtime.events import Delta, Finished, GenerationInput, PromptInfo
from hfserve.types import TokenChoice

router = APIRouter()


def chat_logprobs(tokens: list[TokenChoice]) -> dict[str, Any]:
    return {"content": [
        {"token": t.text or "", "logprob": t.logprob, "bytes": logprob_bytes(t.text or ""),
         "top_logprobs": [{"token": s, "logprob": lp, "bytes": logprob_bytes(s)}
                          for s, lp in (t.top_text or [])]}
        for t in tokens], "refusal": None}


def to_input(req: ChatCompletionRequest) -> GenerationInput:
    top = (req.top_logprobs or 0) if req.logprobs else None
    return GenerationInput(
        messages=[m.model_dump(exclude_none=True) for m in req.messages],
        params=req.sampling(logprobs=top),
        max_tokens=req.max_completion_tokens or req.max_tokens,
        n=req.n, priority=req.priority, timeout=req.timeout,
        options={"tools": [t.model_dump(exclude_none=True) for t in req.tools]
                 if req.tools else None,
                 "tool_choice": req.tool_choice if isinstance(req.tool_choice, str | None)
                 else req.tool_choice.model_dump(),
                 "parallel_tool_calls": req.parallel_tool_calls is not False,
                 "chat_template_kwargs": req.chat_template_kwargs})


@router.post("/v1/chat/completions", response_model=ChatCompletion,
             responses={200: {"content": {"text/event-stream": {}}},
                        **error_responses(*MODEL_ERRORS)})
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    engine = engine_of(request)
    note_model(request, body.model)
    handle = await engine.stream(body.model, to_input(body))
    rid = f"chatcmpl-{handle.request_id}"
    if body.stream:
        return StreamingResponse(event_stream(handle, _renderer(body, handle, rid),
                                              choices=body.n),
                                 media_type="text/event-stream",
                                 # ends the handle even if the body never starts
                                 background=BackgroundTask(handle.close))
    got = await unless_client_leaves(request, collect(handle, body.n), [handle])
    choices = []
    for i, c in sorted(got.choices.items()):
        message, calls = ({"role": "assistant", "content": c.text}, 0) \
            if handle.tool_parser is None else \
            whole_message(handle.tool_parser, c.text, body.parallel_tool_calls is not False)
        choices.append({"index": i, "message": message,
                        "finish_reason": finish_reason(c.finish_reason or "stop", calls),
                        "logprobs": chat_logprobs(c.tokens) if body.logprobs else None})
    result = ChatCompletion(id=rid, created=handle.created, model=handle.model,
                            choices=choices,
                            usage=usage(got.finished.prompt_tokens,
                                        got.finished.completion_tokens))
    return Response(result.model_dump_json(), media_type="application/json")


def _renderer(body: ChatCompletionRequest, handle, rid: str):
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    base = {"id": rid, "object": "chat.completion.chunk", "created": handle.created,
            "model": handle.model}

    token_chunk = TokenChunks(base, "content")
    calls = None if handle.tool_parser is None else \
        StreamedCalls(handle.tool_parser, body.n, body.parallel_tool_calls is not False)

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**base, "choices": choices, **extra}

    def render(event: Any) -> list[dict[str, Any]]:
        if isinstance(event, PromptInfo):
            return [chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None, "logprobs": None}
                           for i in range(body.n)])]
        if isinstance(event, Delta):
            if not event.text and not event.finish_reason and not event.tokens:
                return []
            if calls is not None:
                choices = calls.choices(event.index, event.text or "", event.finish_reason)
                return [chunk([c]) for c in choices]
            if not body.logprobs:
                return [token_chunk(event.index, event.text, event.finish_reason)]
            return [chunk([{"index": event.index, "delta": {"content": event.text},
                            "finish_reason": event.finish_reason,
                            "logprobs": chat_logprobs(event.tokens)}])]
        if isinstance(event, Finished) and include_usage:
            return [chunk([], usage=usage(event.prompt_tokens, event.completion_tokens))]
        return []

    return render
