"""What crosses from a model deployment to the ingress besides the engine's own events: the
head of a generation stream, and Ray's errors turned into the server's."""

from __future__ import annotations

from dataclasses import dataclass

from ray.exceptions import RayActorError, RayError, RayTaskError
from ray.serve.exceptions import BackPressureError, RayServeException

from hfserve.errors import HFServeError, ModelError, ModelUnavailable, Overloaded

RETRY_AFTER = {"Retry-After": "1"}


@dataclass
class StreamStart:
    """First item of a generation stream: what the ingress's handle needs before any event
    (the route names the response after ``request_id`` and reads tool calls with
    ``tool_parser``)."""

    request_id: str
    model: str
    prompt_ids: list[int]
    created: int
    tool_parser: str | None


def server_error(exc: BaseException, model: str) -> BaseException:
    """The server's error for what a call to ``model``'s deployment raised: the replica's own
    error as it raised it; a replica that died (or is being replaced) a 503 the client may
    retry; a full deployment a 429; anything else a 500 without its details. (A replica's
    error arrives as a ``RayTaskError`` that is an instance of the error's class too, its
    text a traceback: the error itself is its ``cause``.)"""
    if isinstance(exc, RayTaskError):
        cause = exc.cause
        if isinstance(cause, HFServeError):
            return cause
        if isinstance(cause, RayError):       # the replica's own call to Ray failed
            return server_error(cause, model)
        return ModelError(f"model {model!r} failed: {type(cause).__name__}")
    if isinstance(exc, BackPressureError):
        return Overloaded(f"model {model!r} has no room for more requests; retry later")
    if isinstance(exc, HFServeError):
        return exc
    if isinstance(exc, RayActorError | RayServeException | RayError):
        return ModelUnavailable(f"the replica serving model {model!r} is unavailable (it "
                                "died or is being replaced); retry", headers=dict(RETRY_AFTER))
    return ModelError(f"model {model!r} failed: {type(exc).__name__}")
