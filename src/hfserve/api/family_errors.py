"""Routes whose errors take another API family's body (TEI's, TGI's): a route class that
turns every failure of its handler, validation included, into that body."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

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


@dataclass(frozen=True)
class RouteInfo:
    """One route as the app serves it (FastAPI may nest included routers)."""

    path: str
    methods: frozenset[str]
    route: BaseRoute
    regex: re.Pattern[str]
    convertors: dict


def app_routes(app) -> list[RouteInfo]:
    """Every route of ``app``, included routers flattened."""
    out: list[RouteInfo] = []

    def visit(items) -> None:
        for item in items:
            nested = getattr(item, "effective_candidates", None)
            if nested is not None:
                visit(nested() if callable(nested) else nested)
                continue
            route = getattr(item, "original_route", item)
            regex = getattr(item, "path_regex", None)
            if regex is None:
                continue                 # a mount or a websocket route without a path
            out.append(RouteInfo(getattr(item, "path", ""), frozenset(
                getattr(item, "methods", None) or ()), route, regex,
                dict(getattr(item, "param_convertors", {}))))

    visit(getattr(app, "routes", ()))
    return out


def matched_route(scope) -> tuple[BaseRoute | None, dict]:
    """The app's route a request goes to (one of another method if none matches fully)
    and its path parameters, found before routing (middleware runs before it)."""
    partial: tuple[BaseRoute | None, dict] = (None, {})
    for info in app_routes(scope.get("app")):
        found = info.regex.match(scope["path"])
        if found is None:
            continue
        params = {k: info.convertors[k].convert(v) if k in info.convertors else v
                  for k, v in found.groupdict().items()}
        if not info.methods or scope.get("method") in info.methods:
            return info.route, params
        if partial[0] is None:
            partial = (info.route, params)
    return partial


def error_for(scope, exc: HFServeError) -> Response:
    """``exc`` in the error body of the API family of the route the request goes to."""
    route, _ = matched_route(scope)
    render = getattr(route, "render_error", None)
    return render(exc) if render is not None else on_error_of(exc)
