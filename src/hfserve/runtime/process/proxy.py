"""A generation model in a process of its own: the skill and its worker loop (our scheduler or
an engine's pipeline worker) run in a spawned child; the server process keeps the tokenizer
and talks to the child over a pipe.

Why: a model loop holds the interpreter lock for most of every step (a GPU forward is
Python launching kernels; openvino-genai's ``step`` holds it for most of its 15-30 ms), so in
one process the event loop that reads requests and writes streamed tokens waits on it, and
tokens reach clients a step late. Apart, each side has its own lock and its own core. A
child that crashes takes only its model down: its requests fail with an error and the
server stays up.

Protocol (pickled tuples). Parent to child: ("submit", GenerationRequest),
("abort", request_id), ("stop",). Child to parent: one ("ready", info) or
("failed", text, out_of_memory) after loading, then lists of ("e", request_id, events)
(deltas among the events as plain tuples: ``to_wire``; a delta without text
carries tokens for the server to decode, ``runtime/generation/detokenizer.py``), ("m", metric,
labels, method, value) (counter increments summed between writes) and ("oom", text)."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

from hfserve import metrics
from hfserve.backends.placement import Placement
from hfserve.errors import ModelError, ModelUnavailable
from hfserve.runtime import admission
from hfserve.runtime.generation.detokenizer import Detokenizer
from hfserve.runtime.generation.sequence import Delta
from hfserve.runtime.generation.stream import EventStream
from hfserve.runtime.generation.worker import GenerationRequest
from hfserve.runtime.process.child import child_main
from hfserve.runtime.process.protocol import ChildSpec, from_wire
from hfserve.skills.base import Skill, TextGenerator
from hfserve.types import Constraint, ModelSpec

log = logging.getLogger("hfserve.worker_process")

_READY_TIMEOUT_S = 3600.0      # a first export of a large model can take long


class ProcessGenerator(TextGenerator):
    """Stands in for a generation skill in the server process: tokenizes here (with the
    skill's own text codec), generates in the child. ``load`` starts the child and waits
    until its model is loaded (or raises what failed, so placement falls back as for any
    skill)."""

    def __init__(self, spec: ModelSpec, skill_class: type[Skill], *, max_concurrent: int,
                 max_queue: int) -> None:
        super().__init__(spec)
        self.skill_class = skill_class
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.task = skill_class.task
        self.also_serves = skill_class.also_serves
        codec = skill_class.text_codec()
        if codec is None:
            raise TypeError(f"{skill_class.__name__} has no text codec to run in a process")
        self.codec = codec
        self.process: Any = None
        self.conn: Any = None
        self._info: dict[str, Any] = {}
        self._send_lock = threading.Lock()
        self.first_messages: list[tuple] = []

    def load(self, placement: Placement) -> None:
        child = ChildSpec(self.spec.name, self.skill_class, self.spec, placement,
                          max_concurrent=self.max_concurrent, max_queue=self.max_queue)
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        # Not a daemon: the model process may spawn its own (an export runs isolated). It
        # ends when told to, or when the pipe closes because the server is gone.
        self.process = context.Process(target=child_main, args=(theirs, child),
                                       name=f"hfserve-model-{self.spec.name}")
        self.process.start()
        theirs.close()
        try:
            # While the child loads.
            self.eos_token_ids = self.codec.load_tokenizer(
                self.spec, cache_dir=placement.options.cache_dir)
        except Exception:
            self.unload()
            raise
        reply = self._first_reply()
        if reply[0] == "failed":
            self.unload()
            oom = reply[2] and "out of memory" not in reply[1].lower()
            raise RuntimeError(f"out of memory: {reply[1]}" if oom else reply[1])
        described = reply[1]
        self.placement = described["placement"]
        self._info = described["info"]
        self.eos_token_ids = described["eos_token_ids"]
        self.max_context = described["max_context"]
        self.supports_prompt_logprobs = described["supports_prompt_logprobs"]
        self.supports_top_logprobs = described["supports_top_logprobs"]
        self.serves_adapters = described["serves_adapters"]

    def _first_reply(self) -> tuple:
        """Wait for "ready" or "failed"; keep anything sent with it for the worker."""
        while self.conn.poll(_READY_TIMEOUT_S):
            try:
                batch = self.conn.recv()
            except (EOFError, OSError):
                break
            for i, item in enumerate(batch):
                if item[0] in ("ready", "failed"):
                    self.first_messages = batch[i + 1:]
                    return item
        code = self.process.exitcode if self.process is not None else None
        return ("failed", f"the model process ended while loading (exit code {code})", False)

    # --- the text side, the skill's own codec -------------------------------------------
    def text_tokenizer(self) -> Any:
        return self.codec.tokenizer

    def encode_chat(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> list[int]:
        return self.codec.encode_chat(messages, options)

    def encode_chat_inputs(self, messages: list[dict[str, Any]], options: dict[str, Any]
                           ) -> tuple[list[int], dict[str, Any] | None]:
        return self.codec.encode_chat_inputs(messages, options)

    def encode_text(self, prompt: str) -> list[int]:
        return self.codec.encode_text(prompt)

    def decode_tokens(self, token_ids: list[int]) -> str:
        return self.codec.decode_tokens(token_ids)

    def token_text(self, token_id: int) -> str:
        return self.codec.token_text(token_id)

    def text_stream(self) -> Any:
        return self.codec.text_stream()

    def check_token_ids(self, token_ids: list[int], param: str = "prompt") -> None:
        self.codec.check_token_ids(token_ids, param)

    def check_constraint(self, constraint: Constraint | None) -> None:
        self.codec.check_constraint(constraint)

    @property
    def tool_parser(self) -> str:
        return self.codec.tool_parser

    def info(self) -> dict[str, Any]:
        pid = self.process.pid if self.process is not None else None
        return {**self._info, "process": pid}

    def send(self, message: tuple) -> None:
        """To the child, from any thread (a pipe is not safe for two writers at once)."""
        with self._send_lock:
            if self.conn is None:
                raise OSError("the model process is gone")
            self.conn.send(message)

    def unload(self) -> None:
        if self.conn is not None:
            try:
                self.send(("stop",))
            except (OSError, EOFError, ValueError):
                pass
        if self.process is not None:
            self.process.join(timeout=15)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=5)
        self.process = None
        if self.conn is not None:
            self.conn.close()      # the reader, if any, sees the end as it would an exit
            self.conn = None

    def worker(self, name: str, on_out_of_memory: Callable[[BaseException], None],
               on_exit: Callable[[str], None] = lambda reason: None) -> ProcessWorker:
        return ProcessWorker(name, self, max_queue=self.max_queue,
                             on_out_of_memory=on_out_of_memory, on_exit=on_exit)


class ProcessWorker:
    """The server-side face of the child's worker: the same calls as a GenerationWorker
    (submit, abort, stop, alive, queue_depth, running)."""

    # The skill is in the child: what changes it (LoRA adapters) takes a reload.
    runs_here = False

    def __init__(self, name: str, generator: ProcessGenerator, *, max_queue: int,
                 on_out_of_memory: Callable[[BaseException], None],
                 on_exit: Callable[[str], None]) -> None:
        self.name = name
        self.generator = generator
        self.conn = generator.conn
        self.max_queue = max_queue
        self.on_out_of_memory = on_out_of_memory
        self.on_exit = on_exit            # called when the process ends without being stopped
        self.alive = True
        self._stopping = False
        self._lock = threading.Lock()
        self._streams: dict[str, EventStream] = {}
        self._waiting: dict[str, int] = {}       # request id -> priority, until it starts
        self._started: set[str] = set()
        self._text = Detokenizer(generator)
        self._reader = threading.Thread(target=self._read, name=f"from-{name}", daemon=True)
        self._reader.start()

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._started)

    def submit(self, request: GenerationRequest, stream: EventStream) -> None:
        if not self.alive:
            raise ModelUnavailable(f"model {self.name!r} is not running")
        with self._lock:
            full = len(self._waiting) >= self.max_queue
            if full and admission.victim(self._waiting.values(), request.priority,
                                         lambda p: (p, 0)) is None:
                raise admission.refused(self.name, len(self._waiting))
            self._streams[request.request_id] = stream
            self._waiting[request.request_id] = request.priority
        self._text.start(request.request_id, request.params)
        try:
            self.generator.send(("submit", request))
        except (OSError, ValueError) as exc:   # the process has just ended
            with self._lock:
                self._streams.pop(request.request_id, None)
                self._waiting.pop(request.request_id, None)
            self._text.end(request.request_id)
            raise ModelUnavailable(f"model {self.name!r} is restarting; retry "
                                   "shortly") from exc

    def abort(self, request_id: str) -> None:
        if self.alive:
            try:
                self.generator.send(("abort", request_id))
            except (OSError, ValueError):
                pass

    def stop(self) -> None:
        self._stopping = True
        self.generator.unload()
        self._reader.join(timeout=5)

    def _read(self) -> None:
        pending = self.generator.first_messages
        while True:
            for item in pending:
                try:
                    self._handle(item)
                except Exception as exc:  # the reader serves every stream: it never dies
                    self._failed(item, exc)
            try:
                pending = self.conn.recv()
            except (EOFError, OSError):
                break
        self.alive = False
        process = self.generator.process
        if process is not None:
            process.join(timeout=5)   # the pipe closes just before the exit is reaped
        code = process.exitcode if process is not None else None
        with self._lock:
            streams, self._streams = self._streams, {}
            self._waiting.clear()
            self._started.clear()
        self._text = Detokenizer(self.generator)
        reason = f"the process of model {self.name!r} ended (exit code {code})"
        for stream in streams.values():
            stream.fail(ModelError(f"{reason}; retry shortly"))
        if not self._stopping:
            self.on_exit(reason)

    def _decoded(self, request_id: str, wire: list[Any]) -> list[Any]:
        """Events off the pipe; deltas sent as tokens only get their text here (or are
        left out while all of it is held back)."""
        events = []
        for event in map(from_wire, wire):
            if type(event) is Delta and event.text is None:
                event = self._text.text(request_id, event)
                if event is None:
                    continue
            events.append(event)
        return events

    def _failed(self, item: tuple, exc: Exception) -> None:
        """A message this side could not handle: its request (if any) ends with the error;
        the others go on."""
        log.exception("model %s: message from its process not handled", self.name)
        if item[0] != "e":
            return
        with self._lock:
            stream = self._streams.pop(item[1], None)
            self._waiting.pop(item[1], None)
            self._started.discard(item[1])
        self._text.end(item[1])
        if stream is not None:
            stream.fail(ModelError(f"generation failed: {type(exc).__name__}: {exc}"))

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "e":
            request_id, events = item[1], self._decoded(item[1], item[2])
            if not events:       # all of it text held back for the next delta
                return
            with self._lock:
                stream = self._streams.get(request_id)
                if request_id in self._waiting:
                    del self._waiting[request_id]
                    self._started.add(request_id)
                ended = events[-1] is None
                if ended:
                    self._streams.pop(request_id, None)
                    self._started.discard(request_id)
            if ended:
                self._text.end(request_id)
            if stream is None:
                return
            if ended:
                stream.push(events[:-1])
                stream.close()
            else:
                stream.push(events)
        elif kind == "m":
            _, name, labels, method, value = item
            getattr(getattr(metrics, name).labels(*labels), method)(value)
        elif kind == "oom":
            self.alive = False
            self.on_out_of_memory(RuntimeError(f"out of memory: {item[1]}"))
