"""Pure-ASGI middleware that decides who may come in: the Host / Origin rule for requests
that change something, and the API key with its scopes. Refusals take the error body of the
route's API family and go to the audit log."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from hfserve.api.access import Scope, scope_of
from hfserve.api.family_errors import error_for
from hfserve.errors import AuthenticationError, HFServeError, NotFound, PermissionDenied
from hfserve.security import audit
from hfserve.security.exposure import MUTATING, HostRule
from hfserve.security.keys import ANONYMOUS, Caller, KeyRing


async def refuse(scope, receive, send, exc: HFServeError, reason: str,
                 caller: Caller | None = None) -> None:
    audit.refused(status=exc.status, reason=reason, key_id=caller.id if caller else None,
                  method=scope.get("method", "-"), path=scope["path"],
                  client=audit.client_of(scope))
    if scope["type"] == "websocket":
        return await send({"type": "websocket.close", "code": 1008})
    await error_for(scope, exc)(scope, receive, send)


def _header(scope, name: bytes) -> bytes | None:
    found = None
    for key, value in scope["headers"]:
        if key == name:
            found = value
    return found


class HostGuard:
    """403 for a POST, PUT, PATCH or DELETE whose Host, or Origin when sent, is not one
    the server answers to: a page a browser loaded from elsewhere cannot change anything,
    even through a name rebound to this machine's address."""

    def __init__(self, app, rule: HostRule) -> None:
        self.app, self.rule = app, rule

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in MUTATING:
            host = _header(scope, b"host")
            origin = _header(scope, b"origin")
            if not self.rule.host_allowed(None if host is None else host.decode("latin-1")):
                return await refuse(scope, receive, send, PermissionDenied(
                    "this server does not answer to that Host (add it to allowed_hosts)",
                    code="host_not_allowed"), "host")
            if origin is not None and not self.rule.origin_allowed(origin.decode("latin-1")):
                return await refuse(scope, receive, send, PermissionDenied(
                    "requests from this Origin may not change anything (add it to "
                    "cors_origins or allowed_hosts)", code="origin_not_allowed"), "origin")
        return await self.app(scope, receive, send)


def presented_key(scope) -> bytes | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (never the query
    string, which ends up in logs and browser history). Kept as bytes: a header is any
    bytes, and neither decoding nor comparing may fail before the 401."""
    auth = _header(scope, b"authorization")
    if auth is not None and auth[:7].lower() == b"bearer ":
        token = auth[7:].strip()
        if token:
            return token
    token = (_header(scope, b"x-api-key") or b"").strip()
    return token or None


def inference_caller(scope) -> Caller | None:
    """The caller ``Authenticate`` let through to an HTTP route of the inference scope (what
    the model gate and the rate limits act on); None for any other request."""
    if scope["type"] != "http" or scope_of(scope["method"], scope["path"]) \
            is not Scope.INFERENCE:
        return None
    return scope.setdefault("state", {}).get("caller", ANONYMOUS)


class Authenticate:
    """Who the caller is (its key, or anonymous when no keys are set) and whether the route
    is theirs to call; the caller goes on ``scope["state"]["caller"]``."""

    def __init__(self, app, ring: KeyRing, *, public_docs: bool, admin_routes: bool) -> None:
        self.app, self.ring = app, ring
        self.public_docs, self.admin_routes = public_docs, admin_routes
        # One thread: a flood of made-up keys costs one core of scrypt, not all of them.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="hfserve-keys")
        # Verifications in flight by key: the first requests of many connections with one new
        # key wait for one scrypt, not one each in a queue (64 connections: seconds of it).
        self._verifying: dict[bytes, asyncio.Future] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        need = scope_of(scope.get("method", "GET"), scope["path"])
        if need is Scope.ADMIN and not self.admin_routes:
            return await refuse(scope, receive, send, NotFound("admin routes are turned off "
                                                               "(admin_routes)"), "disabled")
        if need is Scope.PUBLIC or (need is Scope.DOCS and (self.public_docs or not self.ring)):
            return await self.app(scope, receive, send)
        caller = await self._caller(scope) if self.ring else ANONYMOUS
        if caller is None:
            missing = presented_key(scope) is None
            return await refuse(scope, receive, send, AuthenticationError(
                "missing API key (send Authorization: Bearer <key> or X-API-Key)" if missing
                else "invalid API key"), "missing key" if missing else "invalid key")
        if need in (Scope.INFERENCE, Scope.ADMIN) and not caller.may(need.value):
            return await refuse(scope, receive, send, PermissionDenied(
                f"this API key lacks the {need.value} scope", code="insufficient_scope"),
                f"no {need.value} scope", caller)
        scope.setdefault("state", {})["caller"] = caller
        if need is not Scope.ADMIN:
            return await self.app(scope, receive, send)
        return await self._audited(scope, receive, send, caller)

    async def _caller(self, scope) -> Caller | None:
        key = presented_key(scope)
        if key is None:
            return None
        known = self.ring.remembered(key)
        if known is not None or self.ring.refused_before(key):
            return known
        pending = self._verifying.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(self._pool, self.ring.verify,
                                                                 key)
            self._verifying[key] = pending
            pending.add_done_callback(lambda _: self._verifying.pop(key, None))
        return await asyncio.shield(pending)

    async def _audited(self, scope, receive, send, caller: Caller) -> None:
        status = 500

        async def watched(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            audit.admin_call(status=status, key_id=caller.id, method=scope.get("method", "-"),
                             path=scope["path"], client=audit.client_of(scope))
