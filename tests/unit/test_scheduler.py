"""The generation scheduler (runtime/generation/scheduler.py) driving a scripted, torch-free
skill."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hfserve.backends.placement import Placement
from hfserve.errors import Cancelled, DeadlineExceeded, ModelError, Overloaded
from hfserve.runtime.generation import scheduler as scheduler_module
from hfserve.runtime.generation.scheduler import Finished, GenerationRequest, PromptInfo, Scheduler
from hfserve.runtime.generation.sequence import Delta
from hfserve.runtime.generation.stream import EventStream
from hfserve.skills.base import GenerativeSkill
from hfserve.types import Family, ModelSpec, Pick, SamplingParams, Task, TokenChoice

EOS = 0
WORDS = ["<eos>", "alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
ENDLESS = 99          # a prompt token that makes the reply never end
POISON = 98           # a prompt token whose sequence makes decode raise
PREFILL_POISON = 97   # a prompt token that makes any prefill holding it raise


def spec() -> ModelSpec:
    return ModelSpec(name="fake", source="fake", path=Path("fake"), architecture="FakeLM",
                     model_type="fake", family=Family.DECODER_ONLY,
                     task=Task.TEXT_GENERATION, tasks=(Task.TEXT_GENERATION,))


class ScriptedSkill(GenerativeSkill):
    """A 'model' that replies with a fixed script of words, then eos. The per-sequence
    generator is an iterator over the script; sample ignores logits and takes its next
    token. Records prefills, decode steps and released states."""

    task = Task.TEXT_GENERATION
    eos_token_ids = frozenset({EOS})

    def __init__(self, script: list[int], max_context: int = 1000) -> None:
        super().__init__(spec())
        self.script = script
        self.max_context = max_context
        self.prefills: list[list[int]] = []
        self.decode_calls: list[int] = []        # batch size of each decode step
        self.released: list[int] = []            # ids of released states
        self.timeline: list[str] = []            # "p" per prefill, "d" per decode step
        self.parts: list[int] = []               # tokens of each prompt part fed
        self.fed: list[int] = []                 # rows fed on the device, per step
        self.gate = threading.Event()            # decode waits for it when 'gated'
        self.gate.set()
        self.step_delay = 0.0
        self._ids = itertools.count()
        self._endless = False
        self.lock = threading.Lock()

    # text <-> tokens
    def encode_chat(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> list[int]:
        return [1] * len(messages)

    def encode_text(self, prompt: str) -> list[int]:
        return [WORDS.index(w) for w in prompt.split()]

    def decode_tokens(self, token_ids: list[int]) -> str:
        return " ".join(WORDS[t] for t in token_ids if t != EOS)

    def token_text(self, token_id: int) -> str:
        return WORDS[token_id]

    # model stages
    def load(self, placement: Placement) -> None:
        self.placement = placement

    def prefill(self, prompts: list[list[int]], prompt_logprobs: list[int | None]):
        if any(PREFILL_POISON in p for p in prompts):
            raise RuntimeError("prefill blew up")
        with self.lock:
            self.prefills.extend(list(p) for p in prompts)
            self.timeline.append("p")
        self._endless = any(ENDLESS in p for p in prompts)
        states = [{"id": next(self._ids), "poison": POISON in p} for p in prompts]
        return states, ["logits"] * len(prompts), [None] * len(prompts)

    def prefill_part(self, partial: int | None, ids: list[int]) -> int:
        """The partial prefill is the count of tokens fed so far (parts show as "q")."""
        with self.lock:
            self.parts.append(len(ids))
            self.timeline.append("q")
        return (partial or 0) + len(ids)

    def finish_prefill(self, partial: int, ids: list[int]):
        with self.lock:
            self.parts.append(len(ids))
        return self.prefill([ids], [None])

    def decode(self, states: list[Any], last_tokens: list[int],
               fed: tuple[Any, list[int]] | None = None) -> list[Any]:
        if fed is not None:        # (feeds_tokens) rows carried from the step before
            pending, indices = fed
            assert indices and len(indices) <= len(states)
            assert max(indices) < len(pending()) and indices == sorted(set(indices))
            self.fed.append(len(indices))
        self.gate.wait(10)
        if self.step_delay:
            time.sleep(self.step_delay)
        with self.lock:
            self.decode_calls.append(len(states))
            self.timeline.append("d")
        if any(s["poison"] for s in states):
            raise RuntimeError("decode blew up")
        return ["logits"] * len(states)

    def sample(self, logits: Any, picks: list[Pick]) -> list[TokenChoice]:
        return [TokenChoice(token_id=next(p.generator), logprob=-1.0) for p in picks]

    def new_generator(self, seed: int | None) -> Iterator[int]:
        if self._endless:
            return itertools.cycle(self.script)
        return itertools.chain(self.script, itertools.repeat(EOS))

    def release(self, state: Any) -> None:
        with self.lock:
            self.released.append(state["id"])

    def copy_state(self, state: Any) -> Any:
        return {**state, "id": next(self._ids)}


class Harness:
    """A scheduler and the means to submit requests to it."""

    def __init__(self, skill: ScriptedSkill, **kw: Any) -> None:
        self.skill = skill
        options = dict(max_concurrent=4, max_queue=16)
        options.update(kw)
        self.scheduler = Scheduler("fake", skill, **options)
        self._ids = itertools.count()

    def submit(self, prompt: list[int], *, priority: int = 1, n: int = 1,
               deadline: float | None = None, request_id: str | None = None,
               **params: Any) -> tuple[str, EventStream]:
        params.setdefault("max_tokens", 50)
        rid = request_id or f"req-{next(self._ids)}"
        stream = EventStream(asyncio.get_running_loop())
        self.scheduler.submit(GenerationRequest(rid, prompt, SamplingParams(**params), n=n,
                                                priority=priority, deadline=deadline), stream)
        return rid, stream


async def drain(stream: EventStream, timeout: float = 5.0) -> list[Any]:
    async def collect() -> list[Any]:
        return [event async for event in stream]

    return await asyncio.wait_for(collect(), timeout)


async def next_event(iterator, timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(iterator.__anext__(), timeout)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.002)


def text(events: list[Any], index: int = 0) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta) and e.index == index)


@pytest_asyncio.fixture(loop_scope="function",
                        params=["plain", "overlapped", "fed", "multistep"])
async def make(request, monkeypatch):
    """Harnesses whose scheduler runs plain steps, or overlaps each step with turning the
    previous one into text (as on a GPU), the step's tokens coming to the host first or
    (fed) staying on the device for the next step, or (multistep) three steps queued at a
    time, fed on the device."""
    if request.param == "multistep":
        monkeypatch.setattr(scheduler_module, "MULTI_STEP_ROWS", 1)
    made: list[Harness] = []

    def factory(script: list[int] | None = None, max_context: int = 1000,
                **kw: Any) -> Harness:
        skill = ScriptedSkill(script or [1, 2, 3], max_context)
        skill.overlap_steps = request.param != "plain"
        skill.feeds_tokens = request.param in ("fed", "multistep")
        skill.decode_steps = 3 if request.param == "multistep" else 1
        harness = Harness(skill, **kw)
        made.append(harness)
        return harness

    yield factory
    for harness in made:  # stop the worker while the event loop still runs
        harness.skill.gate.set()
        await asyncio.to_thread(harness.scheduler.stop)


async def test_request_streams_prompt_info_deltas_and_finished(make) -> None:
    h = make([1, 2, 3])
    _, stream = h.submit([4, 5])
    events = await drain(stream)
    assert isinstance(events[0], PromptInfo)
    assert events[0].prompt_tokens == 2
    assert isinstance(events[-1], Finished)
    assert (events[-1].prompt_tokens, events[-1].completion_tokens) == (2, 3)
    assert text(events) == "alpha beta gamma"
    deltas = [e for e in events if isinstance(e, Delta)]
    assert deltas[-1].finish_reason == "stop"
    assert h.skill.prefills == [[4, 5]]
    assert h.skill.released == [0]


async def test_max_tokens_finishes_length(make) -> None:
    h = make([1, 2, 3, 4, 5])
    _, stream = h.submit([4], max_tokens=2)
    events = await drain(stream)
    assert text(events) == "alpha beta"
    assert events[-1].completion_tokens == 2
    assert [e for e in events if isinstance(e, Delta)][-1].finish_reason == "length"


async def test_n_2_yields_two_indices(make) -> None:
    h = make([1, 2])
    _, stream = h.submit([4], n=2)
    events = await drain(stream)
    assert {e.index for e in events if isinstance(e, Delta)} == {0, 1}
    assert text(events, 0) == text(events, 1) == "alpha beta"
    assert events[-1].completion_tokens == 4
    assert sorted(h.skill.released) == [0, 1]   # the prefilled state and its fork


async def test_abort_stops_a_running_request_and_frees_its_slot(make) -> None:
    h = make([1, 2, 3], max_concurrent=1)
    h.skill.step_delay = 0.002
    rid, stream = h.submit([ENDLESS], max_tokens=100_000)
    events = aiter(stream)
    assert isinstance(await next_event(events), PromptInfo)
    assert isinstance(await next_event(events), Delta)
    h.scheduler.abort(rid)
    rest = [e async for e in _bounded(events)]
    assert not any(isinstance(e, Finished) for e in rest)
    assert h.skill.released == [0]
    await wait_until(lambda: h.scheduler.running == 0)
    # The only slot is free again.
    _, second = h.submit([4])
    assert text(await drain(second)) == "alpha beta gamma"


async def _bounded(iterator, timeout: float = 5.0):
    while True:
        try:
            yield await asyncio.wait_for(iterator.__anext__(), timeout)
        except StopAsyncIteration:
            return


async def test_abort_of_a_queued_request_closes_it_without_prefill(make) -> None:
    h = make([1], max_concurrent=1)
    h.skill.gate.clear()
    _, first = h.submit([ENDLESS], max_tokens=100_000)
    first_events = aiter(first)
    assert isinstance(await next_event(first_events), PromptInfo)
    rid, queued = h.submit([5])
    h.scheduler.abort(rid)
    h.skill.gate.set()
    h.scheduler.abort("req-0")
    assert await drain(queued) == []
    assert [5] not in h.skill.prefills


async def test_max_concurrent_holds_back_the_next_request(make) -> None:
    h = make([1, 2], max_concurrent=1)
    h.skill.gate.clear()
    _, first = h.submit([4])
    _, second = h.submit([5])
    first_events = aiter(first)
    assert isinstance(await next_event(first_events), PromptInfo)
    await asyncio.sleep(0.05)
    assert h.skill.prefills == [[4]]            # the second waits for the slot
    assert h.scheduler.queue_depth == 1
    h.skill.gate.set()
    rest = [e async for e in _bounded(first_events)]
    assert isinstance(rest[-1], Finished)
    second_events = await drain(second)
    assert isinstance(second_events[-1], Finished)
    assert h.skill.prefills == [[4], [5]]
    assert max(h.skill.decode_calls) == 1       # never two sequences in one step


async def test_concurrent_requests_share_decode_steps(make) -> None:
    h = make([1, 2, 3, 4], max_concurrent=4)
    h.skill.gate.clear()
    streams = [h.submit([i + 1])[1] for i in range(3)]
    await asyncio.sleep(0.05)
    h.skill.gate.set()
    results = await asyncio.gather(*(drain(s) for s in streams))
    assert all(text(r) == "alpha beta gamma delta" for r in results)
    assert max(h.skill.decode_calls) >= 2


async def test_priority_order_is_honoured_when_saturated(make) -> None:
    h = make([1], max_concurrent=1)
    h.skill.gate.clear()
    _, blocker = h.submit([6], max_tokens=3)
    blocker_events = aiter(blocker)
    assert isinstance(await next_event(blocker_events), PromptInfo)
    _, low = h.submit([2], priority=2)
    _, normal = h.submit([3], priority=1)
    _, high = h.submit([4], priority=0)
    h.skill.gate.set()
    await asyncio.gather(drain(low), drain(normal), drain(high))
    assert h.skill.prefills == [[6], [4], [3], [2]]


async def test_expired_deadline_fails_without_prefill(make) -> None:
    h = make([1, 2])
    _, stream = h.submit([4], deadline=time.monotonic() - 1)
    with pytest.raises(DeadlineExceeded):
        await drain(stream)
    assert h.skill.prefills == []
    _, ok = h.submit([5], deadline=time.monotonic() + 60)
    assert text(await drain(ok)) == "alpha beta"


async def test_failing_decode_fails_its_members_and_the_loop_goes_on(make) -> None:
    h = make([1, 2, 3])
    _, bad = h.submit([POISON])
    events: list[Any] = []
    with pytest.raises(ModelError) as info:
        async for event in _bounded(aiter(bad)):
            events.append(event)
    assert "decode blew up" in info.value.message
    assert isinstance(events[0], PromptInfo)
    assert not any(isinstance(e, Finished) for e in events)
    assert h.skill.released == [0]
    assert h.scheduler.alive
    _, good = h.submit([4])
    assert text(await drain(good)) == "alpha beta gamma"


async def test_failing_step_spares_requests_that_were_not_in_it(make) -> None:
    h = make([1, 2, 3], max_concurrent=1)
    h.skill.gate.clear()
    _, bad = h.submit([POISON])
    _, waiting = h.submit([4])
    h.skill.gate.set()
    with pytest.raises(ModelError):
        await drain(bad)
    assert text(await drain(waiting)) == "alpha beta gamma"


async def test_full_queue_raises_overloaded(make) -> None:
    h = make([1], max_concurrent=1, max_queue=1)
    h.skill.gate.clear()
    _, running = h.submit([4])
    assert isinstance(await next_event(aiter(running)), PromptInfo)
    h.submit([5])
    with pytest.raises(Overloaded) as info:
        h.submit([6])
    assert info.value.headers["Retry-After"] == "1"
    h.skill.gate.set()
    assert [6] not in h.skill.prefills


async def test_stop_cancels_waiting_requests(make) -> None:
    h = make([1], max_concurrent=1)
    h.skill.gate.clear()
    _, running = h.submit([ENDLESS], max_tokens=100_000)
    running_events = aiter(running)
    assert isinstance(await next_event(running_events), PromptInfo)
    _, waiting = h.submit([5])
    h.skill.gate.set()
    await asyncio.to_thread(h.scheduler.stop)
    with pytest.raises(Cancelled):
        await drain(waiting)
    assert not h.scheduler.alive


async def test_context_limit_keeps_the_last_token_text(make) -> None:
    # Two prompt tokens and a 5-token context leave room for three generated tokens; the
    # third one ends the sequence with "length" and its text must still be delivered.
    h = make([1, 2, 3, 4, 5], max_context=5)
    _, stream = h.submit([4, 5])
    events = await drain(stream)
    assert events[-1].completion_tokens == 3
    assert [e for e in events if isinstance(e, Delta)][-1].finish_reason == "length"
    assert text(events) == "alpha beta gamma"


async def test_penalties_do_not_count_the_prompt_twice_against_the_context(make) -> None:
    # Three prompt tokens in a 10-token context leave room for 7; the script stops after 5.
    h = make([1, 2, 3, 4, 5], max_context=10)
    _, stream = h.submit([4, 5, 6], max_tokens=7, presence_penalty=0.5)
    events = await drain(stream)
    assert text(events) == "alpha beta gamma delta epsilon"
    assert [e for e in events if isinstance(e, Delta)][-1].finish_reason == "stop"


async def test_full_queue_sheds_the_newest_lower_priority_request(make) -> None:
    h = make([1], max_concurrent=1, max_queue=2)
    h.skill.gate.clear()
    _, blocker = h.submit([6], max_tokens=3)
    assert isinstance(await next_event(aiter(blocker)), PromptInfo)
    _, low_old = h.submit([2], priority=2)
    _, low_new = h.submit([3], priority=2)
    _, high = h.submit([4], priority=0)
    with pytest.raises(Overloaded):
        await drain(low_new)
    with pytest.raises(Overloaded):   # equal priority is refused, never swapped in
        h.submit([5], priority=2)
    h.skill.gate.set()
    await asyncio.gather(drain(blocker), drain(low_old), drain(high))
    assert h.skill.prefills == [[6], [4], [2]]


async def test_long_prompts_are_prefilled_between_decode_steps(make) -> None:
    h = make([1, 2, 3, 4, 5, 6], max_concurrent=8)
    h.skill.gate.clear()
    _, running = h.submit([ENDLESS], max_tokens=40)
    events = aiter(running)
    assert isinstance(await next_event(events), PromptInfo)
    long_prompts = [h.submit([2] * 400, max_tokens=2)[1] for _ in range(3)]
    h.skill.gate.set()
    await asyncio.gather(*(drain(s) for s in long_prompts))
    # Budget 512 prompt tokens per step: one 400-token prompt, then a decode step, then the next.
    assert [len(p) for p in h.skill.prefills] == [1, 400, 400, 400]
    timeline = "".join(h.skill.timeline)
    first_long = timeline.index("p", 1)
    assert "pp" not in timeline[first_long:], timeline   # a decode step between prefills
    await drain(running)


async def _queue_behind_a_running_request(h: Harness, prompts: list[list[int]]):
    """Hold the loop in a decode step while ``prompts`` queue, so they are admitted
    together in the next round."""
    h.skill.gate.clear()
    rid, first = h.submit([ENDLESS], max_tokens=100_000)
    first_events = aiter(first)
    assert isinstance(await next_event(first_events), PromptInfo)
    streams = [h.submit(p)[1] for p in prompts]
    h.skill.gate.set()
    return rid, streams


async def test_newcomers_are_prefilled_together_up_to_the_skill_batch(make) -> None:
    h = make([1, 2], max_concurrent=8)
    h.skill.max_prefill_batch = 2
    rid, streams = await _queue_behind_a_running_request(h, [[4], [5], [6]])
    results = [await drain(s) for s in streams]
    h.scheduler.abort(rid)
    assert all(text(events) == "alpha beta" for events in results)
    # One prefill for the running request, then [4]+[5] together and [6] alone.
    assert h.skill.timeline.count("p") == 3
    assert h.skill.prefills == [[ENDLESS], [4], [5], [6]]


async def test_a_failing_group_prefill_fails_only_the_bad_prompt(make) -> None:
    h = make([1, 2], max_concurrent=8)
    h.skill.max_prefill_batch = 4
    rid, streams = await _queue_behind_a_running_request(h, [[4], [PREFILL_POISON], [5]])
    good, bad, other = streams
    assert text(await drain(good)) == text(await drain(other)) == "alpha beta"
    with pytest.raises(ModelError, match="prefill blew up"):
        await drain(bad)
    h.scheduler.abort(rid)


async def _seventeen_streaming(h: Harness) -> None:
    """17 endless sequences running: newcomers below 17/8 of them are then held back."""
    h.skill.max_prefill_batch = 64
    h.skill.gate.clear()
    _, first = h.submit([ENDLESS], max_tokens=100_000)
    assert isinstance(await next_event(aiter(first)), PromptInfo)
    for _ in range(16):
        h.submit([ENDLESS], max_tokens=100_000)
    h.skill.gate.set()
    await wait_until(lambda: h.scheduler.running == 17)


def _mark(h: Harness) -> int:
    with h.skill.lock:
        return len(h.skill.timeline)


def _pause(h: Harness) -> int:
    """Hold the running sequences in their decode step (so a loaded machine cannot fit
    extra steps in while newcomers are submitted) and mark the timeline."""
    h.skill.gate.clear()
    return _mark(h)


def _decode_steps_until_prefill(h: Harness, mark: int) -> int:
    """Decode steps between ``mark`` and the first prefill after it."""
    with h.skill.lock:
        after = h.skill.timeline[mark:]
    return after[:after.index("p")].count("d")


async def test_newcomers_wait_a_few_steps_to_share_one_prefill(make) -> None:
    h = make([1, 2], max_concurrent=64)
    h.skill.prefill_wait_steps = 5
    await _seventeen_streaming(h)
    mark = _mark(h)
    a, b = h.submit([4]), h.submit([5])
    assert [text(await drain(s)) for _, s in (a, b)] == ["alpha beta", "alpha beta"]
    # Both newcomers in one prefill call, held back for the five decode steps.
    assert h.skill.timeline.count("p") == 3
    assert h.skill.prefills[-2:] == [[4], [5]]
    assert _decode_steps_until_prefill(h, mark) >= 5


async def test_a_high_priority_newcomer_is_not_held_back(make) -> None:
    h = make([1, 2], max_concurrent=64)
    h.skill.prefill_wait_steps = 1000
    await _seventeen_streaming(h)
    mark = _pause(h)
    _, stream = h.submit([4], priority=0)
    h.skill.gate.set()
    assert text(await drain(stream)) == "alpha beta"
    # The steps under way, at most (one, or a multistep group).
    assert _decode_steps_until_prefill(h, mark) <= 2 * h.skill.decode_steps


async def test_newcomers_reaching_an_eighth_of_the_running_are_not_held_back(make) -> None:
    h = make([1, 2], max_concurrent=64)
    h.skill.prefill_wait_steps = 1000
    await _seventeen_streaming(h)
    mark = _pause(h)
    streams = [h.submit([n])[1] for n in (4, 5, 6)]      # 3 >= 17/8
    h.skill.gate.set()
    assert [text(await drain(s)) for s in streams] == ["alpha beta"] * 3
    assert h.skill.prefills[-3:] == [[4], [5], [6]]
    assert _decode_steps_until_prefill(h, mark) <= 2 * h.skill.decode_steps


async def test_newcomers_wait_even_when_they_fill_the_free_slots(make) -> None:
    """In a closed loop at capacity the waiting always fill the free slots; admitting
    them at once would prefill one or two at every step."""
    h = make([1, 2], max_concurrent=18)
    h.skill.prefill_wait_steps = 6
    await _seventeen_streaming(h)
    mark = _mark(h)
    _, stream = h.submit([4])
    assert text(await drain(stream)) == "alpha beta"
    assert _decode_steps_until_prefill(h, mark) >= 6


async def test_a_prompt_over_the_budget_is_prefilled_in_parts_between_decode_steps(
        make) -> None:
    h = make([1, 2, 3], max_context=2000, max_concurrent=8)
    h.skill.chunked_prefill = True
    h.skill.gate.clear()
    _, running = h.submit([ENDLESS], max_tokens=40)
    events = aiter(running)
    assert isinstance(await next_event(events), PromptInfo)
    _, long_prompt = h.submit([2] * 1200, max_tokens=3)
    h.skill.gate.set()
    got = await drain(long_prompt)
    assert got[0] == PromptInfo(1200, None)            # the whole prompt, counted once
    assert text(got) == "alpha beta gamma"
    assert h.skill.parts == [512, 512, 176]            # the budget's worth a step, then the rest
    timeline = "".join(h.skill.timeline)
    between = "d" * h.skill.decode_steps         # (several steps at once: multistep)
    assert f"q{between}q{between}" in timeline and "qq" not in timeline, timeline
    await drain(running)


async def test_a_round_prefills_at_most_the_budget_while_a_prompt_goes_in_parts(
        make) -> None:
    """The part under way goes first; newcomers get what it leaves of the 512 tokens."""
    h = make([1, 2, 3], max_context=2000, max_concurrent=8)
    h.skill.chunked_prefill = True
    rounds: list[list[int]] = [[]]       # prompt tokens prefilled between decode steps
    skill = h.skill
    prefill, part, decode = skill.prefill, skill.prefill_part, skill.decode
    skill.prefill = lambda prompts, lp: rounds[-1].extend(map(len, prompts)) or prefill(
        prompts, lp)
    skill.prefill_part = lambda partial, ids: rounds[-1].append(len(ids)) or part(partial, ids)
    skill.decode = lambda *a, **kw: rounds.append([]) or decode(*a, **kw)
    skill.gate.clear()
    _, running = h.submit([ENDLESS], max_tokens=60)
    events = aiter(running)
    assert isinstance(await next_event(events), PromptInfo)
    _, long_prompt = h.submit([2] * 1200, max_tokens=3)
    short = [h.submit([3] * 200, max_tokens=2)[1] for _ in range(4)]
    skill.gate.set()
    assert text(await drain(long_prompt)) == "alpha beta gamma"
    for stream in short:
        assert text(await drain(stream)) == "alpha beta"
    assert max(map(sum, rounds)) <= 512, rounds
    assert sorted(n for r in rounds for n in r) == [1, 176, *[200] * 4, 512, 512]
    h.scheduler.abort("req-0")
    await drain(running)


async def test_a_request_cancelled_while_its_prompt_is_in_parts_stops_there(make) -> None:
    h = make([1, 2, 3], max_context=20_000, max_concurrent=8)
    h.skill.chunked_prefill = True
    h.skill.step_delay = 0.01
    _, running = h.submit([ENDLESS], max_tokens=10_000)
    events = aiter(running)
    assert isinstance(await next_event(events), PromptInfo)
    rid, long_prompt = h.submit([2] * 5000, max_tokens=3)
    await wait_until(lambda: len(h.skill.parts) >= 1)
    assert h.scheduler.running == 2                    # it holds its place while in parts
    h.scheduler.abort(rid)
    assert [e for e in await drain(long_prompt) if isinstance(e, Delta)] == []
    fed = len(h.skill.parts)
    await wait_until(lambda: h.scheduler.running == 1)
    await asyncio.sleep(0.05)
    assert len(h.skill.parts) == fed < 10              # no part fed after the cancel
    assert h.skill.prefills == [[ENDLESS]]             # and it never started
    h.scheduler.abort("req-0")
    await drain(running)


async def test_prompt_logprobs_keep_a_long_prompt_whole(make) -> None:
    h = make([1], max_concurrent=8)
    h.skill.chunked_prefill = True
    await drain(h.submit([2] * 600, max_tokens=1, prompt_logprobs=0)[1])
    assert h.skill.parts == [] and [len(p) for p in h.skill.prefills] == [600]


async def test_prompts_in_parts_count_against_max_concurrent(make) -> None:
    """With only prompts in parts admitted (none decoding yet), a third request must still
    wait for a free place: two places, three long prompts."""
    h = make([1, 2, 3], max_context=2000, max_concurrent=2)
    h.skill.chunked_prefill = True
    seen: list[int] = []
    part = h.skill.prefill_part
    h.skill.prefill_part = lambda partial, ids: seen.append(h.scheduler.running) or part(
        partial, ids)
    streams = [h.submit([2] * 1200, max_tokens=3)[1] for _ in range(3)]
    for stream in streams:
        assert text(await drain(stream)) == "alpha beta gamma"
    assert max(seen) == 2 and len(seen) == 6           # two parts of each prompt


async def test_a_deadline_passing_between_parts_ends_the_prefill_with_504(make) -> None:
    h = make([1, 2, 3], max_context=20_000, max_concurrent=8)
    h.skill.chunked_prefill = True
    slow = h.skill.prefill_part
    h.skill.prefill_part = lambda partial, ids: time.sleep(0.05) or slow(partial, ids)
    _, stream = h.submit([2] * 5000, max_tokens=3, deadline=time.monotonic() + 0.12)
    with pytest.raises(DeadlineExceeded):
        await drain(stream)
    assert len(h.skill.parts) < 9                     # stopped before the prompt was in
    assert h.skill.prefills == [] and h.scheduler.running == 0


async def test_fed_steps_are_queued_before_the_tokens_they_take_reach_the_host() -> None:
    """With tokens fed on the device, step t is queued before step t-1's tokens are known:
    an end token costs one step for nothing (its result is dropped), an end by max_tokens
    is known in advance and costs none."""
    skill = ScriptedSkill([1, 2, 3])
    skill.overlap_steps = skill.feeds_tokens = True
    h = Harness(skill)
    try:
        _, stream = h.submit([4, 5])
        events = await drain(stream)
        assert text(events) == "alpha beta gamma"
        assert events[-1].completion_tokens == 3
        assert skill.decode_calls == [1, 1, 1, 1] and skill.fed == [1, 1, 1]
        _, stream = h.submit([4, 5], max_tokens=3)
        assert text(await drain(stream)) == "alpha beta gamma"
        assert skill.decode_calls[4:] == [1, 1] and skill.fed[3:] == [1]
    finally:
        await asyncio.to_thread(h.scheduler.stop)


async def test_multistep_groups_steps_and_sends_one_event_a_sequence_for_each_group(
        monkeypatch) -> None:
    """Three steps queued at a time, fed on the device: a 7-token reply is the prefill's
    token and two groups of three steps, none past max_tokens; each group reaches the
    client as one delta."""
    monkeypatch.setattr(scheduler_module, "MULTI_STEP_ROWS", 1)
    skill = ScriptedSkill([1, 2, 3, 4, 5, 6, 1])
    skill.overlap_steps = skill.feeds_tokens = True
    skill.decode_steps = 3
    h = Harness(skill)
    try:
        _, stream = h.submit([4, 5], max_tokens=7)
        events = await drain(stream)
        assert text(events) == "alpha beta gamma delta epsilon zeta alpha"
        assert skill.decode_calls == [1] * 6 and skill.fed == [1] * 5
        deltas = [e for e in events if isinstance(e, Delta)]
        assert [len(d.tokens) for d in deltas] == [1, 3, 3]
        assert deltas[-1].finish_reason == "length"
    finally:
        await asyncio.to_thread(h.scheduler.stop)


class _Guide:
    """Stands for a grammar matcher: records the tokens it is advanced by."""

    def __init__(self) -> None:
        self.tokens: list[int] = []


class GuidedSkill(ScriptedSkill):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guides: list[Any] = []              # weak references to every guide made
        self.guided_rows: list[int] = []         # picks with a guide, per sample call

    def guide(self, constraint: Any) -> _Guide:
        import weakref

        made = _Guide()
        self.guides.append(weakref.ref(made))
        return made

    def sample(self, logits: Any, picks: list[Pick]) -> list[TokenChoice]:
        choices = super().sample(logits, picks)
        self.guided_rows.append(sum(p.grammar is not None for p in picks))
        for pick, choice in zip(picks, choices, strict=True):
            if pick.grammar is not None:
                pick.grammar.tokens.append(choice.token_id)
        return choices


@pytest.mark.parametrize("end", ["finish", "abort"])
async def test_a_constrained_sequence_carries_its_guide_and_releases_it(end) -> None:
    import gc

    from hfserve.types import Constraint

    skill = GuidedSkill([1, 2, 3])
    # a batch with a guided sequence steps without overlap: no step is fed on the device
    skill.overlap_steps = skill.feeds_tokens = True
    h = Harness(skill)
    try:
        constraint = Constraint("regex", "a+")
        if end == "finish":
            _, guided = h.submit([4], n=2, constraint=constraint)
            _, plain = h.submit([5])
            assert text(await drain(guided), 1) == "alpha beta gamma"
            assert text(await drain(plain)) == "alpha beta gamma"
            assert max(skill.guided_rows) == 2   # each choice its own guide, in one batch
        else:
            skill.step_delay = 0.002
            rid, guided = h.submit([ENDLESS], max_tokens=100_000, constraint=constraint)
            events = aiter(guided)
            assert isinstance(await next_event(events), PromptInfo)
            assert isinstance(await next_event(events), Delta)
            h.scheduler.abort(rid)
            [e async for e in _bounded(events)]
            await wait_until(lambda: h.scheduler.running == 0)
        assert skill.guides and not skill.fed
        gc.collect()
        assert [ref() for ref in skill.guides] == [None] * len(skill.guides)
    finally:
        skill.gate.set()
        await asyncio.to_thread(h.scheduler.stop)
