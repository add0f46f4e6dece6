"""Which model served the request in hand: the HTTP layer opens one record per request (with
its X-Request-Id), the engine fills in the model it ran, and the response names it in a
header. A context variable, so that no route has to pass it along."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Served:
    request_id: str
    model: str | None = None
    replica: str | None = None


CURRENT: ContextVar[Served | None] = ContextVar("hfserve_served", default=None)


def note(model: str, replica: str | None = None) -> None:
    served = CURRENT.get()
    if served is not None:
        served.model, served.replica = model, replica


def request_id() -> str | None:
    served = CURRENT.get()
    return served.request_id if served is not None else None
