"""The MCP server with the SDK's own client: over streamable HTTP at /mcp of a real server
(MiniLM, SmolLM2, a tiny random classifier) and over stdio (``python -m hfserve mcp``).
Each served model x task is a tool whose results equal the HTTP API's; a bad argument is
an error result and the server answers on; tools follow models registered and forgotten at
run time; the MCP conformance suite passes what applies. (Keys and scopes on /mcp:
tests/api/test_security.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from .conftest import CHAT, EMBED, MINILM, SMOL, launch, stop
from .test_classify import LABELS, tiny_classifier

CONFORMANCE = Path(__file__).parents[1] / "conformance"
CLS = "cls"
TEXTS = ["the cat sat on the mat", "MCP tools run on the same engine"]
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "raw", "version": "0"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def model_list(root, cache) -> dict:
    return {"cache_dir": str(cache), "models": [
        {"name": EMBED, "source": str(MINILM), "threads": 1, "backend": "torch"},
        {"name": CHAT, "source": str(SMOL), "threads": 1, "backend": "torch",
         "dtype": "float32", "max_concurrent": 2},
        {"name": CLS, "source": str(root / "cls"), "threads": 1, "backend": "torch",
         "dtype": "float32"}]}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mcp-models")
    tiny_classifier(root / "cls")
    tiny_classifier(root / "late", labels={0: "no", 1: "yes"})
    return root


@pytest.fixture(scope="module")
def base(root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcp-server")
    config = {**model_list(root, root / "cache"), "model_roots": [str(root)]}
    proc, url, log = launch(config, tmp)
    yield url
    stop(proc, log)


def api(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=120)


@asynccontextmanager
async def http_session(base: str):
    async with streamable_http_client(f"{base}/mcp") as (r, w), ClientSession(r, w) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def stdio_session(config_path):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hfserve", "mcp", "--config", str(config_path),
                                      "--log-level", "warning"],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    async with stdio_client(params) as (r, w), ClientSession(r, w) as session:
        await session.initialize()
        yield session


def test_foreign_host_and_origin_are_refused(base):
    with httpx.Client(base_url=base, timeout=30, headers=MCP_HEADERS) as http:
        origin = http.post("/mcp", json=INIT, headers={"Origin": "http://evil.example"})
        # The SDK's own check covers the GET stream too, which changes nothing.
        rebound = http.get("/mcp", headers={"Host": "evil.example"})
        sdk_origin = http.get("/mcp", headers={"Origin": "http://evil.example"})
    assert origin.status_code == 403
    assert rebound.status_code == 421
    assert sdk_origin.status_code == 403


async def check_tools(session: ClientSession, reference: httpx.Client) -> None:
    """What both transports must do alike (``reference``: the HTTP API to compare with)."""
    tools = {t.name: t for t in (await session.list_tools()).tools}
    embed, chat, classify = f"embed_{EMBED}", f"chat_{CHAT}", f"classify_{CLS}"
    assert {embed, chat, f"complete_{CHAT}", classify} <= set(tools)
    assert f"chat_{EMBED}" not in tools and f"embed_{CHAT}" not in tools
    assert tools[embed].input_schema["type"] == "object"
    assert "input" in tools[embed].input_schema["required"]
    assert "messages" in tools[chat].input_schema["properties"]
    assert tools[embed].annotations.read_only_hint is True

    got = await session.call_tool(embed, {"input": TEXTS})
    assert not got.is_error
    want = reference.post("/v1/embeddings", json={"model": EMBED, "input": TEXTS}).json()
    vectors = np.array(got.structured_content["results"])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors, [d["embedding"] for d in want["data"]], atol=1e-5)

    reply = await session.call_tool(chat, {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 8, "temperature": 0})
    assert not reply.is_error
    assert reply.structured_content["text"].strip()
    assert reply.content[0].text == reply.structured_content["text"]
    assert 1 <= reply.structured_content["completion_tokens"] <= 8

    labels = await session.call_tool(classify, {"input": TEXTS})
    assert not labels.is_error
    want = reference.post("/v1/classify", json={"model": CLS, "input": TEXTS}).json()["data"]
    for result, row in zip(labels.structured_content["results"], want, strict=True):
        assert result["label"] == row["label"] and result["label"] in LABELS.values()
        np.testing.assert_allclose(list(result["scores"].values()), row["probs"], atol=1e-5)

    bad = await session.call_tool(embed, {"input": []})
    assert bad.is_error and "input" in bad.content[0].text
    assert bad.structured_content["error"]["type"] == "invalid_request_error"
    wrong = await session.call_tool(chat, {"messages": [{"role": "robot", "content": "x"}],
                                           "max_tokens": 0, "surprise": 1})
    assert wrong.is_error
    with pytest.raises(MCPError):
        await session.call_tool("embed_no-such-model", {"input": "x"})
    again = await session.call_tool(embed, {"input": "still here"})
    assert not again.is_error and len(again.structured_content["results"][0]) == 384


async def test_tools_over_streamable_http(base):
    with api(base) as reference:
        async with http_session(base) as session:
            await check_tools(session, reference)


async def test_engine_errors_are_error_results(base):
    async with http_session(base) as session:
        long = await session.call_tool(f"chat_{CHAT}", {
            "messages": [{"role": "user", "content": "hi " * 20000}], "max_tokens": 4})
        assert long.is_error
        error = long.structured_content["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
        ok = await session.call_tool(f"complete_{CHAT}", {"prompt": "Paris is",
                                                          "max_tokens": 3})
        assert not ok.is_error and ok.structured_content["completion_tokens"] >= 1


async def test_resources_and_prompts(base):
    async with http_session(base) as session:
        uris = {str(r.uri) for r in (await session.list_resources()).resources}
        assert {"hfserve://models", "hfserve://hardware", f"hfserve://models/{EMBED}"} <= uris
        models = (await session.read_resource("hfserve://models")).contents[0].text
        assert {EMBED, CHAT, CLS} <= {m["id"] for m in yaml.safe_load(models)}
        one = yaml.safe_load((await session.read_resource(
            f"hfserve://models/{CLS}")).contents[0].text)
        assert one["tasks"] == ["text-classification"]
        hardware = yaml.safe_load((await session.read_resource(
            "hfserve://hardware")).contents[0].text)
        assert any(d["kind"] == "cpu" for d in hardware["devices"])
        with pytest.raises(MCPError):
            await session.read_resource("hfserve://models/no-such-model")

        prompts = [p.name for p in (await session.list_prompts()).prompts]
        assert prompts == [f"chat_{CHAT}"]
        prompt = await session.get_prompt(f"chat_{CHAT}", {"message": "hello there"})
        assert prompt.messages[0].content.text == "hello there"


async def test_tools_follow_models_registered_and_forgotten(base, root):
    name = "late-classifier"
    async with http_session(base) as session:
        assert f"classify_{name}" not in {t.name for t in (await session.list_tools()).tools}
        with api(base) as admin:
            created = admin.post("/v1/models", json={"id": name, "source": str(root / "late"),
                                                     "backend": "torch", "threads": 1})
            assert created.status_code in (200, 201), created.text
            tools = {t.name for t in (await session.list_tools()).tools}
            assert f"classify_{name}" in tools
            got = await session.call_tool(f"classify_{name}", {"input": "a text"})
            assert not got.is_error
            assert got.structured_content["results"][0]["label"] in ("no", "yes")

            assert admin.post(f"/v1/models/{name}/unload").status_code == 200
            # Unloaded, it stays a tool: the next call loads it again.
            again = await session.call_tool(f"classify_{name}", {"input": "a text"})
            assert again.structured_content == got.structured_content

            assert admin.delete(f"/v1/models/{name}").status_code in (200, 204)
        tools = {t.name for t in (await session.list_tools()).tools}
        assert f"classify_{name}" not in tools and f"embed_{EMBED}" in tools
        with pytest.raises(MCPError):
            await session.call_tool(f"classify_{name}", {"input": "a text"})


async def test_tools_over_stdio(base, root, tmp_path):
    config = tmp_path / "mcp.yaml"
    config.write_text(yaml.safe_dump(model_list(root, root / "cache")))
    with api(base) as reference:
        async with stdio_session(config) as session:
            await check_tools(session, reference)


def test_the_conformance_suite_passes_what_applies(base, tmp_path):
    """``conformance server`` exits 0 when every scenario outside the expected failures
    passes and every expected failure still fails (a stale entry is a failure too)."""
    cli = CONFORMANCE / "node_modules" / ".bin" / "conformance"
    node = shutil.which("node")
    if not cli.exists() or node is None:
        pytest.skip("the MCP conformance suite is not installed (make conformance)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"the MCP conformance suite needs Node 20 or later (this is {version})")
    run = subprocess.run([str(cli), "server", "--url", f"{base}/mcp", "--expected-failures",
                          str(CONFORMANCE / "expected-failures.yml"), "-o", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "dns-rebinding-protection: 2 passed, 0 failed" in run.stdout
    assert "tools-list: 1 passed, 0 failed" in run.stdout


def test_stdio_stdout_carries_only_the_protocol(root, tmp_path):
    """Every line the stdio server writes is a JSON-RPC message (logs, load reports and
    library output go to stderr), and it exits 0 when the client closes stdin."""
    import json

    config = tmp_path / "one.yaml"
    config.write_text(yaml.safe_dump({**model_list(root, root / "cache"),
                                      "models": model_list(root, root / "cache")["models"][:1],
                                      "log_level": "info"}))
    requests = [INIT, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hfserve", "mcp", "--config", str(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        proc.stdin.write("".join(json.dumps(r) + "\n" for r in requests))
        proc.stdin.flush()
        lines = []
        while len(lines) < 2:
            line = proc.stdout.readline()
            if not line:
                break                     # it exited: the asserts below say so
            lines.append(json.loads(line))      # anything but JSON fails here
        proc.stdin.close()                # the client leaves: the server ends
        proc.wait(timeout=60)
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    errors = log.read_text()
    assert proc.returncode == 0, errors[-3000:]
    assert rest == ""
    assert [m.get("id") for m in lines] == [1, 2]
    assert lines[0]["result"]["serverInfo"]["name"] == "hfserve"
    assert [t["name"] for t in lines[1]["result"]["tools"]] == [f"embed_{EMBED}"]
    assert "hfserve" in errors            # the info log went where it belongs
