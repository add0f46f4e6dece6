"""POST /v1/responses: OpenAI's Responses API (text and function tools), served by the
chat path. A stream sends the Responses events (``response.created`` ... text deltas and
function-call items ... ``response.completed``), each an SSE frame named by its type."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask

from hfserve.api.generation import event_stream, sse, unless_client_leaves
from hfserve.api.routes.chat import to_input
from hfserve.api.schemas.chat import ChatCompletionRequest
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses
from hfserve.api.schemas.responses import ResponsesRequest
from hfserve.api.state import engine_of, note_model
from hfserve.runtime.events import Delta, Finished, GenerationHandle, PromptInfo, collect
from hfserve.tool_calls import FORMATS, ToolCall, ToolCallParser, parse_text

router = APIRouter()


def _chat_request(body: ResponsesRequest) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(body.chat_body())
    except ValidationError as exc:     # a field the chat path refuses, named as sent
        raise RequestValidationError(exc.errors()) from None


def _item_id(kind: str) -> str:
    return f"{kind}_{uuid.uuid4().hex}"


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [],
                         "logprobs": []}] if status == "completed" else []}


def call_item(call: ToolCall, item_id: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call.id, "name": call.name,
            "arguments": call.arguments if status == "completed" else "", "status": status}


def output_items(parser: str | None, text: str, parallel: bool) -> list[dict[str, Any]]:
    """A finished answer as Responses output items: its text, then each tool call."""
    content, calls = (text, []) if parser is None else parse_text(FORMATS[parser], text)
    calls = calls if parallel else calls[:1]
    items = [message_item(_item_id("msg"), content)] if content.strip() or not calls else []
    return items + [call_item(c, _item_id("fc")) for c in calls]


class ResponseShell:
    """The response object around the output: what the request asked, echoed back."""

    def __init__(self, body: ResponsesRequest, handle: GenerationHandle) -> None:
        self.body, self.handle = body, handle
        self.id = f"resp_{handle.request_id}"

    def __call__(self, status: str, output: list[dict[str, Any]],
                 finished: Finished | None = None, reason: str | None = None
                 ) -> dict[str, Any]:
        body = self.body
        incomplete = status == "completed" and reason == "length"
        tool_choice = body.tool_choice or "auto"
        return {
            "id": self.id, "object": "response", "created_at": self.handle.created,
            "status": "incomplete" if incomplete else status, "model": self.handle.model,
            "output": output, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
            "metadata": body.metadata or {}, "parallel_tool_calls":
                body.parallel_tool_calls is not False,
            "temperature": body.temperature, "top_p": body.top_p,
            "tool_choice": tool_choice if isinstance(tool_choice, str)
            else tool_choice.model_dump(),
            "tools": [t.model_dump(exclude_none=True) for t in body.tools or []],
            "text": {"format": body.text.format.model_dump(exclude_none=True, by_alias=True)
                     if body.text and body.text.format else {"type": "text"}},
            "store": False, "truncation": "disabled", "user": body.user,
            "usage": None if finished is None else {
                "input_tokens": finished.prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": finished.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": finished.prompt_tokens + finished.completion_tokens}}


@router.post("/v1/responses", responses={200: {"content": {"text/event-stream": {}}},
                                         **error_responses(*MODEL_ERRORS)})
async def create_response(body: ResponsesRequest, request: Request) -> Response:
    chat = _chat_request(body)
    engine = engine_of(request)
    note_model(request, body.model)
    handle = await engine.stream(chat.model, to_input(chat))
    shell = ResponseShell(body, handle)
    parallel = body.parallel_tool_calls is not False
    if body.stream:
        return StreamingResponse(
            event_stream(handle, ResponseEvents(shell, handle.tool_parser, parallel),
                         frame=lambda e: sse(e, event=e["type"]), error=_error_event,
                         done=False),
            media_type="text/event-stream", background=BackgroundTask(handle.close))
    got = await unless_client_leaves(request, collect(handle, 1), [handle])
    choice = got.choices[0]
    return JSONResponse(shell("completed", output_items(handle.tool_parser, choice.text,
                                                        parallel),
                              got.finished, choice.finish_reason))


def _error_event(error: dict[str, Any]) -> dict[str, Any]:
    inner = error["error"]
    return {"type": "error", "code": inner.get("code") or inner["type"],
            "message": inner["message"], "param": inner.get("param")}


class ResponseEvents:
    """Engine events to Responses stream events. Output text opens a message item; a tool
    call (read by the model's tool-call parser) closes it and is an item of its own."""

    def __init__(self, shell: ResponseShell, parser: str | None, parallel: bool) -> None:
        self.shell = shell
        self.parser = None if parser is None else ToolCallParser(FORMATS[parser])
        self.parallel = parallel
        self.output: list[dict[str, Any]] = []
        self.text: str | None = None        # the open message's text, None when none is
        self.calls = 0
        self.reason: str | None = None
        self.sequence = 0

    def __call__(self, event: Any) -> list[dict[str, Any]]:
        if isinstance(event, PromptInfo):
            return self._events(self._whole("response.created", "in_progress"),
                                self._whole("response.in_progress", "in_progress"))
        if isinstance(event, Delta):
            pieces: list[str | ToolCall] = [event.text] if self.parser is None \
                else self.parser.feed(event.text)
            if event.finish_reason is not None:
                self.reason = event.finish_reason
                pieces += [] if self.parser is None else self.parser.finish()
            out = [e for piece in pieces for e in self._piece(piece)]
            if event.finish_reason is not None:
                out += self._close_message()
            return self._events(*out)
        if isinstance(event, Finished):
            whole = self.shell("completed", self.output, event, self.reason)
            kind = "response.completed" if whole["status"] == "completed" \
                else "response.incomplete"
            return self._events({"type": kind, "response": whole})
        return []

    def _events(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        for e in events:
            e["sequence_number"] = self.sequence
            self.sequence += 1
        return list(events)

    def _whole(self, kind: str, status: str) -> dict[str, Any]:
        return {"type": kind, "response": self.shell(status, [])}

    def _piece(self, piece: str | ToolCall) -> list[dict[str, Any]]:
        if isinstance(piece, ToolCall):
            return self._call(piece)
        if not piece:
            return []
        out = self._open_message() if self.text is None else []
        self.text = (self.text or "") + piece
        return out + [{"type": "response.output_text.delta", **self._at(), "content_index": 0,
                       "delta": piece, "logprobs": []}]

    def _at(self) -> dict[str, Any]:
        return {"item_id": self.output[-1]["id"], "output_index": len(self.output) - 1}

    def _open_message(self) -> list[dict[str, Any]]:
        self.text = ""
        self.output.append(message_item(_item_id("msg"), "", status="in_progress"))
        return [{"type": "response.output_item.added", "output_index": len(self.output) - 1,
                 "item": dict(self.output[-1], content=[])},
                {"type": "response.content_part.added", **self._at(), "content_index": 0,
                 "part": {"type": "output_text", "text": "", "annotations": []}}]

    def _close_message(self) -> list[dict[str, Any]]:
        if self.text is None:
            return []
        text, self.text = self.text, None
        done = message_item(self.output[-1]["id"], text)
        self.output[-1] = done
        part = done["content"][0]
        return [{"type": "response.output_text.done", **self._at(), "content_index": 0,
                 "text": text, "logprobs": []},
                {"type": "response.content_part.done", **self._at(), "content_index": 0,
                 "part": part},
                {"type": "response.output_item.done", "output_index": len(self.output) - 1,
                 "item": done}]

    def _call(self, call: ToolCall) -> list[dict[str, Any]]:
        if self.calls and not self.parallel:
            return []                        # one call only: the rest are dropped
        self.calls += 1
        out = self._close_message()
        item_id = _item_id("fc")
        self.output.append(call_item(call, item_id))
        index = len(self.output) - 1
        return out + [
            {"type": "response.output_item.added", "output_index": index,
             "item": call_item(call, item_id, status="in_progress")},
            {"type": "response.function_call_arguments.delta", "item_id": item_id,
             "output_index": index, "delta": call.arguments},
            {"type": "response.function_call_arguments.done", "item_id": item_id,
             "output_index": index, "name": call.name, "arguments": call.arguments},
            {"type": "response.output_item.done", "output_index": index,
             "item": self.output[-1]}]
