"""The model a request names, found before the route runs, for keys limited to some models
and for limits per model: a ``model`` path parameter, the JSON body's ``model`` field, or
the ``X-Model`` header. The body is read only when needed, and replayed to the route."""

from __future__ import annotations

import json

from hfserve.api.family_errors import matched_route
from hfserve.api.guard import inference_caller, refuse
from hfserve.errors import PermissionDenied

NOT_SERVED = "\x00"          # a name nothing is served under: what label_of gives the unknown


async def read_body(receive) -> list[dict]:
    """Every message of the request body (the body limit ran before: it is bounded)."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            return messages


def model_in_body(messages: list[dict]) -> str | None:
    try:
        body = json.loads(b"".join(m.get("body", b"") for m in messages))
    except (ValueError, UnicodeDecodeError):
        return None                     # the route answers the bad body itself
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


class ModelGate:
    """Puts the served name of the model a request names on ``scope["state"]["model_name"]``
    (None when it names none or an unknown one) and refuses (403) a key not allowed to use
    it. ``per_model``: some model has limits of its own, so every request needs its name."""

    def __init__(self, app, *, per_model: bool) -> None:
        self.app, self.per_model = app, per_model

    async def __call__(self, scope, receive, send):
        caller = inference_caller(scope)
        if caller is None:
            return await self.app(scope, receive, send)
        state = scope["state"]
        if caller.models is None and not self.per_model:
            return await self.app(scope, receive, send)
        _, params = matched_route(scope)
        name = params.get("model")
        messages: list[dict] = []
        if name is None and scope["method"] in ("POST", "PUT", "PATCH"):
            messages = await read_body(receive)
            name = model_in_body(messages)
        if name is None:
            given = dict(scope["headers"]).get(b"x-model")
            name = given.decode("latin-1") if given else None
        engine = scope["app"].state.engine
        served = _served(engine, name)
        state["model_name"] = served
        if caller.models is not None and scope["method"] != "GET":
            allowed = {_served(engine, m) for m in caller.models} - {None}
            if name is None:
                return await refuse(scope, receive, send, PermissionDenied(
                    "this API key may use only some models: name one with `model` or the "
                    "X-Model header", param="model", code="model_not_allowed"), "no model",
                    caller)
            if name not in caller.models and served not in allowed:
                return await refuse(scope, receive, send, PermissionDenied(
                    "this API key may not use this model", param="model",
                    code="model_not_allowed"), "model", caller)

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)


def _served(engine, name: str | None) -> str | None:
    if name is None:
        return None
    label = engine.label_of(name)
    return None if label == engine.label_of(NOT_SERVED) else label
