"""The MCP server over an engine: the SDK's low-level ``Server`` (tools, resources and
prompts are computed from the engine at each list, not registered once: models come and
go), and its streamable-HTTP transport as an ASGI app for ``/mcp``."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import ValidationError

from hfserve import __version__
from hfserve.errors import HFServeError, ModelError
from hfserve.mcp import resources
from hfserve.mcp.tools import Tool, tool_table
from hfserve.runtime.client import EngineClient
from hfserve.security.exposure import HostRule
from hfserve.security.keys import Caller

log = logging.getLogger("hfserve.mcp")

# Every tool runs a model on its inputs: it changes nothing and reaches nothing outside.
ANNOTATIONS = types.ToolAnnotations(read_only_hint=True, open_world_hint=False)
INSTRUCTIONS = ("Every model this server serves is a tool per task it does (embed_*, chat_*, "
                "complete_*, classify_*, rerank_*...); hfserve://models lists the models.")


def _error(exc: HFServeError) -> types.CallToolResult:
    """A failed call, for the calling model to read: the message, and the HTTP API's error
    object as structured content."""
    return types.CallToolResult(content=[types.TextContent(text=exc.message)],
                                structured_content=exc.to_dict(), is_error=True)


def _invalid(exc: ValidationError) -> types.CallToolResult:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "arguments"
    return types.CallToolResult(
        content=[types.TextContent(text=f"invalid argument {where}: {first['msg']}")],
        structured_content={"error": {"message": f"{where}: {first['msg']}",
                                      "type": "invalid_request_error", "param": where,
                                      "code": "invalid_argument"}},
        is_error=True)


def allowed_models(engine: EngineClient, ctx) -> frozenset[str] | None:
    """The served names an HTTP caller's key is limited to (``Authenticate`` put the caller
    on the request's scope), None for every model (no limit, or stdio: no request)."""
    scope = getattr(ctx.request, "scope", None) or {}
    caller = scope.get("state", {}).get("caller")
    if not isinstance(caller, Caller) or caller.models is None:
        return None
    return frozenset(engine.label_of(m) for m in caller.models)


def build_server(engine: EngineClient) -> Server:
    def tools(ctx) -> dict[str, Tool]:
        allowed = allowed_models(engine, ctx)
        return {name: t for name, t in tool_table(engine).items()
                if allowed is None or t.model in allowed}

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=t.name, description=t.description,
                       input_schema=t.kind.arguments.model_json_schema(),
                       annotations=ANNOTATIONS)
            for t in tools(ctx).values()])

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = tools(ctx).get(params.name)
        if tool is None:
            raise MCPError(INVALID_PARAMS, f"unknown tool {params.name!r}")
        try:
            args = tool.kind.arguments.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _invalid(exc)
        try:
            result = await tool.kind.call(engine, tool.model, args)
        except HFServeError as exc:
            return _error(exc)
        except Exception as exc:   # a failure of the model, never a crash of the session
            log.exception("tool %s failed", params.name)
            return _error(ModelError(f"the model failed: {type(exc).__name__}"))
        text = result["text"] if "text" in result else json.dumps(result)
        return types.CallToolResult(content=[types.TextContent(text=text)],
                                    structured_content=result)

    async def list_resources(ctx, params) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=resources.list_resources(engine))

    async def read_resource(ctx, params: types.ReadResourceRequestParams
                            ) -> types.ReadResourceResult:
        return resources.read_resource(engine, str(params.uri))

    async def list_prompts(ctx, params) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=resources.list_prompts(engine))

    async def get_prompt(ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        return resources.get_prompt(engine, params.name, params.arguments)

    return Server("hfserve", version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool,
                  on_list_resources=list_resources, on_read_resource=read_resource,
                  on_list_prompts=list_prompts, on_get_prompt=get_prompt)


def transport_security(rule: HostRule) -> TransportSecuritySettings:
    """The SDK's Host and Origin checks (DNS rebinding) on every /mcp request, GET streams
    too, with the names the HTTP API answers to: each with any port, and each as an
    http(s) origin, besides ``cors_origins``. The SDK matches exact names, so a
    ``*.suffix`` entry of ``allowed_hosts`` does not reach /mcp; ``*`` turns the check
    off, as it turns off the API's."""
    if rule.any:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = sorted(rule.names)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[h for name in names for h in (name, f"{name}:*")],
        allowed_origins=[*sorted(rule.origins),
                         *(f"{scheme}://{name}{port}" for name in names
                           for scheme in ("http", "https") for port in ("", ":*"))])


class HttpTransport:
    """``/mcp``: the ASGI app, and the session manager whose ``run()`` must stay open while
    the host app serves (it owns the sessions' task group)."""

    def __init__(self, engine: EngineClient, security: TransportSecuritySettings,
                 max_body_bytes: int) -> None:
        self.manager = StreamableHTTPSessionManager(
            app=build_server(engine), security_settings=security,
            max_request_body_size=max_body_bytes)
        self.app = StreamableHTTPASGIApp(self.manager)

    @asynccontextmanager
    async def running(self):
        """Holds ``manager.run()`` open in a task of its own: an anyio task group must be
        left by the task that entered it, and a host app's lifespan may be entered and
        left by different tasks (an ASGI test client's fixtures do)."""
        stop = asyncio.Event()
        started = asyncio.Event()

        async def hold() -> None:
            async with self.manager.run():
                started.set()
                await stop.wait()

        task = asyncio.create_task(hold(), name="hfserve-mcp-sessions")
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            task.result()               # it failed to start: say why
        try:
            yield
        finally:
            stop.set()
            await task
