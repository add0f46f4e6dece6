"""Running the app under uvicorn, with a drain on shutdown: on SIGTERM/SIGINT readiness turns
false and new work is refused at once, work in flight runs on for ``drain_timeout_s``, and
streams still running then end with an SSE error event and ``[DONE]`` (non-streamed requests
with a 503) rather than being cut mid-body."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading

import uvicorn

from hfserve.api.app import create_app
from hfserve.config import Settings
from hfserve.runtime.client import EngineClient
from hfserve.security.exposure import exposure_problem

# Time after the drain for ended streams to write their last events and close.
END_GRACE_S = 2.0


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, engine: EngineClient,
                 drain_timeout_s: float) -> None:
        super().__init__(config)
        self.engine, self.drain_timeout_s = engine, drain_timeout_s

    @contextlib.contextmanager
    def capture_signals(self):
        """uvicorn's handlers, without its re-raising of the signal once shut down (which
        ends the process as killed by it, exit -15): a server that drained exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets=None) -> None:
        engine = self.engine
        engine.begin_drain()
        timer = asyncio.get_running_loop().call_later(
            self.drain_timeout_s, engine.end_streams, "the server is shutting down")
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()


def serve(settings: Settings) -> None:
    problem = exposure_problem(settings)
    if problem:                 # the CLI says so first; this holds for any other caller
        raise SystemExit(f"hfserve: {problem}")
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            log_level=settings.log_level, access_log=settings.access_log,
                            timeout_graceful_shutdown=settings.drain_timeout_s + END_GRACE_S)
    DrainingServer(config, app.state.engine, settings.drain_timeout_s).run()
