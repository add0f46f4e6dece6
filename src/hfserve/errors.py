"""One error tree for the whole server. No HTTP imports: each class carries its status,
its OpenAI error ``type``, the offending ``param`` and a machine ``code``; the API layer
turns any of them into the OpenAI envelope."""

from __future__ import annotations

import re

# What an error body may never carry: file system paths (reduced to their last part),
# object addresses, and anything after a message's first line (tracebacks, the argument
# lists native bindings print).
_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+[\w.@+-]*")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{4,}\b")
MAX_MESSAGE = 500


def public(text: str | None, limit: int = MAX_MESSAGE) -> str | None:
    """``text`` as a client may see it: its first line, without paths or addresses,
    at most ``limit`` characters, and encodable (a lone surrogate a client sent, echoed in
    a message, would make the body unencodable)."""
    if text is None:
        return None
    first = next((line for line in str(text).strip().splitlines() if line.strip()), "")
    first = _PATH.sub(lambda m: m.group(0).rsplit("/", 1)[-1], first)
    first = _ADDRESS.sub("0x…", first)
    if len(first) > limit:
        first = first[:limit - 1] + "…"
    return first.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(message: str, type_: str, param: str | None = None,
               code: str | None = None) -> dict:
    """OpenAI's error envelope, the one place every error body is built."""
    return {"error": {"message": public(message), "type": type_, "param": public(param, 200),
                      "code": code}}


class HFServeError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def __reduce__(self):
        """Pickle with every attribute (errors cross into the server from model processes)."""
        return _rebuild, (type(self), self.message, dict(self.__dict__))

    def to_dict(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


class InvalidRequest(HFServeError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class UnsafeModel(InvalidRequest):
    """A model whose loading would run code it ships: pickle weights or custom Python,
    without the setting that allows it."""

    code = "unsafe_model"


class MalformedModel(InvalidRequest):
    """A weights file whose header is broken, truncated or out of bounds."""

    code = "malformed_model_file"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationError(HFServeError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(HFServeError):
    """A valid key that may not do this: the route needs another scope, or the key may not
    use the model named, or the request came through a host or origin not allowed."""

    status = 403
    type = "permission_error"
    code = "insufficient_permissions"


class NotFound(HFServeError):
    """No such route (or one switched off by the settings)."""

    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(HFServeError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class UnsupportedTask(HFServeError):
    """The model exists but does not do what the route asks of it."""

    status = 400
    type = "invalid_request_error"
    code = "unsupported_task"


class PayloadTooLarge(HFServeError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class Overloaded(HFServeError):
    """A bounded queue is full: retry after a while."""

    status = 429
    type = "rate_limit_error"
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", str(max(1, round(retry_after))))


class RateLimited(Overloaded):
    """A key or a model used up its requests or tokens for now."""

    code = "rate_limit_exceeded"


class ModelLoading(HFServeError):
    status = 503
    type = "service_unavailable"
    code = "model_loading"

    def __init__(self, message: str, *, retry_after: float = 5.0, **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", str(max(1, round(retry_after))))


class ModelUnavailable(HFServeError):
    """The model failed to load or its worker is broken."""

    status = 503
    type = "service_unavailable"
    code = "model_unavailable"


class ModelExists(HFServeError):
    status = 409
    type = "invalid_request_error"
    code = "model_exists"


class Forbidden(HFServeError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class MemoryExhausted(HFServeError):
    """A model does not fit beside the models that may not be evicted (pinned or busy)."""

    status = 503
    type = "service_unavailable"
    code = "model_memory_exhausted"

    def __init__(self, message: str, *, retry_after: float = 5.0, **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", str(max(1, round(retry_after))))


class CircuitOpen(ModelLoading):
    """The model failed several requests in a row: requests fail fast for a while."""

    code = "model_circuit_open"


class UnservableModels(HFServeError):
    """A configured model cannot be served: the server does not start."""

    code = "unservable_models"


class ServerShuttingDown(HFServeError):
    """The server is stopping: new work is refused, and work still running when its drain
    time is up is ended with this."""

    status = 503
    type = "service_unavailable"
    code = "server_shutting_down"


class LimitsUnavailable(HFServeError):
    """The shared rate limit store does not answer: requests are refused rather than let
    through unmetered."""

    status = 503
    type = "service_unavailable"
    code = "rate_limit_store_unavailable"

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", str(max(1, round(retry_after))))


class DeviceOutOfMemory(ModelLoading):
    """The device ran out of memory mid-request; the model is being moved elsewhere."""

    code = "device_out_of_memory"


class DeadlineExceeded(HFServeError):
    status = 504
    type = "timeout_error"
    code = "deadline_exceeded"


class Cancelled(HFServeError):
    status = 499
    type = "cancelled"
    code = "client_closed_request"


class ModelError(HFServeError):
    """The model raised while running a request; the message is safe to show."""

    status = 500
    type = "server_error"
    code = "model_error"


class InvalidPluginOutput(HFServeError):
    """A plugin skill answered with something that is not a result (a placeholder, a mock,
    the wrong shape): the server refuses to pass it on as one."""

    status = 502
    type = "server_error"
    code = "invalid_plugin_output"


def _rebuild(cls: type[HFServeError], message: str, attributes: dict) -> HFServeError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error
