"""Drive a real generation skill through the runtime's scheduler: greedy requests joining a
running batch at different steps, each read back as its token ids."""

from __future__ import annotations

import asyncio

from hfserve.runtime.scheduler import GenerationRequest, Scheduler
from hfserve.runtime.sequence import Delta
from hfserve.runtime.stream import EventStream
from hfserve.types import SamplingParams


def scheduled_tokens(skill, prompts: list[list[int]], max_tokens: list[int],
                     gap_s: float = 0.005) -> list[list[int]]:
    """Submit ``prompts`` ``gap_s`` apart (later ones join a batch already running) and
    return the tokens each request streamed."""

    async def run() -> list[list[int]]:
        scheduler = Scheduler("scheduled", skill, max_concurrent=8, max_queue=16)
        loop = asyncio.get_running_loop()
        try:
            streams = []
            for i, (prompt, n) in enumerate(zip(prompts, max_tokens, strict=True)):
                stream = EventStream(loop)
                scheduler.submit(GenerationRequest(f"r{i}", prompt, SamplingParams(
                    temperature=0, max_tokens=n)), stream)
                streams.append(stream)
                await asyncio.sleep(gap_s * i)

            async def tokens(stream: EventStream) -> list[int]:
                return [t.token_id async for e in stream if isinstance(e, Delta)
                        for t in e.tokens]

            return await asyncio.wait_for(asyncio.gather(*map(tokens, streams)), 60)
        finally:
            await asyncio.to_thread(scheduler.stop)

    return asyncio.run(run())
