"""Ray Serve mode: one deployment per model, each replica running hfserve's own engine for
that model, behind an ingress deployment serving the same FastAPI app as a single server
(``api.app.create_app``) over an engine client whose calls go to the model deployments.

``serve run hfserve.ray:build_app config=models.yaml`` or ``hfserve serve --ray``."""

from __future__ import annotations

from typing import Any


def build_app(settings: Any = None) -> Any:
    """The Ray Serve application (``hfserve.ray.app.build_app``); imported on call, so that
    ``import hfserve.ray`` works without Ray installed."""
    from hfserve.ray.app import build_app as build

    return build(settings)
