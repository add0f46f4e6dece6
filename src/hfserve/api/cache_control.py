"""Whether a request may be answered from the response cache: not when its
``Cache-Control`` says ``no-cache`` or ``no-store`` (then it runs and is not stored)."""

from __future__ import annotations

from fastapi import Request

BYPASS = frozenset({"no-cache", "no-store"})


def use_cache(request: Request) -> bool:
    values = request.headers.getlist("cache-control")
    directives = {part.strip().split("=", 1)[0].lower()
                  for value in values for part in value.split(",")}
    return not directives & BYPASS
