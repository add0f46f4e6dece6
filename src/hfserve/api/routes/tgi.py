"""Text Generation Inference's (TGI) routes: /generate, /generate_stream, and / (which
streams when the body says ``stream``, as huggingface_hub's InferenceClient calls it), with
TGI's bodies, token events and error body (``{"error", "error_type"}``, 422 / 424 / 429)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from hfserve.api.family_errors import ErrorTable, family_error, route_class
from hfserve.api.generation import sse, unless_client_leaves
from hfserve.api.schemas.tgi import GenerateParameters, GenerateRequest
from hfserve.api.state import choose_model, engine_of
from hfserve.errors import (
    AuthenticationError,
    HFServeError,
    InvalidRequest,
    ModelError,
    NotFound,
    Overloaded,
    PermissionDenied,
)
from hfserve.runtime.events import Delta, GenerationHandle, GenerationInput, collect
from hfserve.types import SamplingParams, Task, TokenChoice

_TGI_ERRORS: ErrorTable = [
    (AuthenticationError, 401, "unauthorized"),
    (PermissionDenied, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (InvalidRequest, 422, "validation"),
    (ModelError, 424, "generation"),
    (Overloaded, 429, "overloaded"),
]


def tgi_error(exc: HFServeError) -> JSONResponse:
    return family_error(_TGI_ERRORS, exc, "generation")


router = APIRouter(route_class=route_class(tgi_error), tags=["Text Generation Inference"])
RESPONSES = {200: {"content": {"text/event-stream": {}}}, **{
    status: {"description": text, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"},
                                         "error_type": {"type": "string"}}}}}}
    for status, text in ((404, "No such model"), (422, "Input validation error"),
                         (424, "Generation error"), (429, "Model is overloaded"),
                         (503, "Unavailable"), (504, "Deadline passed"))}}


def to_input(p: GenerateParameters, prompt: str) -> GenerationInput:
    if p.repetition_penalty not in (None, 1.0):
        raise InvalidRequest("repetition_penalty is not supported (use frequency_penalty)",
                             param="parameters.repetition_penalty")
    sampled = p.do_sample or p.temperature is not None
    params = SamplingParams(
        temperature=(p.temperature or 1.0) if sampled else 0.0,
        top_p=p.top_p or 1.0, top_k=p.top_k or 0, seed=p.seed, stop=tuple(p.stop),
        logprobs=0,                      # the chosen token's id, text and logprob: TGI's
        prompt_logprobs=0 if p.decoder_input_details else None,
        frequency_penalty=p.frequency_penalty or 0.0)
    return GenerationInput(prompt=prompt, params=params, max_tokens=p.max_new_tokens or 20)


def token(t: TokenChoice) -> dict[str, Any]:
    return {"id": t.token_id, "text": t.text or "", "logprob": t.logprob, "special": False}


def finish_reason(reason: str | None, p: GenerateParameters) -> str:
    if reason == "length":
        return "length"
    return "stop_sequence" if p.stop else "eos_token"


async def _start(body: GenerateRequest, request: Request) -> tuple[GenerationHandle, str]:
    model = choose_model(request, body.model, Task.TEXT_GENERATION)
    return await engine_of(request).stream(model, to_input(body.parameters, body.inputs)), model


@router.post("/generate", responses=RESPONSES)
async def generate(body: GenerateRequest, request: Request) -> Response:
    if body.stream:
        return await generate_stream(body, request)
    handle, _ = await _start(body, request)
    got = await unless_client_leaves(request, collect(handle, 1), [handle])
    choice, p = got.choices[0], body.parameters
    text = (body.inputs if p.return_full_text else "") + choice.text
    out: dict[str, Any] = {"generated_text": text}
    if p.details:
        out["details"] = {
            "finish_reason": finish_reason(choice.finish_reason, p),
            "generated_tokens": got.finished.completion_tokens, "seed": p.seed,
            "prefill": [token(t) for t in (got.prompt.prompt_choices or [])]
            if p.decoder_input_details else [],
            "tokens": [token(t) for t in choice.tokens]}
    return JSONResponse(out)


router.add_api_route("/", generate, methods=["POST"], responses=RESPONSES,
                     summary="TGI's compatible route: /generate, streamed when `stream`")


@router.post("/generate_stream", responses=RESPONSES)
async def generate_stream(body: GenerateRequest, request: Request) -> Response:
    handle, _ = await _start(body, request)
    p = body.parameters
    return StreamingResponse(_events(handle, body, p), media_type="text/event-stream",
                             background=BackgroundTask(handle.close))


async def _events(handle: GenerationHandle, body: GenerateRequest, p: GenerateParameters):
    """One event per token; the last carries the whole text and the details (each token is
    held until the next arrives, so the one that ends the sequence is known). A failure
    mid-stream is TGI's error event."""
    text = body.inputs if p.return_full_text else ""
    count, held = 0, None
    try:
        async with handle:
            async for event in handle:
                if not isinstance(event, Delta):
                    continue
                text += event.text or ""
                for t in event.tokens:
                    if held is not None:
                        yield _event(held, count, None)
                    count, held = count + 1, t
                if event.finish_reason is not None and held is not None:
                    yield _event(held, count, (text, {
                        "finish_reason": finish_reason(event.finish_reason, p),
                        "generated_tokens": count, "seed": p.seed}))
                    held = None
    except HFServeError as exc:
        yield sse(json.loads(tgi_error(exc).body))


def _event(t: TokenChoice, index: int, end: tuple[str, dict] | None) -> bytes:
    return sse({"index": index, "token": token(t), "top_tokens": None,
                "generated_text": end[0] if end else None, "details": end[1] if end else None})
