"""The Ray Serve application: one deployment per configured model, or one shared by the
models that name the same ``ray_multiplex`` deployment (``ray.layout``), behind one
ingress deployment serving the HTTP API. Each deployment's replicas, the CPUs and GPUs each
reserves and its autoscaling come from its models' ``ray_*`` settings, else the server's."""

from __future__ import annotations

from typing import Any

from ray import serve

from hfserve.config import Settings
from hfserve.errors import InvalidRequest
from hfserve.model_config import ModelConfig
from hfserve.ray.deployment import ModelReplica, MultiplexedReplica
from hfserve.ray.ingress import Ingress
from hfserve.ray.layout import Planned, deployment_name, plan
from hfserve.runtime.routing.groups import Groups

__all__ = ["build_app", "deployment_name", "deployment_options", "model_options"]

INGRESS = "hfserve"
HEALTH_CHECK_PERIOD_S = 10.0
HEALTH_CHECK_TIMEOUT_S = 30.0


def _cpus(model: ModelConfig) -> float:
    return model.ray_num_cpus if model.ray_num_cpus is not None else (model.threads or 1)


def _gpus(model: ModelConfig) -> float:
    if model.ray_num_gpus is not None:
        return model.ray_num_gpus
    return 1 if model.device.startswith("cuda") else 0


def _largest(values: list[Any]) -> Any:
    """A multiplexed deployment takes each setting's largest among its models (its replica
    must hold any of them); None when no model sets it."""
    given = [v for v in values if v is not None]
    return max(given) if given else None


def deployment_options(settings: Settings, planned: Planned) -> dict[str, Any]:
    """``Deployment.options`` of one model deployment."""
    models = planned.models
    options: dict[str, Any] = {
        "name": planned.name,
        "ray_actor_options": {"num_cpus": _largest([_cpus(m) for m in models]),
                              "num_gpus": _largest([_gpus(m) for m in models])},
        # One replica takes as many requests as its engine queues; past that, a 429.
        "max_ongoing_requests": sum(m.max_queue for m in models),
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "health_check_timeout_s": HEALTH_CHECK_TIMEOUT_S,
        "graceful_shutdown_timeout_s": settings.drain_timeout_s,
        "logging_config": logging_config(settings),
    }
    replicas = _largest([m.ray_replicas for m in models])
    high = _largest([m.ray_max_replicas for m in models]) or settings.ray_max_replicas
    if high is None:
        options["num_replicas"] = replicas
        return options
    low = _largest([m.ray_min_replicas for m in models])
    low = low if low is not None else settings.ray_min_replicas
    low = low if low is not None else 1
    if low > high:
        raise InvalidRequest(f"deployment {planned.name!r}: ray_min_replicas ({low}) is "
                             f"above ray_max_replicas ({high})", param="ray_min_replicas")
    target = _largest([m.ray_target_ongoing_requests for m in models]) or \
        settings.ray_target_ongoing_requests
    options["autoscaling_config"] = {
        "min_replicas": low, "max_replicas": high,
        "initial_replicas": min(max(replicas, low), high),
        "target_ongoing_requests": target}
    return options


def model_options(settings: Settings, model: ModelConfig) -> dict[str, Any]:
    """``Deployment.options`` of the deployment of one model of its own."""
    return deployment_options(settings, Planned(deployment_name(model), (model,)))


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


def check_groups(settings: Settings) -> None:
    """The ingress routes a group's requests (``runtime.routing.groups``): a group naming no
    served model fails the build rather than the ingress's start."""
    names = {n: mc.served_name for mc in settings.model_configs()
             for n in [mc.served_name, *mc.aliases]}
    try:
        Groups(settings.groups, names.get)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="groups") from None


def build_app(given: Settings | dict[str, Any] | None = None) -> Any:
    """The application ``serve.run`` deploys (and ``serve run hfserve.ray:build_app``)."""
    settings = settings_of(given)
    planned = plan(settings)
    check_groups(settings)
    handles: dict[str, Any] = {}
    for p in planned:
        cls = MultiplexedReplica if p.multiplexed else ModelReplica
        options = deployment_options(settings, p)
        bound = serve.deployment(cls).options(**options)
        handles[p.name] = bound.bind(settings, list(p.models), settings.ray_multiplex_models) \
            if p.multiplexed else bound.bind(settings, p.models[0])
    ingress = serve.deployment(serve.ingress()(Ingress))
    return ingress.options(**ingress_options(settings)).bind(settings, handles)
