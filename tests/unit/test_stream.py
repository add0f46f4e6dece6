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
        stream.urgent = True
        let_loop_write([stream], timeout=5.0)
        order.append("next step")
        stream.close()

    thread = threading.Thread(target=worker)
    thread.start()
    await asyncio.wait_for(reader, 5)
    thread.join()
    assert order == ["read token", "next step"]
    assert stream.urgent is False     # handled


def test_let_loop_write_skips_streams_with_nothing_urgent() -> None:
    loop = asyncio.new_event_loop()        # never runs: waiting on it would time out
    stream = EventStream(loop)
    try:
        stream.push(["x"])
        let_loop_write([stream], timeout=5.0)   # returns at once: nothing urgent
        stream.urgent = True
        loop.close()
        let_loop_write([stream], timeout=5.0)   # a closed loop is skipped, not waited on
        assert stream.urgent is False
    finally:
        if not loop.is_closed():
            loop.close()
