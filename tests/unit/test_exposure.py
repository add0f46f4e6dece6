"""Who can reach the server: the start-up refusal, the Host / Origin rule, route scopes."""

from __future__ import annotations

import asyncio

import pytest

from hfserve import cli, usage
from hfserve.api.access import Scope, scope_of
from hfserve.config import Settings
from hfserve.security.exposure import HostRule, exposure_problem, is_loopback

KEY = "Zq8-rT2vLm9xW4pK7sB1"


@pytest.mark.parametrize(("host", "loop"), [("127.0.0.1", True), ("127.0.0.2", True),
                                            ("localhost", True), ("::1", True),
                                            ("[::1]", True), ("0.0.0.0", False),
                                            ("::", False), ("10.1.2.3", False),
                                            ("example.com", False)])
def test_loopback_addresses(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_admin_routes_on_the_network_without_keys_are_refused() -> None:
    problem = exposure_problem(Settings(host="0.0.0.0"))
    assert problem and "0.0.0.0" in problem and "keys" in problem
    assert exposure_problem(Settings(host="0.0.0.0", api_key=KEY)) is None
    assert exposure_problem(Settings(host="0.0.0.0", admin_routes=False)) is None
    assert exposure_problem(Settings(host="127.0.0.1")) is None


def test_the_cli_exits_before_serving(capsys) -> None:
    assert cli.main(["serve", "--host", "0.0.0.0", "some-model"]) == 2
    assert "refusing to serve admin routes on 0.0.0.0" in capsys.readouterr().err


def test_hash_key_prints_a_hash_of_the_key_on_stdin(monkeypatch, capsys) -> None:
    import io

    from hfserve.security import hashing

    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert cli.main(["hash-key"]) == 0
    printed = capsys.readouterr().out.strip()
    assert hashing.verify(KEY.encode(), printed) and KEY not in printed
    monkeypatch.setattr("sys.stdin", io.StringIO("changeme\n"))
    assert cli.main(["hash-key"]) == 2


RULE = HostRule(["api.example.com", "*.corp.example"], "myhost", ["https://app.example.org"])


@pytest.mark.parametrize(("host", "ok"), [
    ("localhost:8000", True), ("127.0.0.1:1234", True), ("[::1]:80", True), ("localhost", True),
    ("myhost:8000", True), ("api.example.com", True), ("a.corp.example:443", True),
    ("10.0.0.7:8000", True), ("evil.example", False), ("corp.example", False),
    ("localhost.evil.example", False), (None, False), ("", False)])
def test_hosts(host: str | None, ok: bool) -> None:
    assert RULE.host_allowed(host) is ok


@pytest.mark.parametrize(("origin", "ok"), [
    ("http://localhost:3000", True), ("http://127.0.0.1:8000", True), ("http://[::1]:9", True),
    ("https://app.example.org", True), ("https://api.example.com", True),
    ("https://x.corp.example", True), ("https://evil.example", False), ("null", False),
    ("http://10.0.0.7", False), ("file://", False), ("https://app.example.org.evil", False)])
def test_origins(origin: str, ok: bool) -> None:
    assert RULE.origin_allowed(origin) is ok


def test_any_host_when_asked() -> None:
    assert HostRule(["*"], "127.0.0.1", []).host_allowed("anything.example")


@pytest.mark.parametrize(("method", "path", "scope"), [
    ("GET", "/health", Scope.PUBLIC), ("GET", "/ready", Scope.PUBLIC),
    ("GET", "/static/app.js", Scope.PUBLIC), ("GET", "/static/../v1/models", Scope.INFERENCE),
    ("GET", "/metrics", Scope.DOCS), ("GET", "/openapi.json", Scope.DOCS),
    ("GET", "/docs", Scope.DOCS), ("GET", "/redoc", Scope.DOCS),
    ("POST", "/v1/models", Scope.ADMIN), ("POST", "/v1/models/a/b/load", Scope.ADMIN),
    ("POST", "/v1/models/x/unload", Scope.ADMIN), ("DELETE", "/v1/models/x", Scope.ADMIN),
    ("GET", "/admin", Scope.ADMIN), ("POST", "/admin/anything", Scope.ADMIN),
    ("GET", "/v1/models", Scope.INFERENCE), ("GET", "/v1/models/x/load", Scope.INFERENCE),
    ("POST", "/v1/chat/completions", Scope.INFERENCE), ("POST", "/embed", Scope.INFERENCE),
    ("GET", "/administrator", Scope.INFERENCE), ("POST", "/no/such/route", Scope.INFERENCE)])
def test_route_scopes(method: str, path: str, scope: Scope) -> None:
    assert scope_of(method, path) is scope


async def test_usage_is_metered_in_the_request_and_the_tasks_it_starts() -> None:
    usage.record(5)                                   # no meter open: nowhere, no error
    with usage.metering() as meter:
        usage.record(3)

        async def streamed() -> None:
            usage.record(4)

        await asyncio.create_task(streamed())
        usage.record(0)
    usage.record(100)
    assert meter.tokens == 7


def test_serving_directly_is_refused_too() -> None:
    from hfserve.api.server import serve

    with pytest.raises(SystemExit, match="refusing to serve admin routes"):
        serve(Settings(host="0.0.0.0"))
