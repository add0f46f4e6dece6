"""Ray Serve mode without starting Ray: the deployments ``build_app`` makes and their options,
the ingress client's view of its deployments, Ray's errors as the server's, the CLI flags."""

from __future__ import annotations

import asyncio

import pytest

from hfserve import cli
from hfserve.config import Settings
from hfserve.errors import (
    ContextLengthExceeded,
    DeadlineExceeded,
    InvalidRequest,
    ModelError,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
)
from hfserve.model_config import ModelConfig

pytest.importorskip("ray.serve")

from ray.exceptions import ActorDiedError, RayTaskError  # noqa: E402
from ray.serve.exceptions import BackPressureError  # noqa: E402

from hfserve.ray import launch  # noqa: E402
from hfserve.ray.app import build_app, model_options  # noqa: E402
from hfserve.ray.client import RayEngineClient  # noqa: E402
from hfserve.ray.wire import server_error  # noqa: E402


def settings(**kw) -> Settings:
    return Settings(models=[{"source": "/m/minilm", "name": "minilm", "ray_replicas": 3,
                             "ray_num_cpus": 0.5, "aliases": ["mini"]},
                            {"source": "/m/smol.gguf", "name": "org/smol", "device": "cuda",
                             "threads": 4}], **kw)


def test_one_deployment_per_model_behind_the_ingress() -> None:
    app = build_app(settings())
    ingress = app._bound_deployment
    assert ingress.name == "hfserve"
    assert ingress.ray_actor_options["num_cpus"] == 0
    passed, handles = ingress.init_args
    assert isinstance(passed, Settings)
    models = {name: bound._bound_deployment for name, bound in handles.items()}
    assert set(models) == {"minilm", "org/smol"}
    assert models["minilm"].name == "minilm" and models["org/smol"].name == "org_smol"
    assert models["minilm"].num_replicas == 3
    assert models["minilm"].ray_actor_options == {"num_cpus": 0.5, "num_gpus": 0}
    # defaults: the model's threads, one GPU on a cuda device
    assert models["org/smol"].ray_actor_options == {"num_cpus": 4, "num_gpus": 1}
    config, model = models["minilm"].init_args
    assert model.served_name == "minilm" and config.models == passed.models


def test_autoscaling_between_the_servers_bounds() -> None:
    s = settings(ray_min_replicas=2, ray_max_replicas=5, ray_target_ongoing_requests=4)
    options = model_options(s, s.model_configs()[0])
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 5,
                                             "initial_replicas": 3,
                                             "target_ongoing_requests": 4.0}
    low = settings(ray_min_replicas=6, ray_max_replicas=5)
    with pytest.raises(InvalidRequest, match="ray_min_replicas"):
        model_options(low, low.model_configs()[0])


def test_access_log_follows_the_setting() -> None:
    s = settings(access_log=True, log_level="warning")
    assert model_options(s, s.model_configs()[0])["logging_config"] == {
        "enable_access_log": True, "log_level": "WARNING"}


def test_build_app_refuses_what_ray_mode_cannot_serve() -> None:
    with pytest.raises(InvalidRequest, match="no models"):
        build_app(Settings())
    twice = Settings(models=[{"source": "/m/a", "name": "a/b"}, {"source": "/m/b", "name": "a_b"}])
    with pytest.raises(InvalidRequest, match="deployment name"):
        build_app(twice)


def test_serve_run_arguments_are_settings() -> None:
    app = build_app({"models": "/m/minilm", "threads": "1"})
    passed, handles = app._bound_deployment.init_args
    assert passed.threads == 1 and list(handles) == ["/m/minilm"]


def test_local_ray_binds_the_loopback_without_dashboard() -> None:
    options = launch.local_ray_options(num_cpus=2)
    assert options == {"_node_ip_address": "127.0.0.1", "include_dashboard": False,
                       "num_cpus": 2}


# --- the ingress's client -------------------------------------------------------------------
class Method:
    def __init__(self, answer) -> None:
        self.answer = answer
        self.calls: list[tuple] = []

    def remote(self, *args):
        self.calls.append(args)

        async def reply():
            if isinstance(self.answer, BaseException):
                raise self.answer
            if self.answer == "hang":
                await asyncio.sleep(3600)
            return self.answer
        return reply()


class FakeHandle:
    def __init__(self, status, run=None) -> None:
        self.status = Method(status)
        self.hardware = Method({"devices": []})
        self.run = Method(run)


def status(name: str, ready: bool = True, **extra) -> dict:
    return {"models": [{"id": name, "object": "model", "created": 1, "owned_by": "hfserve",
                        "state": "ready" if ready else "loading"}],
            "ready": ready, "states": {name: "ready" if ready else "loading"},
            "breakers": {}, "broken": {}, "replica": "r1", "requests": 0, **extra}


async def started(handles, **kw) -> RayEngineClient:
    client = RayEngineClient(settings(**kw), handles)
    await client.start()
    return client


async def test_client_answers_from_each_deployments_status() -> None:
    client = await started({"minilm": FakeHandle(status("minilm")),
                            "org/smol": FakeHandle(status("org/smol", ready=False))})
    try:
        assert [m["id"] for m in client.models()] == ["minilm", "org/smol"]
        assert client.describe("mini")["id"] == "minilm"
        assert client.label_of("mini") == "minilm"
        assert client.label_of("nope") == client.label_of("other")
        assert client.ready() == (False, {"minilm": "ready", "org/smol": "loading"})
        with pytest.raises(ModelNotFound, match="'nope' does not exist"):
            client.describe("nope")
        with pytest.raises(ModelNotFound, match="'nope' does not exist"):
            await client.run("nope", None, ["hi"])     # type: ignore[arg-type]
        client.begin_drain()
        assert client.ready()[0] is False
    finally:
        await client.close()


async def test_a_deployment_that_does_not_answer_is_unavailable() -> None:
    client = await started({"minilm": FakeHandle(ActorDiedError()),
                            "org/smol": FakeHandle(status("org/smol"))})
    try:
        ok, states = client.ready()
        assert not ok and states["minilm"] == "unavailable"
        assert client.describe("minilm")["state"] == "unavailable"
    finally:
        await client.close()


async def test_calls_pass_the_alias_and_the_replicas_error_through() -> None:
    minilm = FakeHandle(status("minilm"), run=ContextLengthExceeded("too long", param="input"))
    client = await started({"minilm": minilm, "org/smol": FakeHandle(status("org/smol"))})
    try:
        with pytest.raises(ContextLengthExceeded, match="too long"):
            await client.run("mini", None, ["x"])      # type: ignore[arg-type]
        assert minilm.run.calls[0][:3] == ("mini", None, ["x"])
        minilm.run.answer = "hang"
        with pytest.raises(DeadlineExceeded):
            await client.run("mini", None, ["x"], timeout=0.05)  # type: ignore[arg-type]
    finally:
        await client.close()


async def test_admin_routes_say_ray_mode_serves_its_deployments() -> None:
    client = RayEngineClient(settings(), {})
    with pytest.raises(InvalidRequest, match="Ray mode"):
        await client.unload_model("minilm")
    with pytest.raises(InvalidRequest, match="Ray mode"):
        client.load_events("minilm")


# --- Ray's errors as the server's ---------------------------------------------------------
def task_error(cause: BaseException) -> RayTaskError:
    return RayTaskError("run", "Traceback...", cause).as_instanceof_cause()


def test_ray_errors_become_the_servers() -> None:
    mine = ContextLengthExceeded("too long", param="messages")
    assert server_error(task_error(mine), "m") is mine
    hidden = server_error(task_error(KeyError("/secret/path")), "m")
    assert isinstance(hidden, ModelError) and "secret" not in hidden.message
    dead = server_error(ActorDiedError(), "m")
    assert isinstance(dead, ModelUnavailable) and dead.status == 503
    assert dead.headers["Retry-After"] == "1"
    wrapped = task_error(mine)
    assert isinstance(wrapped, ContextLengthExceeded)   # Ray's dual class: its text a traceback
    assert server_error(wrapped, "m") is mine
    assert isinstance(server_error(ValueError("/x/y"), "m"), ModelError)
    assert isinstance(server_error(BackPressureError(num_queued_requests=1,
                                                     max_queued_requests=1), "m"), Overloaded)


# --- the command line ---------------------------------------------------------------------
def test_ray_flags_come_from_the_settings() -> None:
    args = cli.build_parser().parse_args(["serve", "/m/minilm", "--ray", "--ray-address", "auto",
                                          "--ray-max-replicas", "4"])
    s = cli.settings_from(args)
    assert s.ray and s.ray_address == "auto" and s.ray_max_replicas == 4


def test_ray_without_ray_installed_says_how_to_install(monkeypatch, capsys) -> None:
    monkeypatch.setattr(launch, "available", lambda: False)
    assert cli.main(["serve", "/m/minilm", "--ray"]) == 2
    assert "pip install 'hfserve[ray]'" in capsys.readouterr().err


def test_model_fields_validate() -> None:
    with pytest.raises(ValueError):
        ModelConfig(source="/m/a", ray_replicas=0)
    with pytest.raises(ValueError):
        ModelConfig(source="/m/a", ray_num_gpus=-1)
