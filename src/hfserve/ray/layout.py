"""Which Ray Serve deployment serves which model: one deployment per model, except the
models that name one ``ray_multiplex`` deployment, which share its replicas (Ray Serve's
model multiplexing). Pure: the application builds the deployments from it, and the
ingress's client routes each model's calls by it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hfserve.config import Settings
from hfserve.errors import InvalidRequest
from hfserve.model_config import ModelConfig


def deployment_name(model: ModelConfig) -> str:
    """The model's served name as a deployment name (Ray Serve's names hold no '/' or '#')."""
    return re.sub(r"[^\w.-]", "_", model.served_name)


@dataclass(frozen=True)
class Planned:
    """One deployment: its name, the models its replicas serve, and whether they share
    them (multiplexed: each call names its model, each replica loads the ones asked of it)."""

    name: str
    models: tuple[ModelConfig, ...]
    multiplexed: bool = False


def plan(settings: Settings) -> list[Planned]:
    """The application's model deployments, in the configuration's order (a multiplexed
    one where its first model is)."""
    models = settings.model_configs()
    if not models:
        raise InvalidRequest("no models to serve", param="models")
    shared: dict[str, list[ModelConfig]] = {}
    order: list[str | ModelConfig] = []
    for mc in models:
        if mc.ray_multiplex is None:
            order.append(mc)
            continue
        if mc.ray_multiplex not in shared:
            shared[mc.ray_multiplex] = []
            order.append(mc.ray_multiplex)
        shared[mc.ray_multiplex].append(mc)
    planned = [Planned(item, tuple(shared[item]), multiplexed=True) if isinstance(item, str)
               else Planned(deployment_name(item), (item,)) for item in order]
    names = [p.name for p in planned]
    if len(set(names)) != len(names):
        raise InvalidRequest(f"two deployments share a name: {', '.join(names)} (model names "
                             "and ray_multiplex names must differ once '/' and '#' read '_')",
                             param="models")
    return planned


def by_model(planned: list[Planned]) -> dict[str, Planned]:
    """Each served model name -> the deployment serving it."""
    return {mc.served_name: p for p in planned for mc in p.models}
