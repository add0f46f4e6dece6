"""A generation model in a process of its own (runtime/process/proxy.py): requests and
events cross the pipe, metrics reach the server's registry, a failed load raises in the
server (so placement can fall back), and a crashed model process fails its requests
without taking the server down."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from process_skills import CRASH, ScriptSkill

from hfserve import metrics
from hfserve.backends.placement import Placement
from hfserve.errors import ModelError, Overloaded
from hfserve.runtime.generation.sequence import Delta
from hfserve.runtime.generation.stream import EventStream
from hfserve.runtime.generation.worker import Finished, GenerationRequest, PromptInfo
from hfserve.runtime.process.child import _ForwardedMetric, _Outbox
from hfserve.runtime.process.proxy import ProcessGenerator
from hfserve.types import Family, ModelSpec, SamplingParams, Task

# Any HF tokenizer folder will do for the server side; the model never uses it.
TOKENIZER = Path(__file__).resolve().parents[2] / ".cache" / "models" / "all-MiniLM-L6-v2"

pytestmark = pytest.mark.skipif(not TOKENIZER.exists(), reason="run `make models` first")


def spec(**config) -> ModelSpec:
    return ModelSpec(name="script", source="script", path=TOKENIZER, architecture="Script",
                     model_type="script", family=Family.DECODER_ONLY,
                     task=Task.TEXT_GENERATION, tasks=(Task.TEXT_GENERATION,), config=config)


@pytest.fixture
def generator():
    gen = ProcessGenerator(spec(), ScriptSkill, max_concurrent=4, max_queue=8)
    gen.load(Placement())
    ooms: list[BaseException] = []
    worker = gen.worker("script", on_out_of_memory=ooms.append)
    yield gen, worker
    worker.stop()


async def run(worker, prompt: list[int], request_id: str = "r1", **params) -> list:
    stream = EventStream(asyncio.get_running_loop())
    worker.submit(GenerationRequest(request_id, prompt,
                                    SamplingParams(**{"max_tokens": 10, **params})), stream)

    async def drain() -> list:
        return [event async for event in stream]

    return await asyncio.wait_for(drain(), 30)


async def test_a_request_streams_through_the_model_process(generator) -> None:
    gen, worker = generator
    before = metrics.TOKENS.labels("script", "completion")._value.get()
    events = await run(worker, [1, 2])
    assert isinstance(events[0], PromptInfo) and events[0].prompt_tokens == 2
    # The model process sends tokens; the server's tokenizer (MiniLM's here) makes the text.
    assert "".join(e.text for e in events if isinstance(e, Delta)) == gen.decode_tokens(
        [1, 2, 3]) == "[unused0] [unused1] [unused2]"
    assert isinstance(events[-1], Finished) and events[-1].completion_tokens == 3
    assert gen.info()["process"] == gen.process.pid != None  # noqa: E711
    assert gen.max_context == 100 and gen.eos_token_ids == frozenset({0})
    for _ in range(100):   # metric updates travel in their own batches
        if metrics.TOKENS.labels("script", "completion")._value.get() >= before + 4:
            break
        await asyncio.sleep(0.02)
    assert metrics.TOKENS.labels("script", "completion")._value.get() == before + 4
    assert worker.running == 0 and worker.queue_depth == 0


async def test_with_stop_strings_the_model_process_makes_the_text(generator) -> None:
    """A stop string ends the sequence where its text is made: in the model process, with
    its own decoding (the script's words)."""
    _, worker = generator
    events = await run(worker, [1], stop=["three"])
    deltas = [e for e in events if isinstance(e, Delta)]
    assert "".join(d.text for d in deltas) == "one two "
    assert deltas[-1].finish_reason == "stop"


async def test_a_crashed_model_process_fails_its_requests_only(generator) -> None:
    gen, worker = generator
    with pytest.raises(ModelError, match="exit code 3"):
        await run(worker, [CRASH])
    assert not worker.alive
    assert gen.process.exitcode == 3


async def test_a_full_queue_is_refused_in_the_server(generator) -> None:
    _, worker = generator
    worker.max_queue = 0
    with pytest.raises(Overloaded):
        await run(worker, [1])


def test_a_failed_load_raises_in_the_server() -> None:
    gen = ProcessGenerator(spec(fail_load=True), ScriptSkill, max_concurrent=4, max_queue=8)
    with pytest.raises(RuntimeError, match="the weights are corrupt"):
        gen.load(Placement())
    assert gen.process is None


@pytest.fixture
def script_model(tmp_path, monkeypatch) -> Path:
    """A folder that classifies as a causal LM, with a tokenizer, served by ScriptSkill."""
    import json
    import shutil

    from hfserve.registry import skills as skill_table

    folder = tmp_path / "script"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        shutil.copy(TOKENIZER / name, folder / name)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 8,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
        "vocab_size": 50, "max_position_embeddings": 64}))
    monkeypatch.setitem(skill_table.SKILLS, Task.TEXT_GENERATION,
                        (f"{ScriptSkill.__module__}:ScriptSkill",))
    return folder


async def test_the_manager_loads_a_model_again_after_its_process_dies(script_model,
                                                                     tmp_path) -> None:
    from hfserve.model_config import ModelConfig
    from hfserve.runtime.lifecycle.manager import ModelManager
    from hfserve.types import ModelState

    manager = ModelManager([ModelConfig(source=str(script_model), name="script",
                                        own_process=True)],
                           cache_dir=tmp_path / "cache")
    entry = manager.entry("script")
    try:
        await manager.load(entry)
        assert entry.state == ModelState.READY, entry.error
        first_pid = entry.describe()["process"]
        with pytest.raises(ModelError, match="exit code 3"):
            await run(entry.scheduler, [CRASH])
        for _ in range(600):
            if entry.state == ModelState.READY and entry.scheduler.alive:
                break
            await asyncio.sleep(0.05)
        info = entry.describe()
        assert info["state"] == "ready" and info["process"] != first_pid
        assert "exit code 3" in info["placement_attempts"][0]["error"]
        events = await run(entry.scheduler, [1], request_id="again")
        assert "".join(e.text for e in events if isinstance(e, Delta)) == \
            "[unused0] [unused1] [unused2]"      # the server's tokenizer decodes
    finally:
        await manager.close()


@pytest.mark.parametrize(("device", "own_process", "expected"), [
    ("cuda:0", None, ProcessGenerator), ("openvino:GPU", None, ProcessGenerator),
    ("cpu", None, ScriptSkill), ("openvino:CPU", None, ScriptSkill),
    ("cpu", True, ProcessGenerator), ("cuda:0", False, ScriptSkill)])
def test_generation_gets_a_process_on_accelerators_unless_configured(device, own_process,
                                                                     expected) -> None:
    from hfserve.model_config import ModelConfig
    from hfserve.runtime.lifecycle.manager import ModelEntry, ModelManager

    entry = ModelEntry(config=ModelConfig(source="x", own_process=own_process), name="x",
                       spec=spec())
    assert type(ModelManager._new_skill(ScriptSkill, entry, device)) is expected


def test_the_child_sums_counter_increments_between_two_writes() -> None:

    class Conn:
        def __init__(self) -> None:
            self.sent: list[list] = []
            self.gate = threading.Event()

        def send(self, batch: list) -> None:
            self.gate.wait(5)
            self.sent.append(batch)

    conn = Conn()
    outbox = _Outbox(conn)
    tokens = _ForwardedMetric("TOKENS", outbox)
    outbox.put(("e", "r1", []))              # the writer takes this and waits on the gate
    time.sleep(0.05)
    for _ in range(3):
        tokens.labels("m", "completion").inc(2)
    tokens.labels("m", "prompt").inc(5)
    assert tokens.labels("m", "completion") is tokens.labels("m", "completion")
    conn.gate.set()
    deadline = time.monotonic() + 5
    while len(conn.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert conn.sent[0] == [("e", "r1", [])]
    assert sorted(conn.sent[1]) == [("m", "TOKENS", ("m", "completion"), "inc", 6.0),
                                    ("m", "TOKENS", ("m", "prompt"), "inc", 5.0)]


def test_the_model_loops_events_of_a_round_go_out_together_at_its_end() -> None:
    """What the loop's thread puts waits for its round's end and goes out as one write, in
    order; what other threads put goes out at once."""

    class Conn:
        def __init__(self) -> None:
            self.sent: list[list] = []

        def send(self, batch: list) -> None:
            self.sent.append(batch)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 5
        while len(conn.sent) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    conn = Conn()
    outbox = _Outbox(conn)
    outbox.end_round()                       # (the first call names this thread the loop's)
    for i in range(3):
        outbox.put(("e", f"r{i}", [i]))
    time.sleep(0.05)
    assert conn.sent == []                   # held until the round ends
    other = threading.Thread(target=outbox.put, args=(("ready", {}),))
    other.start()
    other.join()
    wait_for(1)
    assert conn.sent == [[("ready", {})]]    # another thread's: at once
    outbox.end_round()
    wait_for(2)
    assert conn.sent[1] == [("e", "r0", [0]), ("e", "r1", [1]), ("e", "r2", [2])]


def test_deltas_cross_the_pipe_as_tuples_and_come_back_equal() -> None:
    import pickle

    from hfserve.runtime.process.protocol import from_wire, to_wire
    from hfserve.types import TokenChoice

    plain = Delta(0, " Paris", [TokenChoice(token_id=7), TokenChoice(token_id=9)], "stop")
    rich = Delta(1, "x", [TokenChoice(token_id=3, logprob=-0.5, top=[(3, -0.5)], text="x",
                                      top_text=[("x", -0.5)])])
    info = PromptInfo(4, None)
    wire = [to_wire(e) for e in (plain, rich, info, None)]
    assert wire[0] == (0, " Paris", [7, 9], "stop")       # bare ids, no dataclasses
    back = [from_wire(e) for e in pickle.loads(pickle.dumps(wire))]
    assert back == [plain, rich, info, None]


class PipeOnly:
    """The server side of a model process without the process: the test writes what the
    child would send into the other end of the pipe."""

    def __init__(self) -> None:
        import multiprocessing

        from test_sequence import FakeStream, decode

        self.conn, self.child = multiprocessing.Pipe()
        self.process = None
        self.first_messages: list = []
        self.decode_tokens = decode
        self.text_stream = FakeStream

    def send(self, message: tuple) -> None:
        pass

    def unload(self) -> None:
        self.child.close()


async def test_the_reader_outlives_held_back_text_and_a_message_it_cannot_handle() -> None:
    """A tokens-only delta whose text is all held back (half a character) sends nothing
    yet; a message the server side cannot handle fails its own request only."""
    from test_sequence import COMPLETES, PARTIAL

    from hfserve.runtime.process.proxy import ProcessWorker

    gen = PipeOnly()
    worker = ProcessWorker("pipe", gen, max_queue=8, on_out_of_memory=lambda exc: None,
                           on_exit=lambda reason: None)
    loop = asyncio.get_running_loop()
    streams = {rid: EventStream(loop) for rid in ("ok", "bad")}
    for rid, stream in streams.items():
        worker.submit(GenerationRequest(rid, [1], SamplingParams(max_tokens=10)), stream)
    gen.child.send([("e", "ok", [PromptInfo(1, None)]), ("e", "bad", [PromptInfo(1, None)])])
    gen.child.send([("e", "ok", [(0, None, [1], None)]), ("e", "ok", [(0, None, [PARTIAL], None)])])
    gen.child.send([("e", "bad", [(0, None, "not tokens", None)])])
    gen.child.send([("e", "ok", [(0, None, [COMPLETES, 2], "length"), Finished(1, 4), None])])

    async def drain(stream) -> list:
        return [event async for event in stream]

    with pytest.raises(ModelError, match="generation failed"):
        await asyncio.wait_for(drain(streams["bad"]), 10)
    events = await asyncio.wait_for(drain(streams["ok"]), 10)
    deltas = [e for e in events if isinstance(e, Delta)]
    assert [d.text for d in deltas] == ["Hel", "élo"] and deltas[-1].finish_reason == "length"
    assert [t.token_id for t in deltas[-1].tokens] == [PARTIAL, COMPLETES, 2]
    assert worker.alive and worker.running == 0
    worker.stop()
