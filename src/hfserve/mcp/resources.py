"""Models and hardware as MCP resources (the JSON of ``GET /v1/models``, ``/v1/models/{id}``
and ``/v1/hardware``), and a prompt per chat model."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from hfserve.errors import HFServeError
from hfserve.mcp.tools import CHAT, served_models, tool_name
from hfserve.runtime.client import EngineClient
from hfserve.types import Task

MODELS_URI = "hfserve://models"
HARDWARE_URI = "hfserve://hardware"
JSON = "application/json"
CHAT_TASKS = frozenset({Task.TEXT_GENERATION.value, Task.IMAGE_TEXT_TO_TEXT.value})


def model_uri(name: str) -> str:
    return f"{MODELS_URI}/{name}"


def list_resources(engine: EngineClient) -> list[types.Resource]:
    fixed = [types.Resource(uri=MODELS_URI, name="models", mime_type=JSON,
                            description="Every model this server knows: state, tasks, "
                            "device, backend, memory"),
             types.Resource(uri=HARDWARE_URI, name="hardware", mime_type=JSON,
                            description="Detected devices and the compatibility table")]
    return fixed + [types.Resource(uri=model_uri(m["id"]), name=m["id"], mime_type=JSON,
                                   description=f"The model {m['id']}: "
                                   f"{', '.join(m.get('tasks') or [])}")
                    for m in engine.models()]


def read_resource(engine: EngineClient, uri: str) -> types.ReadResourceResult:
    if uri == MODELS_URI:
        body: Any = engine.models()
    elif uri == HARDWARE_URI:
        body = engine.hardware()
    elif uri.startswith(MODELS_URI + "/"):
        try:
            body = engine.describe(uri.removeprefix(MODELS_URI + "/"))
        except HFServeError as exc:
            raise MCPError(INVALID_PARAMS, exc.message, {"uri": uri}) from None
    else:
        raise MCPError(INVALID_PARAMS, f"unknown resource {uri!r}", {"uri": uri})
    return types.ReadResourceResult(contents=[types.TextResourceContents(
        uri=uri, mime_type=JSON, text=json.dumps(body, default=str))])


def _chat_models(engine: EngineClient) -> list[str]:
    return [m["id"] for m in served_models(engine) if CHAT_TASKS & set(m["tasks"])]


def prompt_name(model: str) -> str:
    return tool_name(CHAT.verb, model)


def list_prompts(engine: EngineClient) -> list[types.Prompt]:
    return [types.Prompt(
        name=prompt_name(model), description=f"Talk to {model}, served here (its tool: "
        f"{tool_name(CHAT.verb, model)})",
        arguments=[types.PromptArgument(name="message", description="What to say",
                                        required=True)])
        for model in _chat_models(engine)]


def get_prompt(engine: EngineClient, name: str,
               arguments: dict[str, str] | None) -> types.GetPromptResult:
    model = next((m for m in _chat_models(engine) if prompt_name(m) == name), None)
    if model is None:
        raise MCPError(INVALID_PARAMS, f"unknown prompt {name!r}")
    message = (arguments or {}).get("message")
    if not message:
        raise MCPError(INVALID_PARAMS, "the prompt needs its `message` argument")
    return types.GetPromptResult(
        description=f"A conversation with {model}",
        messages=[types.PromptMessage(role="user", content=types.TextContent(text=message))])
