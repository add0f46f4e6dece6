"""The ingress deployment: the single server's FastAPI app (``api.app.create_app``: the same
routes, schemas, errors, middleware and streaming), its engine a ``RayEngineClient`` over
the model deployments' handles. Ray Serve runs the app's lifespan, which starts the client."""

from __future__ import annotations

from typing import Any

from hfserve.api.app import create_app
from hfserve.config import Settings
from hfserve.ray.client import RayEngineClient


class Ingress:
    """Wrapped by ``serve.ingress()`` in ``ray.app``; ``handles``: served model name -> its
    deployment's handle."""

    def __init__(self, settings: Settings, handles: dict[str, Any]) -> None:
        self.settings = settings
        self.client = RayEngineClient(settings, handles)

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.settings, self.client)
