"""EventStream (runtime/generation/stream.py): events from a worker thread reach the async reader,
and ``let_loop_write`` returns only after the loop has handed pushed events to their readers."""

from __future__ import annotations

import asyncio
import threading

from hfserve.runtime.generation.stream import EventStream, let_loop_write


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


async def test_a_reader_that_fell_behind_gets_deltas_joined_per_choice() -> None:
    from hfserve.runtime.generation.sequence import Delta, coalesce
    from hfserve.types import TokenChoice

    stream = EventStream(asyncio.get_running_loop(), combine=coalesce)
    stream.push(["prompt"])
    for step, word in enumerate(["Hel", "lo", " there"]):
        stream.push([Delta(0, word, [TokenChoice(step)]), Delta(1, word.upper(),
                                                                 [TokenChoice(10 + step)])])
    stream.push([Delta(0, "!", [TokenChoice(3)], "stop"), "finished"])
    stream.close()
    await asyncio.sleep(0)                 # every push is queued before the reader starts
    got = [event async for event in stream]
    assert got[0] == "prompt" and got[-1] == "finished"
    zero, one, last = got[1:4]
    assert (zero.index, zero.text, zero.finish_reason) == (0, "Hello there!", "stop")
    assert [t.token_id for t in zero.tokens] == [0, 1, 2, 3]
    assert (one.index, one.text, one.finish_reason) == (1, "HELLO THERE", None)
    assert last == "finished" and len(got) == 4


async def test_a_reader_that_keeps_up_gets_every_step() -> None:
    from hfserve.runtime.generation.sequence import Delta, coalesce

    stream = EventStream(asyncio.get_running_loop(), combine=coalesce)
    got = []
    for word in ["a", "b", "c"]:
        stream.push([Delta(0, word, [])])
        await asyncio.sleep(0)
        got.append((await anext(aiter(stream))).text)
    assert got == ["a", "b", "c"]
