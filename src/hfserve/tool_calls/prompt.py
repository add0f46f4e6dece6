"""Tools in a chat whose template cannot render them: the tools become a system preamble
in the Hermes format (``<tool_call>`` blocks, which the ``hermes`` parser reads back), an
assistant's calls become its text in that format, and tool results become user turns in
``<tool_response>`` blocks. Templates that take ``tools`` render them themselves."""

from __future__ import annotations

import json
from typing import Any

PREAMBLE = (
    "You may call functions to help with the user's request. The functions are described "
    "in JSON Schema within <tools></tools>:\n<tools>\n{tools}\n</tools>\n"
    "To call a function, answer with a JSON object naming it and its arguments within "
    "<tool_call></tool_call>:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}}\n</tool_call>")


def template_arguments(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assistant tool calls with their arguments as objects, as chat templates read them
    (OpenAI sends them as JSON text)."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            message = {**message, "tool_calls": [_with_object_arguments(c) for c in calls]}
        out.append(message)
    return out


def _with_object_arguments(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    try:
        arguments = json.loads(function["arguments"])
    except ValueError:
        return call
    return {**call, "function": {**function, "arguments": arguments}}


def _call_text(call: dict[str, Any]) -> str:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    body = json.dumps({"name": function.get("name"), "arguments": arguments},
                      ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def with_tool_preamble(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
                       ) -> list[dict[str, Any]]:
    """``messages`` for a template that renders no tools: with the tools described in the
    system message (``tools`` None: none offered), and calls and results as text."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role, content = message.get("role"), message.get("content") or ""
        if role == "assistant" and message.get("tool_calls"):
            text = "\n".join(([content] if content else [])
                             + [_call_text(c) for c in message["tool_calls"]])
            out.append({"role": "assistant", "content": text})
        elif role == "tool":
            out.append({"role": "user",
                        "content": f"<tool_response>\n{content}\n</tool_response>"})
        else:
            out.append({k: v for k, v in message.items() if k != "tool_calls"})
    if tools:
        described = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        preamble = PREAMBLE.format(tools=described)
        if out and out[0].get("role") in ("system", "developer") \
                and isinstance(out[0].get("content"), str):
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{preamble}"}
        else:
            out.insert(0, {"role": "system", "content": preamble})
    return out
