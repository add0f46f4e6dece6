"""What a route needs of its caller: the one table of it. A route is public (no key), docs
(public only when ``public_docs_and_metrics``), admin (changes what the server serves) or,
by default, inference. A new route is inference unless listed here; the route matrix test
enumerates every route of the app against this table."""

from __future__ import annotations

import re
from enum import StrEnum


class Scope(StrEnum):
    PUBLIC = "public"
    DOCS = "docs"
    INFERENCE = "inference"
    ADMIN = "admin"


PUBLIC_PATHS = frozenset({"/health", "/ready", "/ui"})
# Static web files (the UI), served as they are, hold no secrets: their whole prefix is open.
PUBLIC_PREFIXES: tuple[str, ...] = ("/static/", "/ui/")
DOCS_PATHS = frozenset({"/metrics", "/metrics/summary", "/docs", "/docs/oauth2-redirect", "/redoc",
                        "/openapi.json"})
# (methods, path pattern): routes that load, unload, add or remove models, and /admin.
ADMIN_ROUTES: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = (
    (frozenset({"POST"}), re.compile(r"/v1/models/?")),
    (frozenset({"POST"}), re.compile(r"/v1/models/.+/(load|unload|adapters)/?")),
    (frozenset({"DELETE", "PUT", "PATCH"}), re.compile(r"/v1/models/.+")),
    (frozenset({"*"}), re.compile(r"/admin(/.*)?")),
)


def scope_of(method: str, path: str) -> Scope:
    """The scope a request for ``path`` (as sent, or a route's template) needs."""
    if path in PUBLIC_PATHS or (path.startswith(PUBLIC_PREFIXES)
                                and ".." not in path.split("/")):
        return Scope.PUBLIC
    if path in DOCS_PATHS:
        return Scope.DOCS
    method = method.upper()
    for methods, pattern in ADMIN_ROUTES:
        if ("*" in methods or method in methods) and pattern.fullmatch(path):
            return Scope.ADMIN
    return Scope.INFERENCE
