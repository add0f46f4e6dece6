"""The pipeline worker (runtime/generation/pipeline_worker.py) over a scripted engine: tokens stream
through, and requests it ended are stepped out of the engine even when nothing else runs."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from hfserve.backends.placement import Placement
from hfserve.runtime.generation.pipeline_worker import PipelineWorker
from hfserve.runtime.generation.sequence import Delta
from hfserve.runtime.generation.stream import EventStream
from hfserve.runtime.generation.worker import Finished, GenerationRequest
from hfserve.skills.base import PipelineOutput, PipelineSkill
from hfserve.types import Family, ModelSpec, SamplingParams, Task

WORDS = ["<eos>", "one", "two", "three"]


class ScriptedEngine(PipelineSkill):
    """Each request yields one, two, three, ... forever, a token per step; a cancelled
    request leaves the engine only at the next step, as openvino-genai's do."""

    task = Task.TEXT_GENERATION
    eos_token_ids = frozenset({0})

    def __init__(self) -> None:
        super().__init__(ModelSpec(name="e", source="e", path=Path("e"), architecture="E",
                                   model_type="e", family=Family.DECODER_ONLY,
                                   task=Task.TEXT_GENERATION, tasks=(Task.TEXT_GENERATION,)))
        self.requests: dict[int, dict[str, Any]] = {}
        self.steps = 0

    def load(self, placement: Placement) -> None:
        self.placement = placement

    def encode_chat(self, messages, options) -> list[int]:
        return [1]

    def encode_text(self, prompt: str) -> list[int]:
        return [1]

    def decode_tokens(self, token_ids: list[int]) -> str:
        return " ".join(WORDS[t] for t in token_ids if t)

    def token_text(self, token_id: int) -> str:
        return WORDS[token_id]

    def add(self, key: int, prompt_ids: list[int], params: SamplingParams) -> Any:
        self.requests[key] = {"new": [], "cancelled": False,
                              "tokens": itertools.cycle([1, 2, 3])}
        return key

    def step(self) -> None:
        self.steps += 1
        for key, request in list(self.requests.items()):
            if request["cancelled"]:
                del self.requests[key]
            else:
                request["new"].append(next(request["tokens"]))

    def has_work(self) -> bool:
        return bool(self.requests)

    def read(self, handle: Any) -> PipelineOutput:
        request = self.requests.get(handle)
        if request is None:
            return PipelineOutput([], None, True)
        new, request["new"] = request["new"], []
        return PipelineOutput(new, None, False)

    def cancel(self, handle: Any) -> None:
        if handle in self.requests:
            self.requests[handle]["cancelled"] = True


async def test_requests_the_worker_ended_leave_the_engine_when_nothing_else_runs() -> None:
    engine = ScriptedEngine()
    worker = PipelineWorker("e", engine, max_concurrent=4, max_queue=4)
    try:
        stream = EventStream(asyncio.get_running_loop())
        worker.submit(GenerationRequest("r", [1], SamplingParams(max_tokens=3)), stream)
        events = await asyncio.wait_for(_drain(stream), 5)
        assert "".join(e.text for e in events if isinstance(e, Delta)) == "one two three"
        assert isinstance(events[-1], Finished)
        for _ in range(100):    # the worker settles the engine after the last request
            if not engine.has_work():
                break
            await asyncio.sleep(0.01)
        assert not engine.has_work()
    finally:
        await asyncio.to_thread(worker.stop)


async def _drain(stream: EventStream) -> list:
    return [event async for event in stream]
