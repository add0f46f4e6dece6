"""Turn every failure into OpenAI's error envelope; never leak a traceback or a path."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hfserve.errors import HFServeError, InvalidRequest, error_body

log = logging.getLogger("hfserve.api")

HTTP_TYPES = {401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
              413: "invalid_request_error", 429: "rate_limit_error"}


def envelope(status: int, message: str, type_: str, param: str | None = None,
             code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, param, code), status_code=status,
                        headers=headers)


async def on_hfserve_error(request: Request, exc: HFServeError) -> JSONResponse:
    return envelope(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)


def _field(part: object) -> bool:
    """Whether a pydantic location part names a field or an index, not a union member
    (``constrained-str``, ``list[int]``, ``function-after[...]``, ``str``)."""
    return isinstance(part, int) or (part != "body" and part not in _TYPE_NAMES
                                    and not any(c in str(part) for c in "[-("))


_TYPE_NAMES = {"str", "int", "float", "bool", "list", "dict", "none"}


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """The message and the offending field of a request that failed validation."""
    errors = exc.errors()
    # A value that matches no member of a union fails once per member: the error that is
    # not about the value's type says what is wrong ("at least 1 item", not "a string").
    first = next((e for e in errors if not str(e.get("type", "")).endswith("_type")),
                 errors[0] if errors else {})
    loc = [str(p) for p in first.get("loc", ()) if _field(p)]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "request body is not valid JSON", param
    if first.get("type") == "extra_forbidden":
        return f"unknown field {param!r}", param
    return f"{param or 'body'}: {first.get('msg', 'invalid value')}", param


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, param = validation_message(exc)
    return on_error_of(InvalidRequest(message, param=param))


def on_error_of(exc: HFServeError) -> JSONResponse:
    return envelope(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)


async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return envelope(exc.status_code, str(exc.detail),
                    HTTP_TYPES.get(exc.status_code, "invalid_request_error"),
                    headers=getattr(exc, "headers", None))


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return envelope(500, "internal server error", "server_error", code="internal_error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(HFServeError, on_hfserve_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
