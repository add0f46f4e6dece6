"""The bridge between a worker thread and the asyncio side: one event queue per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

_END = object()


class EventStream:
    """Thread-safe producer side, async consumer side. Exceptions travel as events."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False

    def push(self, events: list[Any]) -> None:
        """Called from any thread."""
        if events:
            self._send(events)

    def fail(self, exc: BaseException) -> None:
        self.push([exc])
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._send([_END])

    def _send(self, events: list[Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, events)
        except RuntimeError:  # the loop is closed: nobody is left to read this request
            pass

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            batch = await self._queue.get()
            for event in batch:
                if event is _END:
                    return
                if isinstance(event, BaseException):
                    raise event
                yield event
