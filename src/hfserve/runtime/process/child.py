"""The model process's side: load the skill, run its worker loop, and send events and metric
updates back over the pipe in batches."""

from __future__ import annotations

import queue
import sys
import threading
from typing import Any

from hfserve import metrics
from hfserve.errors import HFServeError, ModelError
from hfserve.runtime.generation.worker import GenerationRequest
from hfserve.runtime.process.protocol import ChildSpec, to_wire
from hfserve.skills.base import GenerativeSkill, Skill, TextGenerator


class _Outbox:
    """Everything the child sends goes through one thread, in batches: a step that
    advances 200 streams costs one pipe write, not 200. Counter increments are summed
    until the next write (a step adds tokens for each of its requests).

    Events the model loop's thread puts during one round of its loop are held and handed
    to the writer together at the round's end, and once newcomers have their first tokens
    (``end_round``): otherwise the writer, given the interpreter lock every millisecond,
    wakes for a few streams' events at a time, and each wake costs a pickling and a pipe
    write (a quarter of the model process at 256 streams)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self._counts: dict[tuple[str, tuple], float] = {}
        self._lock = threading.Lock()
        self._round: list[tuple] = []
        self._loop_thread: int | None = None
        threading.Thread(target=self._run, name="outbox", daemon=True).start()

    def put(self, item: tuple) -> None:
        if threading.get_ident() == self._loop_thread:
            self._round.append(item)
        else:
            self.items.put(item)

    def end_round(self) -> None:
        """Called by the model loop's thread after each round (and once newcomers have
        their first tokens): send what it put."""
        if self._loop_thread is None:
            self._loop_thread = threading.get_ident()
        if self._round:
            items, self._round = self._round, []
            self.items.put(("batch", items))

    def count(self, name: str, labels: tuple, value: float) -> None:
        with self._lock:
            key = (name, labels)
            first = not self._counts
            self._counts[key] = self._counts.get(key, 0.0) + value
        if first:
            self.items.put(None)      # wakes the writer; dropped from the batch

    def _run(self) -> None:
        while True:
            batch = [self.items.get()]
            while True:
                try:
                    batch.append(self.items.get_nowait())
                except queue.Empty:
                    break
            with self._lock:
                counts, self._counts = self._counts, {}
            batch = [part for item in batch if item is not None
                     for part in (item[1] if item[0] == "batch" else (item,))]
            batch.extend(("m", name, labels, "inc", value)
                         for (name, labels), value in counts.items())
            try:
                self.conn.send(batch)
            except (OSError, EOFError):  # the server went away; the child ends with it
                return


class _PipeStream:
    """The child's stand-in for an EventStream: events go to the parent's stream."""

    def __init__(self, request_id: str, outbox: _Outbox) -> None:
        self.request_id = request_id
        self.outbox = outbox
        self.closed = False

    def push(self, events: list[Any]) -> None:
        if events:
            self.outbox.put(("e", self.request_id, [to_wire(e) for e in events]))

    def fail(self, exc: BaseException) -> None:
        self.push([exc if isinstance(exc, HFServeError) else ModelError(str(exc))])
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put(("e", self.request_id, [None]))


class _ForwardedMetric:
    """The child's metrics are the server's: each update is sent along and applied there
    (prometheus_client's multiprocess mode would need its environment set before every
    import in every process)."""

    def __init__(self, name: str, outbox: _Outbox, labels: tuple = ()) -> None:
        self.name, self.outbox, self.label_values = name, outbox, labels
        self._children: dict[tuple, _ForwardedMetric] = {}

    def labels(self, *values: Any) -> _ForwardedMetric:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _ForwardedMetric(
                self.name, self.outbox, tuple(str(v) for v in values))
        return child

    def _send(self, method: str, value: float) -> None:
        self.outbox.put(("m", self.name, self.label_values, method, value))

    def inc(self, value: float = 1.0) -> None:
        self.outbox.count(self.name, self.label_values, value)

    def set(self, value: float) -> None:
        self._send("set", value)

    def observe(self, value: float) -> None:
        self._send("observe", value)


def _forward_metrics(outbox: _Outbox) -> None:
    from prometheus_client.metrics import MetricWrapperBase

    for name, value in list(vars(metrics).items()):
        if isinstance(value, MetricWrapperBase):
            setattr(metrics, name, _ForwardedMetric(name, outbox))


def child_main(conn: Any, child: ChildSpec) -> None:
    """Entry point of the model process."""
    import signal

    from hfserve.runtime.generation.pipeline_worker import PipelineWorker
    from hfserve.runtime.generation.scheduler import Scheduler
    from hfserve.runtime.lifecycle import heap

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the server decides when this ends
    # The model loop rarely lets go of the interpreter lock; hand it to the threads that
    # send events and take requests every millisecond rather than every five.
    sys.setswitchinterval(0.001)
    outbox = _Outbox(conn)
    skill = child.skill_class(child.spec)
    try:
        skill.placement = child.placement
        skill.worker_init()
        skill.load(child.placement)
    except Exception as exc:
        conn.send([("failed", f"{type(exc).__name__}: {exc}", skill.is_out_of_memory(exc))])
        return
    _forward_metrics(outbox)
    heap.settle()
    kind = Scheduler if isinstance(skill, GenerativeSkill) else PipelineWorker
    worker = kind(child.name, skill, max_concurrent=child.max_concurrent,
                  max_queue=child.max_queue,
                  on_out_of_memory=lambda exc: outbox.put(("oom", str(exc))))
    worker.flush_events = outbox.end_round
    worker.detokenizes = False   # the server process does (runtime/generation/detokenizer.py)
    outbox.put(("ready", _describe(skill)))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):   # the server is gone
            break
        if message[0] == "submit":
            request: GenerationRequest = message[1]
            stream = _PipeStream(request.request_id, outbox)
            try:
                worker.submit(request, stream)   # type: ignore[arg-type]
            except HFServeError as exc:
                stream.fail(exc)
        elif message[0] == "abort":
            worker.abort(message[1])
        elif message[0] == "stop":
            break
    worker.stop()
    skill.unload()


def _describe(skill: Skill) -> dict[str, Any]:
    text: TextGenerator = skill  # type: ignore[assignment]
    return {"placement": skill.placement, "info": skill.info(),
            "eos_token_ids": text.eos_token_ids, "max_context": text.max_context,
            "supports_prompt_logprobs": text.supports_prompt_logprobs,
            "supports_top_logprobs": text.supports_top_logprobs,
            "serves_adapters": text.serves_adapters}


# --- server side -------------------------------------------------------------------------

