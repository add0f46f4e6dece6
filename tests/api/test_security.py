"""Keys, scopes, model allowlists, Host/Origin checks, CORS and the audit log, over the
whole app in-process. The route matrix walks every route the app has: a route added
without a decision in ``EXPECTED`` fails it."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from test_app import CHAT_URL, chat_body

from hfserve.api.access import Scope, scope_of
from hfserve.api.family_errors import app_routes
from hfserve.api.routes.ui import FOLDER as UI_FOLDER

ADMIN_KEY = "adm1n-Key-For-Matrix-77QZ"
INFERENCE_KEY = "inf3rence-Key-For-Matrix-Q8"
GEN_ONLY_KEY = "g3n-Only-Key-For-Matrix-W4"
WRONG_KEY = "wr0ng-Key-For-Matrix-P2xy"
KEYS = [{"id": "ops", "key": ADMIN_KEY, "scopes": ["inference", "admin"]},
        {"id": "app", "key": INFERENCE_KEY},
        {"id": "gen-app", "key": GEN_ONLY_KEY, "models": ["gen"]}]

# Every route of the app and the scope it must have.
EXPECTED: dict[tuple[str, str], Scope] = {
    **{(m, p): Scope.DOCS for p in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
       for m in ("GET", "HEAD")},
    ("GET", "/metrics"): Scope.DOCS, ("GET", "/metrics/summary"): Scope.DOCS,
    **{("GET", p): Scope.PUBLIC for p in ("/ui", "/ui/", *(f"/ui/{f.name}"
                                                         for f in UI_FOLDER.iterdir()))},
    ("GET", "/health"): Scope.PUBLIC, ("GET", "/ready"): Scope.PUBLIC,
    ("GET", "/v1/models"): Scope.INFERENCE,
    ("GET", "/v1/models/{model_id:path}"): Scope.INFERENCE,
    ("GET", "/v1/hardware"): Scope.INFERENCE,
    ("GET", "/v1/groups/{group_id}"): Scope.INFERENCE,
    **{("POST", p): Scope.INFERENCE for p in (
        "/v1/embeddings", "/v1/chat/completions", "/v1/responses", "/v1/completions",
        "/v1/classify", "/v1/rerank", "/v1/score", "/v1/infer/{model:path}", "/embed",
        "/v1/images/generations", "/v1/detect", "/v1/segment", "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/predict", "/rerank", "/similarity", "/generate", "/", "/generate_stream",
        "/embed_all", "/tokenize", "/decode", "/v1/feedback")},
    ("GET", "/info"): Scope.INFERENCE,
    ("GET", "/v1/models/{model_id:path}/info"): Scope.INFERENCE,
    ("POST", "/v1/models"): Scope.ADMIN,
    ("POST", "/v1/models/{model_id:path}/load"): Scope.ADMIN,
    ("POST", "/v1/models/{model_id:path}/unload"): Scope.ADMIN,
    ("DELETE", "/v1/models/{model_id:path}"): Scope.ADMIN,
    ("POST", "/v1/models/{model_id:path}/adapters"): Scope.ADMIN,
    ("DELETE", "/v1/models/{model_id:path}/adapters/{name}"): Scope.ADMIN,
}
# The routes that change what is served, whether or not this build has them yet.
ADMIN_REQUESTS = [("POST", "/v1/models"), ("POST", "/v1/models/emb/load"),
                  ("POST", "/v1/models/emb/unload"), ("DELETE", "/v1/models/emb"),
                  ("POST", "/v1/models/emb/adapters"),
                  ("DELETE", "/v1/models/emb/adapters/sql"), ("GET", "/admin/status")]
BODY = {"model": "emb", "input": "hi", "inputs": "hi"}


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "emb", template)


def family_of(route) -> str:
    module = getattr(getattr(route, "endpoint", None), "__module__", "")
    if module == "hfserve.api.routes.info" and route.path == "/info":
        return "tei"                   # TEI's and TGI's /info, in TEI's body
    return {"hfserve.api.routes.tei": "tei", "hfserve.api.routes.tgi": "tgi"}.get(module,
                                                                                 "openai")


def envelope_problem(response: httpx.Response, family: str, status: int) -> str | None:
    if response.status_code != status:
        return f"status {response.status_code} != {status}: {response.text[:200]}"
    if response.request.method == "HEAD":
        return None
    body = response.json()
    if family == "openai":
        ok = set(body) == {"error"} and set(body["error"]) == {"message", "type", "param",
                                                              "code"}
        ok = ok and body["error"]["type"] == {401: "authentication_error",
                                              403: "permission_error"}[status]
    else:
        kinds = {("tei", 401): "Unauthorized", ("tei", 403): "Forbidden",
                 ("tgi", 401): "unauthorized", ("tgi", 403): "forbidden"}
        ok = set(body) == {"error", "error_type"} and body["error_type"] == kinds[family,
                                                                                  status]
    return None if ok else f"not the {family} envelope: {body}"


async def call(client: httpx.AsyncClient, method: str, path: str,
               headers: dict[str, str] | None = None, params: dict | None = None
               ) -> httpx.Response:
    json_body = BODY if method in ("POST", "PUT", "PATCH") else None
    return await client.request(method, path, json=json_body, headers=headers or {},
                                params=params)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_every_route_has_the_scope_it_should(start) -> None:
    async with start(keys=KEYS) as srv:
        found = {(m, info.path): info for info in app_routes(srv.app) for m in info.methods}
        assert set(found) == set(EXPECTED), "a route without a scope decision in EXPECTED"
        for (method, path), scope in EXPECTED.items():
            assert scope_of(method, path) is scope, (method, path)
            assert scope_of(method, concrete(path)) is scope, (method, path)


async def test_route_auth_matrix(start) -> None:
    failures: list[str] = []

    def expect(label: str, response: httpx.Response, family: str, status: int) -> None:
        problem = envelope_problem(response, family, status)
        if problem:
            failures.append(f"{label} {response.request.method} "
                            f"{response.request.url.path}: {problem}")

    async with start(keys=KEYS) as srv:
        await srv.wait_ready()
        client = srv.client
        for info in app_routes(srv.app):
            family = family_of(info.route)
            for method in sorted(info.methods):
                path = concrete(info.path)
                need = scope_of(method, info.path)
                if need is Scope.PUBLIC:
                    got = await call(client, method, path)
                    if got.status_code != 200:
                        failures.append(f"public {method} {path}: {got.status_code}")
                    continue
                expect("no key", await call(client, method, path), family, 401)
                expect("wrong key", await call(client, method, path, bearer(WRONG_KEY)),
                       family, 401)
                expect("empty bearer", await call(client, method, path,
                                                  {"authorization": "Bearer "}), family, 401)
                expect("query key", await call(client, method, path,
                                               params={"api_key": ADMIN_KEY}), family, 401)
                if need is Scope.INFERENCE and method == "POST":
                    expect("other model", await call(client, method, path,
                                                     bearer(GEN_ONLY_KEY) | {"x-model": "emb"}),
                           family, 403)
                right = [("bearer", bearer(ADMIN_KEY)), ("x-api-key", {"x-api-key": ADMIN_KEY})]
                if need is Scope.ADMIN:
                    expect("inference key", await call(client, method, path,
                                                       bearer(INFERENCE_KEY)), family, 403)
                else:
                    right.append(("inference key", bearer(INFERENCE_KEY)))
                for label, headers in right:
                    got = await call(client, method, path, headers)
                    if got.status_code in (401, 403):
                        failures.append(f"{label} {method} {path}: {got.status_code}")
        for method, path in ADMIN_REQUESTS:
            expect("no key", await call(client, method, path), "openai", 401)
            expect("inference key", await call(client, method, path, bearer(INFERENCE_KEY)),
                   "openai", 403)
            got = await call(client, method, path, bearer(ADMIN_KEY))
            if got.status_code in (401, 403):
                failures.append(f"admin key {method} {path}: {got.status_code}")
    assert failures == []


async def test_a_restricted_key_serves_its_own_model(start) -> None:
    async with start(keys=KEYS) as srv:
        await srv.wait_ready()
        ok = await srv.client.post(CHAT_URL, json=chat_body(), headers=bearer(GEN_ONLY_KEY))
        assert ok.status_code == 200, ok.text
        emb = await srv.client.post("/v1/embeddings", json={"model": "emb", "input": "x"},
                                    headers=bearer(GEN_ONLY_KEY))
        assert emb.status_code == 403
        assert emb.json()["error"]["code"] == "model_not_allowed"
        # No model named where the route could pick one itself: refused, not guessed.
        tei = await srv.client.post("/embed", json={"inputs": "x"}, headers=bearer(GEN_ONLY_KEY))
        assert (tei.status_code, tei.json()["error_type"]) == (403, "Forbidden")
        listed = await srv.client.get("/v1/models", headers=bearer(GEN_ONLY_KEY))
        assert listed.status_code == 200


async def test_concurrent_first_requests_with_a_new_key_verify_it_once(start,
                                                                         monkeypatch) -> None:
    import asyncio

    from hfserve.security.keys import KeyRing

    calls = []
    verify = KeyRing.verify

    def counted(self, presented):
        calls.append(presented)
        return verify(self, presented)

    monkeypatch.setattr(KeyRing, "verify", counted)
    async with start(keys=KEYS) as srv:
        await srv.wait_ready()
        answers = await asyncio.gather(*(srv.client.get("/v1/models",
                                                        headers=bearer(INFERENCE_KEY))
                                         for _ in range(16)))
        assert [a.status_code for a in answers] == [200] * 16
        # One scrypt for the key, however many requests brought it at once.
        assert calls == [INFERENCE_KEY.encode()]
        wrong = await asyncio.gather(*(srv.client.get("/v1/models", headers=bearer(WRONG_KEY))
                                       for _ in range(8)))
        assert [a.status_code for a in wrong] == [401] * 8
        assert calls.count(WRONG_KEY.encode()) == 1


@pytest.mark.parametrize("public", [False, True])
async def test_docs_and_metrics_are_public_only_when_asked(start, public: bool) -> None:
    async with start(keys=KEYS, public_docs_and_metrics=public) as srv:
        for path in ("/metrics", "/docs", "/redoc", "/openapi.json"):
            got = await srv.client.get(path)
            assert got.status_code == (200 if public else 401), path
            assert (await srv.client.get(path, headers=bearer(INFERENCE_KEY))).status_code \
                == 200


async def test_admin_routes_off_answer_404(start) -> None:
    async with start(keys=KEYS, admin_routes=False) as srv:
        got = await srv.client.post("/v1/models/emb/load", headers=bearer(ADMIN_KEY))
        assert got.status_code == 404
        assert got.json()["error"]["type"] == "not_found_error"


MCP_INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "raw", "version": "0"}}}
MCP_ACCEPT = {"accept": "application/json, text/event-stream"}


ADMIN_ONLY_KEY = "adm1n-Only-Key-For-Mcp-K5"


async def test_mcp_needs_an_inference_key_for_every_method(start) -> None:
    keys = [*KEYS, {"id": "ops-only", "key": ADMIN_ONLY_KEY, "scopes": ["admin"]}]
    async with start(keys=keys) as srv:
        for method in ("GET", "POST", "DELETE"):
            got = await srv.client.request(method, "/mcp", headers=MCP_ACCEPT,
                                           json=MCP_INIT if method == "POST" else None)
            assert got.status_code == 401, method
            assert got.json()["error"]["type"] == "authentication_error"
        admin_only = await srv.client.post("/mcp", json=MCP_INIT,
                                           headers={**MCP_ACCEPT, **bearer(ADMIN_ONLY_KEY)})
        assert admin_only.status_code == 403
        assert admin_only.json()["error"]["code"] == "insufficient_scope"
        ok = await srv.client.post("/mcp", json=MCP_INIT,
                                   headers={**MCP_ACCEPT, **bearer(INFERENCE_KEY)})
        assert ok.status_code == 200, ok.text
        assert '"serverInfo"' in ok.text and ok.headers.get("mcp-session-id")


def mcp_result(response: httpx.Response) -> dict:
    """The JSON-RPC result of a POST answered as an SSE stream (one message)."""
    assert response.status_code == 200, response.text
    data = next(line[5:] for line in response.text.splitlines() if line.startswith("data:"))
    return json.loads(data)["result"]


async def test_an_mcp_key_limited_to_models_sees_and_calls_only_their_tools(start) -> None:
    async with start(keys=KEYS) as srv:
        await srv.wait_ready()
        headers = {**MCP_ACCEPT, **bearer(GEN_ONLY_KEY), "x-model": "gen"}
        init = await srv.client.post("/mcp", json=MCP_INIT, headers=headers)
        assert init.status_code == 200
        headers["mcp-session-id"] = init.headers["mcp-session-id"]
        headers["mcp-protocol-version"] = "2025-11-25"
        await srv.client.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "method": "notifications/initialized"})
        listed = mcp_result(await srv.client.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        assert sorted(t["name"] for t in listed["tools"]) == ["chat_gen", "complete_gen"]
        other = await srv.client.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "embed_emb", "arguments": {"input": "hi"}}})
        data = next(line[5:] for line in other.text.splitlines() if line.startswith("data:"))
        assert json.loads(data)["error"]["code"] == -32602
        every = {**headers, **bearer(INFERENCE_KEY)}
        del every["mcp-session-id"]
        init = await srv.client.post("/mcp", json=MCP_INIT, headers=every)
        every["mcp-session-id"] = init.headers["mcp-session-id"]
        await srv.client.post("/mcp", headers=every, json={
            "jsonrpc": "2.0", "method": "notifications/initialized"})
        listed = mcp_result(await srv.client.post("/mcp", headers=every, json={
            "jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        assert "embed_emb" in {t["name"] for t in listed["tools"]}


async def test_mcp_off_answers_404(start) -> None:
    async with start(mcp=False) as srv:
        got = await srv.client.post("/mcp", json=MCP_INIT, headers=MCP_ACCEPT)
        assert got.status_code == 404


# --- Host and Origin ----------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    {"host": "evil.example"}, {"host": "localhost.evil.example:8000"},
    {"host": "localhost:8000", "origin": "https://evil.example"},
    {"host": "127.0.0.1", "origin": "null"}])
async def test_a_hostile_host_or_origin_cannot_post(start, headers: dict[str, str]) -> None:
    async with start() as srv:
        await srv.wait_ready()
        got = await srv.client.post(CHAT_URL, json=chat_body(), headers=headers)
        assert got.status_code == 403
        assert got.json()["error"]["code"] in ("host_not_allowed", "origin_not_allowed")
        tei = await srv.client.post("/embed", json={"inputs": "x"}, headers=headers)
        assert (tei.status_code, tei.json()["error_type"]) == (403, "Forbidden")
        # Reading is not what the rule guards.
        assert (await srv.client.get("/v1/models", headers=headers)).status_code == 200


@pytest.mark.parametrize("headers", [
    {"host": "localhost:8000"}, {"host": "127.0.0.1:1234"}, {"host": "[::1]:80"},
    {"host": "api.example.com"}, {"host": "localhost", "origin": "http://localhost:3000"},
    {"host": "127.0.0.1", "origin": "https://app.example.org"},
    {"host": "192.168.1.20:8000"}])
async def test_local_and_allowed_hosts_and_origins_can_post(start, headers) -> None:
    async with start(allowed_hosts=["testserver", "api.example.com"],
                     cors_origins=["https://app.example.org"]) as srv:
        await srv.wait_ready()
        got = await srv.client.post(CHAT_URL, json=chat_body(), headers=headers)
        assert got.status_code == 200, got.text


async def test_cors_is_off_by_default_and_answers_allowed_origins(start) -> None:
    async with start() as srv:
        got = await srv.client.get("/health", headers={"origin": "https://app.example.org"})
        assert "access-control-allow-origin" not in got.headers
    async with start(cors_origins=["https://app.example.org"]) as srv:
        pre = await srv.client.options(CHAT_URL, headers={
            "origin": "https://app.example.org", "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://app.example.org"
        other = await srv.client.options(CHAT_URL, headers={
            "origin": "https://evil.example", "access-control-request-method": "POST"})
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


# --- the audit log ------------------------------------------------------------------------
async def test_refusals_and_admin_calls_are_audited_without_keys(start, caplog) -> None:
    caplog.set_level(logging.INFO, logger="hfserve.audit")
    async with start(keys=KEYS) as srv:
        await srv.client.post(CHAT_URL, json=chat_body(), headers=bearer(WRONG_KEY))
        await srv.client.post("/v1/models/emb/unload", headers=bearer(INFERENCE_KEY))
        await srv.client.post("/v1/models/emb/load", headers=bearer(ADMIN_KEY))
        await srv.client.post("/v1/embeddings", json={"model": "emb", "input": "x"},
                              headers={"x-api-key": GEN_ONLY_KEY})
    lines = [r.getMessage() for r in caplog.records if r.name == "hfserve.audit"]
    text = "\n".join(lines)
    for key in (ADMIN_KEY, INFERENCE_KEY, GEN_ONLY_KEY, WRONG_KEY):
        assert key not in text
    assert any("status=401" in x and "invalid key" in x and "/v1/chat/completions" in x
               and "client=" in x for x in lines), lines
    assert any("status=403" in x and "key=app" in x and "/v1/models/emb/unload" in x
               for x in lines), lines
    assert any(x.startswith("admin ") and "key=ops" in x and "/v1/models/emb/load" in x
               for x in lines), lines
    assert any("status=403" in x and "key=gen-app" in x and "reason=model" in x
               for x in lines), lines


