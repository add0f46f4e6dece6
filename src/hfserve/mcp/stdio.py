"""``hfserve mcp``: the MCP server over stdio for desktop clients, on an engine started in
this process (a composition root, as ``api/app.py`` is for HTTP). The SDK's transport
keeps the wire to itself: what else writes to stdout lands on stderr."""

from __future__ import annotations

import asyncio

from mcp.server.stdio import stdio_server

from hfserve.config import Settings
from hfserve.mcp.server import build_server
from hfserve.runtime.engine import Engine


async def _serve(settings: Settings) -> None:
    engine = Engine(settings)
    server = build_server(engine)
    await engine.start()
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await engine.close()


def serve_stdio(settings: Settings) -> None:
    asyncio.run(_serve(settings))
