"""The Ray Serve application: one deployment per configured model (its replicas and the
CPUs and GPUs each reserves from the model's ``ray_*`` settings, autoscaled between the
server's ``ray_min_replicas`` and ``ray_max_replicas`` when the latter is set) behind one
ingress deployment serving the HTTP API."""

from __future__ import annotations

import re
from typing import Any

from ray import serve

from hfserve.config import Settings
from hfserve.errors import InvalidRequest
from hfserve.model_config import ModelConfig
from hfserve.ray.deployment import ModelReplica
from hfserve.ray.ingress import Ingress

INGRESS = "hfserve"
HEALTH_CHECK_PERIOD_S = 10.0
HEALTH_CHECK_TIMEOUT_S = 30.0


def deployment_name(model: ModelConfig) -> str:
    """The model's served name as a deployment name (Ray Serve's names hold no '/' or '#')."""
    return re.sub(r"[^\w.-]", "_", model.served_name)


def model_options(settings: Settings, model: ModelConfig) -> dict[str, Any]:
    """``Deployment.options`` of one model's deployment."""
    cpus = model.ray_num_cpus if model.ray_num_cpus is not None else (model.threads or 1)
    gpus = model.ray_num_gpus if model.ray_num_gpus is not None else \
        (1 if model.device.startswith("cuda") else 0)
    options: dict[str, Any] = {
        "name": deployment_name(model),
        "ray_actor_options": {"num_cpus": cpus, "num_gpus": gpus},
        # One replica takes as many requests as its engine queues; past that, a 429.
        "max_ongoing_requests": model.max_queue,
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "health_check_timeout_s": HEALTH_CHECK_TIMEOUT_S,
        "graceful_shutdown_timeout_s": settings.drain_timeout_s,
        "logging_config": logging_config(settings),
    }
    if settings.ray_max_replicas is None:
        options["num_replicas"] = model.ray_replicas
        return options
    low = settings.ray_min_replicas if settings.ray_min_replicas is not None else 1
    high = settings.ray_max_replicas
    if low > high:
        raise InvalidRequest(f"ray_min_replicas ({low}) is above ray_max_replicas ({high})",
                             param="ray_min_replicas")
    options["autoscaling_config"] = {
        "min_replicas": low, "max_replicas": high,
        "initial_replicas": min(max(model.ray_replicas, low), high),
        "target_ongoing_requests": settings.ray_target_ongoing_requests}
    return options


def logging_config(settings: Settings) -> dict[str, Any]:
    """Ray Serve logs every call (the ingress's status calls too) unless told otherwise:
    it does so only with ``access_log``, as the single server does."""
    return {"enable_access_log": settings.access_log, "log_level": settings.log_level.upper()}


def ingress_options(settings: Settings) -> dict[str, Any]:
    """The ingress only parses, routes and streams: it reserves no CPU of the models'."""
    return {"name": INGRESS, "ray_actor_options": {"num_cpus": 0},
            "max_ongoing_requests": 10_000, "logging_config": logging_config(settings)}


def settings_of(given: Settings | dict[str, Any] | None) -> Settings:
    """Settings from a ``Settings``, or the arguments ``serve run hfserve.ray:build_app
    config=models.yaml`` passes (a dict of strings), or the environment alone."""
    if isinstance(given, Settings):
        return given
    return Settings(**(given or {}))


def build_app(given: Settings | dict[str, Any] | None = None) -> Any:
    """The application ``serve.run`` deploys (and ``serve run hfserve.ray:build_app``)."""
    settings = settings_of(given)
    if settings.groups:
        raise InvalidRequest("model groups are not served in Ray mode", param="groups")
    models = settings.model_configs()
    if not models:
        raise InvalidRequest("no models to serve", param="models")
    names = [deployment_name(m) for m in models]
    if len(set(names)) != len(names):
        raise InvalidRequest(f"two models share a deployment name: {', '.join(names)}",
                             param="models")
    replica = serve.deployment(ModelReplica)
    handles = {m.served_name: replica.options(**model_options(settings, m)).bind(settings, m)
               for m in models}
    ingress = serve.deployment(serve.ingress()(Ingress))
    return ingress.options(**ingress_options(settings)).bind(settings, handles)
