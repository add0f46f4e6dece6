"""The pipeline worker (runtime/generation/pipeline_worker.py) over a scripted engine: tokens stream
through, requests it ended are stepped out of the engine even when nothing else runs, and
logprobs the engine does not report come from the skill's scoring pass."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from hfserve.backends.placement import Placement
from hfserve.errors import InvalidRequest, ModelError
from hfserve.runtime.generation.pipeline_worker import PipelineWorker
from hfserve.runtime.generation.prompts import check_capabilities
from hfserve.runtime.generation.sequence import Delta
from hfserve.runtime.generation.stream import EventStream
from hfserve.runtime.generation.worker import Finished, GenerationRequest, PromptInfo
from hfserve.skills.base import PipelineOutput, PipelineSkill
from hfserve.types import Family, ModelSpec, SamplingParams, Task, TokenChoice

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


class ScoringEngine(ScriptedEngine):
    """Scores token ``t`` at position ``p`` as -p, with ``three`` as its runner-up."""

    supports_prompt_logprobs = True
    supports_top_logprobs = True
    broken = False

    def __init__(self) -> None:
        super().__init__()
        self.scored: list[tuple[list[int], int, int | None]] = []

    def score(self, ids: list[int], start: int, k: int | None) -> list[TokenChoice]:
        if self.broken:
            raise RuntimeError("scoring failed")
        self.scored.append((ids, start, k))
        return [TokenChoice(ids[p], -float(p), [(ids[p], -float(p)), (3, -9.0)][:k or 0])
                for p in range(start, len(ids))]


def test_only_a_pipeline_that_scores_serves_prompt_and_top_logprobs() -> None:
    plain, scoring = ScriptedEngine(), ScoringEngine()
    for skill in (plain, scoring):
        skill.load(Placement(backend="openvino"))
    with pytest.raises(InvalidRequest, match="backend: torch"):
        check_capabilities(plain, SamplingParams(logprobs=2))
    with pytest.raises(InvalidRequest, match="backend: torch"):
        check_capabilities(plain, SamplingParams(logprobs=1, prompt_logprobs=1))
    check_capabilities(plain, SamplingParams(logprobs=0))    # the chosen token's only
    check_capabilities(scoring, SamplingParams(logprobs=2, prompt_logprobs=2))


async def test_prompt_logprobs_and_alternatives_come_from_the_scoring_pass() -> None:
    engine = ScoringEngine()
    worker = PipelineWorker("e", engine, max_concurrent=4, max_queue=4)
    try:
        stream = EventStream(asyncio.get_running_loop())
        worker.submit(GenerationRequest("r", [2, 1], SamplingParams(
            max_tokens=3, logprobs=2, prompt_logprobs=1)), stream)
        events = await asyncio.wait_for(_drain(stream), 5)
        prompt = events[0]
        assert isinstance(prompt, PromptInfo)
        assert [(c.token_id, c.logprob, c.top) for c in prompt.prompt_choices] == \
            [(2, None, None), (1, -1.0, [(1, -1.0)])]
        assert prompt.prompt_choices[1].top_text == [("one", -1.0)]
        deltas = [e for e in events if isinstance(e, Delta)]
        tokens = [c for d in deltas for c in d.tokens]
        # The prompt once, then prompt and output once the sequence ended.
        assert engine.scored == [([2, 1], 1, 1), ([2, 1, 1, 2, 3], 2, 2)]
        assert [(c.token_id, c.logprob) for c in tokens] == [(1, -2.0), (2, -3.0), (3, -4.0)]
        assert tokens[1].top_text == [("two", -3.0), ("three", -9.0)]
        assert "".join(d.text for d in deltas) == "one two three"
        assert isinstance(events[-1], Finished)
    finally:
        await asyncio.to_thread(worker.stop)


async def test_a_failed_scoring_pass_fails_its_own_request_only() -> None:
    engine = ScoringEngine()
    engine.broken = True
    worker = PipelineWorker("e", engine, max_concurrent=4, max_queue=4)
    try:
        loop = asyncio.get_running_loop()
        scored, plain = EventStream(loop), EventStream(loop)
        worker.submit(GenerationRequest("a", [1], SamplingParams(max_tokens=2, logprobs=2)),
                      scored)
        worker.submit(GenerationRequest("b", [1], SamplingParams(max_tokens=4)), plain)
        with pytest.raises(ModelError):
            await asyncio.wait_for(_drain(scored), 5)
        events = await asyncio.wait_for(_drain(plain), 5)
        assert "".join(e.text for e in events if isinstance(e, Delta)) == "one two three one"
    finally:
        await asyncio.to_thread(worker.stop)


async def _drain(stream: EventStream) -> list:
    return [event async for event in stream]
