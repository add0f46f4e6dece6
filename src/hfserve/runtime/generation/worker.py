"""What every generation worker shares: one thread per model, a bounded priority queue,
admission between steps, cancellation, per-request event streams, and turning sampled tokens
into text deltas. Subclasses supply how a request starts and how one step advances."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hfserve import metrics
from hfserve.errors import (
    Cancelled,
    DeviceOutOfMemory,
    HFServeError,
    ModelError,
)
from hfserve.runtime import admission
from hfserve.runtime.events import Delta, Finished, PromptInfo  # noqa: F401 - re-exported
from hfserve.runtime.generation.sequence import Sequence
from hfserve.runtime.generation.stream import EventStream, let_loop_write
from hfserve.skills.base import TextGenerator
from hfserve.types import SamplingParams, TokenChoice  # noqa: F401


@dataclass
class GenerationRequest:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    n: int = 1
    priority: int = 1                    # 0 high, 1 normal, 2 low
    deadline: float | None = None        # time.monotonic() value
    adapter: str | None = None           # the LoRA adapter it generates with
    # The model inputs besides the ids that the prompt's media became (a vision-language
    # model's pixel values, as arrays), made with the ids off the event loop; None: none.
    media: dict[str, Any] | None = None


@dataclass(eq=False)          # identity: a request is itself, and hashable
class Active:
    request: GenerationRequest
    stream: EventStream
    seqs: list[Sequence] = field(default_factory=list)
    cancelled: bool = False
    # A prompt prefilled in parts: how many of its tokens are in, and the skill's partial
    # prefill holding them.
    prefilled: int = 0
    partial: Any = None


class GenerationWorker(ABC):
    # Prompt tokens prefilled between two decode steps while others stream (None: no cap).
    prefill_budget: int | None = None
    # Let the event loop write pushed tokens before the next step (for engines whose step
    # holds the interpreter lock).
    yield_to_loop: bool = False
    # Called by the loop's thread when what it pushed should go out: after newcomers' first
    # tokens and after each round of its loop (the model process holds the events pushed
    # in between and sends them together).
    flush_events: Callable[[], None] = staticmethod(lambda: None)
    # False in a model process: sequences without stop strings or logprobs send their
    # tokens, and the server process turns them into text (``runtime/generation/detokenizer.py``).
    detokenizes: bool = True
    # The skill lives in this process (``between_steps`` reaches it); a model process's
    # stand-in (``runtime/process/proxy.py``) says False.
    runs_here: bool = True

    def __init__(self, name: str, skill: TextGenerator, *, max_concurrent: int,
                 max_queue: int,
                 on_out_of_memory: Callable[[BaseException], None] = lambda exc: None,
                 executor: Executor | None = None) -> None:
        self.name = name
        self.skill = skill
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.on_out_of_memory = on_out_of_memory
        self._waiting: list[tuple[int, int, Active]] = []
        self._running: list[Active] = []
        # Admitted requests whose long prompt is being prefilled in parts between steps.
        self._parts: list[Active] = []
        self._by_id: dict[str, Active] = {}
        self._order = itertools.count()
        # Calls to run on the loop's thread between two steps (``between_steps``).
        self._calls: list[tuple[Callable[[], Any], Future]] = []
        self._cond = threading.Condition()
        self._stopped = False
        self.alive = True
        # The loop runs on the model's own thread (the one that loaded it) when given one.
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix=f"gen-{name}")
        self._done = self._executor.submit(self._loop)

    # --- called from the event loop ------------------------------------------------
    def submit(self, request: GenerationRequest, stream: EventStream) -> None:
        with self._cond:
            if len(self._waiting) >= self.max_queue and not self._shed(request.priority):
                raise admission.refused(self.name, len(self._waiting))
            active = Active(request, stream)
            self._by_id[request.request_id] = active
            heapq.heappush(self._waiting, (request.priority, next(self._order), active))
            metrics.QUEUE_DEPTH.labels(self.name).set(len(self._waiting))
            self._cond.notify()

    def _shed(self, priority: int) -> bool:
        """Drop the newest waiting request of a lower priority (caller holds the lock)."""
        victim = admission.victim(self._waiting, priority, lambda entry: (entry[0], entry[1]))
        if victim is None:
            return False
        self._waiting.remove(victim)
        heapq.heapify(self._waiting)
        active = victim[2]
        self._by_id.pop(active.request.request_id, None)
        active.stream.fail(admission.shed(self.name))
        return True

    def between_steps(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on the loop's thread between two steps (what changes the skill under
        running sequences, e.g. loading a LoRA adapter); its future holds the result."""
        future: Future = Future()
        with self._cond:
            if self._stopped or not self.alive:
                future.set_exception(RuntimeError("the generation loop has stopped"))
                return future
            self._calls.append((fn, future))
            self._cond.notify()
        return future

    def abort(self, request_id: str) -> None:
        with self._cond:
            active = self._by_id.get(request_id)
            if active is not None:
                active.cancelled = True
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        try:
            self._done.result(timeout=10)
        except Exception:  # the loop logs nothing worth re-raising at shutdown
            pass
        if self._own_executor:
            self._executor.shutdown(wait=False)

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return sum(len(a.seqs) for a in self._running) + sum(a.request.n for a in self._parts)

    # --- worker thread -------------------------------------------------------------
    def _loop(self) -> None:
        self.skill.worker_init()
        while True:
            with self._cond:
                while not self._stopped and not self._waiting and not self._running \
                        and not self._parts and not self._calls:
                    self._cond.wait()
                if self._stopped:
                    break
                calls, self._calls = self._calls, []
                newcomers = self._admit()
            for fn, future in calls:
                try:
                    future.set_result(fn())
                except Exception as exc:  # the caller hears of it; the loop goes on
                    future.set_exception(exc)
            if newcomers:
                self._start_all(newcomers)
                self.flush_events()        # first tokens out before the next step's wait
            self._drop_cancelled()
            if self._parts:
                self._continue_parts()
            if self._running:
                self._guard(list(self._running), self._step)
            if not self._running:
                self._guard([], self._settle)
            if self.yield_to_loop:
                let_loop_write([a.stream for a in [*newcomers, *self._running]])
            metrics.RUNNING.labels(self.name).set(self.running)
            self.flush_events()
        for active in self._running + self._parts + [a for _, _, a in self._waiting]:
            active.stream.fail(Cancelled("server is shutting down"))
        for _, future in self._calls:
            future.set_exception(RuntimeError("the generation loop has stopped"))
        self.flush_events()
        self.alive = False

    def _guard(self, members: list[Active], fn, *args) -> None:
        """Run a stage; on failure fail only ``members`` and keep the loop alive."""
        try:
            fn(*args)
        except Exception as exc:  # a worker loop never dies
            self._fail(members, exc)

    def _fail(self, members: list[Active], exc: Exception) -> None:
        """End ``members`` with the error ``exc`` means for a client; report running out
        of device memory."""
        error = exc if isinstance(exc, HFServeError) else ModelError(
            f"generation failed: {type(exc).__name__}: {exc}")
        if self.skill.is_out_of_memory(exc):
            error = DeviceOutOfMemory(f"model {self.name!r} ran out of device memory and "
                                      "is being moved; retry shortly")
            self.alive = False
            self.on_out_of_memory(exc)
        for active in members:
            self._retire(active, error)

    def _admit(self) -> list[Active]:
        admitted: list[Active] = []
        now = time.monotonic()
        room = self._prefill_room()
        while self._waiting:
            active = self._waiting[0][2]
            if self.running + sum(a.request.n for a in admitted) + active.request.n \
                    > self.max_concurrent and (self._running or self._parts or admitted):
                break
            if room is not None and (admitted or self._parts) and (
                    self._running or self._parts) and sum(
                    len(a.request.prompt_ids) for a in admitted) + len(
                    active.request.prompt_ids) > room:
                break  # the rest wait a step, so running streams keep flowing
            heapq.heappop(self._waiting)
            if active.cancelled:
                self._by_id.pop(active.request.request_id, None)
                active.stream.close()
            elif admission.past(active.request.deadline, now):
                self._by_id.pop(active.request.request_id, None)
                active.stream.fail(admission.expired(self.name))
            else:
                admitted.append(active)
        metrics.QUEUE_DEPTH.labels(self.name).set(len(self._waiting))
        return admitted

    def _prefill_room(self) -> int | None:
        """Prompt tokens the newcomers of a round may bring while others run (None: any)."""
        return self.prefill_budget

    def _start_all(self, newcomers: list[Active]) -> None:
        """Begin the requests admitted this round; a failure fails only its own request."""
        for active in newcomers:
            self._guard([active], self._start, active)

    @abstractmethod
    def _start(self, active: Active) -> None:
        """Begin a request (prefill, or hand it to the engine); add it to the running set."""

    @abstractmethod
    def _step(self) -> None:
        """Advance every running request by one token (or one engine step)."""

    def _continue_parts(self) -> None:  # noqa: B027 - optional hook
        """Prefill the next part of the prompts in ``_parts``."""

    def _settle(self) -> None:  # noqa: B027 - optional hook
        """Nothing runs any more: let the engine release what ended requests held."""

    @abstractmethod
    def _on_sequence_end(self, seq: Sequence) -> None:
        """Free what a finished or abandoned sequence holds (``seq.state``)."""

    def _emit(self, active: Active, choices: list[tuple[Sequence, TokenChoice]]) -> None:
        """Append sampled tokens to their sequences and stream the resulting text. The
        caller counts the tokens, once per step for all requests (a counter update costs
        0.5-1 us; one per request and step was 0.1-0.3 ms of every step at 256 streams)."""
        events: list[Delta] = []
        if len(choices) > len(active.seqs):    # several steps': each sequence's together
            grouped: dict[Sequence, list[TokenChoice]] = {}
            for seq, choice in choices:
                grouped.setdefault(seq, []).append(choice)
            items = list(grouped.items())
        else:
            items = [(seq, [choice]) for seq, choice in choices]
        for seq, picked in items:
            if seq.finished:
                continue
            if seq.params.logprobs is not None:
                for choice in picked:
                    self._name(choice)
            delta = seq.extend(picked)
            if delta is not None:
                events.append(delta)
            if not seq.finished and seq.prompt_len + seq.generated >= self.skill.max_context:
                events.append(seq.finish("length"))
            if seq.finished:
                self._on_sequence_end(seq)
        if not self._push(active, events):
            return
        for seq in active.seqs:
            if not seq.finished:
                return
        self._finish_request(active)

    def _push(self, active: Active, events: list[Delta]) -> bool:
        """Send a request's new deltas; False when that ended the request (it failed)."""
        active.stream.push(events)
        return True

    def _count_completion(self, tokens: int) -> None:
        if tokens:
            metrics.TOKENS.labels(self.name, "completion").inc(tokens)

    def _new_sequence(self, active: Active, index: int, state: Any = None,
                      generator: Any = None) -> Sequence:
        req = active.request
        here = self.detokenizes or bool(req.params.stop) or req.params.logprobs is not None
        seq = Sequence(index=index, prompt_len=len(req.prompt_ids), params=req.params,
                       decode=self.skill.decode_tokens, eos_token_ids=self.skill.eos_token_ids,
                       state=state, generator=generator, prompt_ids=req.prompt_ids,
                       stream=self.skill.text_stream() if here else None, detokenize=here)
        active.seqs.append(seq)
        return seq

    def _name(self, choice: TokenChoice) -> None:
        """Fill in token texts for logprobs (decoded here, on the worker thread)."""
        choice.text = self.skill.token_text(choice.token_id)
        if choice.top is not None:
            choice.top_text = [(self.skill.token_text(i), lp) for i, lp in choice.top]

    def _finish_request(self, active: Active) -> None:
        completion = sum(len(s.token_ids) for s in active.seqs)
        active.stream.push([Finished(len(active.request.prompt_ids), completion)])
        self._retire(active, None)

    def _drop_cancelled(self) -> None:
        for active in [a for a in self._running + self._parts if a.cancelled]:
            self._retire(active, None)

    def _retire(self, active: Active, error: BaseException | None) -> None:
        for seq in active.seqs:
            seq.grammar = None
            if seq.state is not None:
                self._on_sequence_end(seq)
        if active in self._running:
            self._running.remove(active)
        if active in self._parts:
            self._parts.remove(active)
            active.partial = None
        self._by_id.pop(active.request.request_id, None)
        if error is not None:
            active.stream.fail(error)
        else:
            active.stream.close()
