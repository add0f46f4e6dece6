"""The whole app in-process: real settings, registry, manager, batcher and scheduler; fake
skills (tests/api/fakes.py) registered for the embedding and generation tasks; models are
tiny config.json folders under tmp_path. httpx talks to the app through ASGITransport with
the app's lifespan entered."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakes
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from hfserve.api.app import create_app
from hfserve.config import Settings
from hfserve.registry import skills as skill_table
from hfserve.runtime.engine import Engine
from hfserve.types import Task

BERT = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 8,
        "num_hidden_layers": 1, "vocab_size": 50, "max_position_embeddings": 32}
LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 8,
         "num_hidden_layers": 1, "vocab_size": 50, "max_position_embeddings": 64}


@dataclass
class Server:
    app: FastAPI
    client: httpx.AsyncClient
    engine: Engine
    tmp_path: Path

    async def wait_ready(self, timeout: float = 30.0) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            response = await self.client.get("/ready")
            if response.status_code == 200:
                return response
            assert time.monotonic() < deadline, f"never ready: {response.text}"
            await asyncio.sleep(0.01)


@dataclass
class ModelDirs:
    emb: Path
    gen: Path
    slow_emb: Path


@pytest.fixture(autouse=True)
def control() -> fakes.Control:
    fakes.CONTROL.reset()
    yield fakes.CONTROL
    fakes.CONTROL.release_all()


@pytest.fixture(autouse=True)
def fake_skills():
    saved = dict(skill_table.SKILLS)
    module = fakes.FakeEmbeddingSkill.__module__
    # Only the fakes: no real skill may pick up the tiny test folders on another device.
    skill_table.SKILLS[Task.EMBEDDING] = (f"{module}:FakeEmbeddingSkill",)
    skill_table.SKILLS[Task.TEXT_GENERATION] = (f"{module}:FakeGenerationSkill",)
    yield
    skill_table.SKILLS.clear()
    skill_table.SKILLS.update(saved)


def model_folder(root: Path, name: str, config: dict[str, Any]) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def dirs(tmp_path: Path) -> ModelDirs:
    return ModelDirs(emb=model_folder(tmp_path, "emb", BERT),
                     gen=model_folder(tmp_path, "gen", LLAMA),
                     slow_emb=model_folder(tmp_path, "slow-emb",
                                           {**BERT, fakes.SLOW_LOAD: True}))


def check_clean(tmp_path: Path) -> Callable[[httpx.Response], Any]:
    """Response hook: no body ever shows a traceback, and none but the model listing (whose
    ``source`` is the configured folder) shows the server's file system paths."""

    async def hook(response: httpx.Response) -> None:
        body = (await response.aread()).decode("utf-8", "replace")
        assert "Traceback" not in body
        if not response.request.url.path.startswith("/v1/models"):
            assert str(tmp_path) not in body, f"{response.request.url.path} leaks a path"

    return hook


@pytest.fixture
def start(dirs: ModelDirs, tmp_path: Path):
    """``async with start(models=[...], **settings) as server``: app running, not waited on."""

    @asynccontextmanager
    async def run(models: list[dict[str, Any]] | None = None, **settings: Any
                  ) -> AsyncIterator[Server]:
        if models is None:
            models = [{"source": str(dirs.emb), "name": "emb", "max_wait_ms": 0},
                      {"source": str(dirs.gen), "name": "gen"}]
        settings.setdefault("cache_dir", tmp_path / "cache")
        settings.setdefault("allowed_hosts", ["testserver"])   # httpx's and the raw host
        app = create_app(Settings(models=models, **settings))
        engine = app.state.engine
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                   event_hooks={"response": [check_clean(tmp_path)]})
        async with app.router.lifespan_context(app), client:
            try:
                yield Server(app, client, engine, tmp_path)
            finally:
                fakes.CONTROL.release_all()  # wake any fake still waiting before shutdown

    return run


@pytest_asyncio.fixture(loop_scope="function")
async def server(start) -> AsyncIterator[Server]:
    """The default app (an embedding model and a chat model), loaded and ready."""
    async with start() as srv:
        await srv.wait_ready()
        yield srv


# --- raw ASGI, for what httpx's buffering transport cannot show ---------------------------
@dataclass
class OpenStream:
    """A streaming response read chunk by chunk, whose client can go away."""

    task: asyncio.Task
    messages: asyncio.Queue
    disconnect: asyncio.Event
    status: int | None = None

    async def next_body(self, timeout: float = 5.0) -> bytes:
        while True:
            message = await asyncio.wait_for(self.messages.get(), timeout)
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    return message["body"]
                if not message.get("more_body"):
                    return b""

    async def hang_up(self, timeout: float = 5.0) -> None:
        self.disconnect.set()
        await asyncio.wait_for(self.task, timeout)


def _open_stream(app: FastAPI, path: str, payload: dict[str, Any]) -> OpenStream:
    body = json.dumps(payload).encode()
    messages: asyncio.Queue = asyncio.Queue()
    disconnect = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await messages.put(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {}}
    task = asyncio.create_task(app(scope, receive, send))
    return OpenStream(task, messages, disconnect)


@pytest.fixture
def open_stream() -> Callable[[FastAPI, str, dict[str, Any]], OpenStream]:
    """``open_stream(app, path, json_body)``: POST over raw ASGI, read the body chunk by
    chunk, then ``hang_up()`` like a client that goes away."""
    return _open_stream
