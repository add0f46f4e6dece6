"""The audit trail (logger ``hfserve.audit``): refused requests and calls of admin routes,
with the key's id, the route, the status and the client's address; never a key."""

from __future__ import annotations

import logging

log = logging.getLogger("hfserve.audit")


def _clean(text: str, limit: int = 200) -> str:
    """A client-chosen string fit for one log line."""
    return text[:limit].encode("unicode_escape").decode("ascii")


def refused(*, status: int, reason: str, key_id: str | None, method: str, path: str,
            client: str) -> None:
    log.warning("refused status=%d reason=%s key=%s method=%s route=%s client=%s", status,
                reason, key_id or "-", _clean(method, 16), _clean(path), client)


def admin_call(*, status: int, key_id: str | None, method: str, path: str,
               client: str) -> None:
    log.info("admin status=%d key=%s method=%s route=%s client=%s", status, key_id or "-",
             _clean(method, 16), _clean(path), client)


def client_of(scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"
