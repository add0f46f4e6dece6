"""Pure-ASGI middleware (safe on streaming responses): body size limit, request id and
request metrics (keys and hosts: ``guard.py``; rate limits: ``ratelimit.py``)."""

from __future__ import annotations

import json
import re
import time
import uuid

from hfserve import metrics
from hfserve.errors import HFServeError, PayloadTooLarge
from hfserve.runtime import served

MODEL_HEADER = b"x-hfserve-model"   # the served model that answered (a group's arm)
REPLICA_HEADER = b"x-hfserve-replica"   # and which of its replicas
CLIENT_CLOSED = 499      # nginx's status for a request whose client went away first
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")


def _request_id(given: bytes | None) -> bytes:
    """The client's X-Request-Id when it is printable ASCII of sane length, else a new one
    (a header is any bytes; echoing them back or logging them must not fail)."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex.encode()


async def send_error(send, exc: HFServeError) -> None:
    body = json.dumps(exc.to_dict()).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for bodies over ``limit`` bytes, by Content-Length or while streaming in."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await send_error(send, self._too_large())
        if length is not None:
            return await self.app(scope, receive, send)
        # No length given (chunked): read the body here, so an oversized one gets a clean 413
        # instead of failing inside the framework's body parsing.
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await send_error(send, self._too_large())
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than {self.limit} bytes")


class RequestMetrics:
    """X-Request-Id on every response; count and time requests by route, model, status."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        request_id = _request_id(dict(scope["headers"]).get(b"x-request-id"))
        status = 500
        recorded = False
        record = served.Served(request_id.decode("latin-1"))
        served.CURRENT.set(record)

        async def tracked(message):
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = message["status"]
                names = [(MODEL_HEADER, record.model.encode())] if record.model else []
                if record.replica:
                    names.append((REPLICA_HEADER, record.replica.encode()))
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id), *names]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                recorded = True
                self._record(scope, status, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            if not recorded:   # the client left first (or the app failed): counted too
                self._record(scope, CLIENT_CLOSED, time.perf_counter() - started)

    @staticmethod
    def _record(scope, status: int, seconds: float) -> None:
        """Labels come only from the app (its route templates) and the model registry
        (routes store the served name they resolved), never from what a client sent."""
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        model = (scope.get("state") or {}).get("model", "")
        metrics.REQUESTS.labels(path, model, str(status)).inc()
        metrics.REQUEST_LATENCY.labels(path, model).observe(seconds)
