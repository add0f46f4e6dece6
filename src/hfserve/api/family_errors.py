"""Routes whose errors take another API family's body (TEI's, TGI's): a route class that
turns every failure of its handler, validation included, into that body."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from hfserve.api.errors import validation_message
from hfserve.errors import HFServeError, InvalidRequest, public

# (error class, status, error_type), most specific first.
ErrorTable = list[tuple[type[HFServeError], int, str]]


def family_error(table: ErrorTable, exc: HFServeError, fallback: str) -> JSONResponse:
    """``{"error", "error_type"}`` with the status the family gives ``exc``."""
    status, kind = next(((s, k) for cls, s, k in table if isinstance(exc, cls)),
                        (exc.status, fallback))
    return JSONResponse({"error": public(exc.message), "error_type": kind},
                        status_code=status, headers=exc.headers)


def route_class(render: Callable[[HFServeError], JSONResponse]) -> type[APIRoute]:
    class FamilyRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                try:
                    return await handler(request)
                except RequestValidationError as exc:
                    return render(InvalidRequest(validation_message(exc)[0]))
                except HTTPException as exc:        # a body that does not parse at all
                    return render(InvalidRequest(str(exc.detail)))
                except HFServeError as exc:
                    return render(exc)

            return route

    return FamilyRoute
