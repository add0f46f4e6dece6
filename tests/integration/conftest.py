"""Real models, real server process, the real openai SDK as the client. Offline."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / ".cache" / "models"
MINILM = MODELS / "all-MiniLM-L6-v2"
SMOL = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBED = "all-MiniLM-L6-v2"
CHAT = "SmolLM2-135M-Instruct"
CHAT_SLOTS = "smol-slots"
TINY_QUEUE = "minilm-tiny-queue"
EMBED_OV = "minilm-openvino"
EMBED_STREAMS = "minilm-openvino-streams"
EMBED_ONNX = "minilm-onnx"
EMBED_FALLBACK = "minilm-fallback"
CHAT_OV = "smol-openvino"
MAX_BODY = 256 * 1024

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def corrupt_openvino_export(cache: Path, name: str) -> None:
    """Plant an unreadable OpenVINO export where the int8 MiniLM export would be cached."""
    from hfserve.backends.export_cache import export_dir, mark_complete
    from hfserve.model_config import ModelConfig
    from hfserve.registry import build_spec

    spec = build_spec(ModelConfig(source=str(MINILM), name=name))
    folder = export_dir(cache, spec, "openvino", kind="feature-extraction", int8=True)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text((MINILM / "config.json").read_text())
    (folder / "openvino_model.xml").write_text("this is not an OpenVINO model")
    (folder / "openvino_model.bin").write_bytes(b"\0" * 16)
    mark_complete(folder)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    if not (MINILM.exists() and SMOL.exists()):
        pytest.fail("demo models missing: run `make models`")
    tmp = tmp_path_factory.mktemp("server")
    config = {
        "max_body_bytes": MAX_BODY,
        "cache_dir": str(tmp / "cache"),
        "models": [
            # Eager torch, to compare with transformers and sentence-transformers exactly.
            {"name": EMBED, "source": str(MINILM), "threads": 1, "backend": "torch",
             "aliases": ["sentence-transformers/all-MiniLM-L6-v2"]},
            {"name": CHAT, "source": str(SMOL), "threads": 1, "max_concurrent": 4,
             "backend": "torch", "dtype": "float32"},
            # Fixed KV-cache slots, what CUDA graphs replay on a GPU (eager on the CPU), and
            # prompts over 16 tokens (every chat prompt) prefilled in parts.
            {"name": CHAT_SLOTS, "source": str(SMOL), "threads": 1, "max_concurrent": 4,
             "backend": "torch", "cuda_graphs": True, "max_prefill_tokens": 16,
             "dtype": "float32"},
            {"name": TINY_QUEUE, "source": str(MINILM), "threads": 1, "max_queue": 1,
             "max_batch_size": 1, "max_wait_ms": 0, "backend": "torch"},
            # Automatic placement: the fastest backend installed (OpenVINO when present).
            {"name": EMBED_OV, "source": str(MINILM), "threads": 1},
            # Two batches at once, each on an OpenVINO stream of its own.
            {"name": EMBED_STREAMS, "source": str(MINILM), "threads": 2, "streams": 2,
             "max_batch_size": 2, "max_wait_ms": 0},
            # In a model process of its own (the default on accelerators, asked for here).
            {"name": CHAT_OV, "source": str(SMOL), "threads": 1, "max_concurrent": 8,
             "own_process": True, "dtype": "float32"},
            {"name": EMBED_ONNX, "source": str(MINILM), "threads": 1,
             "backend": "onnxruntime"},
            # Its cached OpenVINO export is broken on purpose: it must fall back to torch.
            {"name": EMBED_FALLBACK, "source": str(MINILM), "threads": 1, "int8": True},
        ],
    }
    corrupt_openvino_export(tmp / "cache", EMBED_FALLBACK)
    early: list[httpx.Response] = []

    def first_answer(base: str) -> None:
        # The first answer comes while models still load: a request now must get 503.
        early.append(httpx.post(f"{base}/v1/chat/completions", timeout=10, json={
            "model": CHAT, "messages": [{"role": "user", "content": "hi"}]}))

    proc, base, log = launch(config, tmp, on_first_answer=first_answer)
    try:
        yield {"base": base, "early": early[0] if early else None, "log": tmp / "server.log",
               "tmp": tmp}
    finally:
        stop(proc, log)


def launch(config: dict, tmp: Path, on_first_answer=None, timeout: float = 300):
    """Start ``hfserve serve`` on ``config`` (written to tmp/config.yaml, logging to
    tmp/server.log) and wait until /ready; returns the process, base URL and log file."""
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfserve", "serve", "--config", str(tmp / "config.yaml"),
         "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {(tmp / 'server.log').read_text()[-3000:]}")
            try:
                ready = httpx.get(f"{base}/ready", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if not answered and on_first_answer is not None:
                on_first_answer(base)
            answered = True
            if ready.status_code == 200:
                return proc, base, log
            states = ready.json().get("models", {}).values()
            if "failed" in states and "loading" not in states:
                # A model that failed to load keeps /ready at 503 for good: say so now.
                pytest.fail(f"a model failed to load: {(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        pytest.fail("server did not become ready")
    except BaseException:
        stop(proc, log)
        raise


def stop(proc: subprocess.Popen, log) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def serve_folders(models: dict[str, Path], tmp: Path, **options):
    """One server for the model folders ``models`` (name -> folder), each served in float32
    on one thread with ``options`` besides; yields its base URL, then stops it."""
    config = {"cache_dir": str(tmp / "cache"), "models": [
        {"name": name, "source": str(folder), "dtype": "float32", "threads": 1, **options}
        for name, folder in models.items()]}
    proc, url, log = launch(config, tmp)
    try:
        yield url
    finally:
        stop(proc, log)


_LEAKS = re.compile(r"Traceback|/site-packages/|/work/|/tmp/|/usr/|\b0x[0-9a-f]{6,}")


def check_clean(response: httpx.Response) -> None:
    """Response hook on every client of these tests: no error body the server sends shows
    a traceback, a path or an address, or runs past one line (streams are checked where
    they are read)."""
    if response.status_code < 400 or "json" not in response.headers.get("content-type", ""):
        return
    response.read()
    error = response.json().get("error", {})
    message = error.get("message", "") if isinstance(error, dict) else ""
    assert not _LEAKS.search(response.text), response.text[:500]
    assert "\n" not in message, message


def _sync_http() -> httpx.Client:
    return httpx.Client(timeout=120, event_hooks={"response": [check_clean]})


async def _acheck_clean(response: httpx.Response) -> None:
    if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
        await response.aread()
        check_clean(response)


@pytest.fixture
def hub_client(server, monkeypatch):
    """A factory of huggingface_hub InferenceClients on the server (``route``, ``model`` sent as
    X-Model). The suite runs with HF_HUB_OFFLINE=1 so nothing reaches the Hub, and
    huggingface_hub 1.x refuses every request in offline mode, a local server's included: these
    clients only ever talk to the local server, so offline mode is lifted for the test."""
    from huggingface_hub import InferenceClient, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def make(route: str = "", model: str | None = None) -> InferenceClient:
        return InferenceClient(model=f"{server['base']}{route}",
                               headers={"X-Model": model} if model else None)

    return make


@pytest.fixture(scope="session")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server['base']}/v1", api_key="unused", max_retries=0,
                  _strict_response_validation=True, timeout=120, http_client=_sync_http())


@pytest.fixture(scope="session")
def loose_client(server):
    """For the two places where the SDK's types are narrower than the API: base64 embeddings
    and echo logprobs, whose first prompt token has no logprob (null, as OpenAI sends)."""
    from openai import OpenAI

    return OpenAI(base_url=f"{server['base']}/v1", api_key="unused", max_retries=0,
                  timeout=120, http_client=_sync_http())


@pytest.fixture
def aclient(server):
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=f"{server['base']}/v1", api_key="unused", max_retries=0,
                       _strict_response_validation=True, timeout=120,
                       http_client=httpx.AsyncClient(
                           timeout=120, event_hooks={"response": [_acheck_clean]}))


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(base_url=server["base"], timeout=120,
                      event_hooks={"response": [check_clean]}) as c:
        yield c
