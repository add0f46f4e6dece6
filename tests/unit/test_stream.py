"""EventStream (runtime/stream.py): events from a worker thread reach the async reader, and
``let_loop_write`` returns only after the loop has handed pushed events to their readers."""

from __future__ import annotations

import asyncio
import threading

from hfserve.runtime.stream import EventStream, let_loop_write


async def test_let_loop_write_waits_until_the_reader_has_the_events() -> None:
    stream = EventStream(asyncio.get_running_loop())
    order: list[str] = []

    async def read() -> None:
        async for event in stream:
            order.append(f"read {event}")

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)

    def worker() -> None:
        stream.push(["token"])
        let_loop_write([stream], timeout=5.0)
        order.append("next step")
        stream.close()

    thread = threading.Thread(target=worker)
    thread.start()
    await asyncio.wait_for(reader, 5)
    thread.join()
    assert order == ["read token", "next step"]
    assert stream.pushed is True      # the close counts as a push; nobody cleared it since


def test_let_loop_write_skips_streams_with_nothing_new() -> None:
    loop = asyncio.new_event_loop()        # never runs: waiting on it would time out
    stream = EventStream(loop)
    try:
        let_loop_write([stream], timeout=5.0)   # returns at once: nothing was pushed
        stream.push(["x"])
        loop.close()
        let_loop_write([stream], timeout=5.0)   # a closed loop is skipped, not waited on
        assert stream.pushed is False
    finally:
        if not loop.is_closed():
            loop.close()
