"""One error tree for the whole server. No HTTP imports: each class carries its status,
its OpenAI error ``type``, the offending ``param`` and a machine ``code``; the API layer
turns any of them into the OpenAI envelope."""

from __future__ import annotations


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
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}


class InvalidRequest(HFServeError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationError(HFServeError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


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


def _rebuild(cls: type[HFServeError], message: str, attributes: dict) -> HFServeError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error
