"""The bridge between a worker thread and the asyncio side: one event queue per request."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

_END = object()


class _Mailbox:
    """Everything pushed to one event loop's streams, handed over in one loop callback.

    ``call_soon_threadsafe`` writes to the loop's wake-up pipe on every call; one per stream
    per step made that write a third of a generation worker's time at 256 streams. Here the
    first push schedules a delivery and later pushes join it until it runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.items: list[tuple[asyncio.Queue, list[Any]]] = []

    def post(self, queue: asyncio.Queue, events: list[Any]) -> None:
        with self.lock:
            self.items.append((queue, events))
            if len(self.items) > 1:
                return              # a delivery is already scheduled
        try:
            self.loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody is left to read these
            with self.lock:
                self.items.clear()

    def _deliver(self) -> None:
        with self.lock:
            items, self.items = self.items, []
        for queue, events in items:
            queue.put_nowait(events)


_mailboxes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_mailboxes_lock = threading.Lock()


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
    with _mailboxes_lock:
        box = _mailboxes.get(loop)
        if box is None:
            box = _mailboxes[loop] = _Mailbox(loop)
        return box


class EventStream:
    """Thread-safe producer side, async consumer side. Exceptions travel as events.
    ``combine`` may rewrite what a reader that fell behind finds waiting (several pushes at
    once), e.g. join deltas so a slow client gets fewer, larger chunks."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 combine: Callable[[list[Any]], list[Any]] | None = None) -> None:
        self._loop = loop
        self._mailbox = _mailbox(loop)
        self._combine = combine
        self.pushed = False       # set on every push; the producer may clear it
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False
        self.error: BaseException | None = None   # what ended the stream, once read

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
        self.pushed = True
        self._mailbox.post(self._queue, events)

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            batch = await self._queue.get()
            if not self._queue.empty():         # the reader fell behind: take all of it
                while not self._queue.empty():
                    batch = batch + self._queue.get_nowait()
                if self._combine is not None:
                    batch = self._combine(batch)
            for event in batch:
                if event is _END:
                    return
                if isinstance(event, BaseException):
                    self.error = event
                    raise event
                yield event


def let_loop_write(streams: list[Any], timeout: float = 0.005) -> None:
    """Called by a producer thread after pushing: wait (at most ``timeout``) until the event
    loop has had the turns it needs to write what was pushed. Without it, a model loop that
    holds the interpreter lock through most of its next step (openvino-genai's ``step`` of
    15-30 ms does) delays every pushed token by about that step."""
    loops = {s._loop for s in streams
             if getattr(s, "pushed", False) and not s._loop.is_closed()}
    for stream in streams:
        stream.pushed = False
    for loop in loops:
        done = threading.Event()
        try:
            # Two turns: the first wakes each reader, the second runs after they wrote.
            loop.call_soon_threadsafe(loop.call_soon, done.set)
        except RuntimeError:   # closed meanwhile
            continue
        done.wait(timeout)
