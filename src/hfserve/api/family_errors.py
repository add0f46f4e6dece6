"""Routes whose errors take another API family's body (TEI's, TGI's): a route class that
turns every failure of its handler, validation included, into that body."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from hfserve.api.errors import on_error_of, validation_message
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
        # What middleware answering for this route before it runs renders errors with.
        render_error = staticmethod(render)

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


def matched_route(scope) -> tuple[BaseRoute | None, dict]:
    """The app's route a request goes to (a full match, else one of another method) and
    its path parameters, found before routing (middleware runs before it)."""
    app = scope.get("app")
    partial: tuple[BaseRoute | None, dict] = (None, {})
    for route in getattr(app, "routes", ()):
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route, child.get("path_params", {})
        if match is Match.PARTIAL and partial[0] is None:
            partial = (route, child.get("path_params", {}))
    return partial


def error_for(scope, exc: HFServeError) -> Response:
    """``exc`` in the error body of the API family of the route the request goes to."""
    route, _ = matched_route(scope)
    render = getattr(route, "render_error", None)
    return render(exc) if render is not None else on_error_of(exc)
