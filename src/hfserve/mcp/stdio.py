"""``hfserve mcp``: the MCP server over stdio for desktop clients, on an engine started in
this process (a composition root, as ``api/app.py`` is for HTTP). The SDK's transport
keeps the wire to itself: what else writes to stdout lands on stderr."""

from __future__ import annotations

import asyncio
import logging
import time

from mcp.server.stdio import stdio_server

from hfserve.config import Settings
from hfserve.mcp.server import build_server
from hfserve.runtime.engine import Engine

log = logging.getLogger("hfserve.mcp")


async def _preloaded(engine: Engine, settings: Settings) -> None:
    """Wait (at most ``load_timeout_s``) for the ``preload`` models, so that the client's
    first ``tools/list`` has every tool of a loaded model; its requests wait in the pipe."""
    deadline = time.monotonic() + settings.load_timeout_s
    while not engine.ready()[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    ready, states = engine.ready()
    if not ready:
        log.warning("serving before every model is ready: %s", states)


async def _serve(settings: Settings) -> None:
    engine = Engine(settings)
    server = build_server(engine)
    # The transport claims stdout first, so that nothing the loads print (nor a model
    # process started meanwhile, which inherits the descriptor) lands in the protocol.
    async with stdio_server() as (read, write):
        await engine.start()
        try:
            await _preloaded(engine, settings)
            await server.run(read, write, server.create_initialization_options())
        finally:
            await engine.close()


def serve_stdio(settings: Settings) -> None:
    asyncio.run(_serve(settings))
