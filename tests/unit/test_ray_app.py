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
from hfserve.ray.app import build_app, deployment_options, model_options  # noqa: E402
from hfserve.ray.client import RayEngineClient  # noqa: E402
from hfserve.ray.deployment import (  # noqa: E402
    ModelReplica,
    MultiplexedReplica,
    Tenant,
    multiplexed_settings,
)
from hfserve.ray.layout import plan  # noqa: E402
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
    assert set(models) == {"minilm", "org_smol"}         # keyed by deployment name
    assert models["minilm"].name == "minilm" and models["org_smol"].name == "org_smol"
    assert models["minilm"].num_replicas == 3
    assert models["minilm"].ray_actor_options == {"num_cpus": 0.5, "num_gpus": 0}
    # defaults: the model's threads, one GPU on a cuda device
    assert models["org_smol"].ray_actor_options == {"num_cpus": 4, "num_gpus": 1}
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


def test_a_models_own_autoscaling_wins_over_the_servers() -> None:
    s = Settings(ray_max_replicas=5, ray_target_ongoing_requests=4, models=[
        {"source": "/m/a", "name": "a", "ray_min_replicas": 0, "ray_max_replicas": 8,
         "ray_target_ongoing_requests": 1.5},
        {"source": "/m/b", "name": "b"},
        {"source": "/m/c", "name": "c", "ray_replicas": 2, "ray_num_gpus": 0.25}])
    s = s.model_copy(update={"ray_max_replicas": None})
    a, b, c = s.model_configs()
    assert model_options(s, a)["autoscaling_config"] == {
        "min_replicas": 0, "max_replicas": 8, "initial_replicas": 1,
        "target_ongoing_requests": 1.5}
    assert "autoscaling_config" not in model_options(s, b)      # no max anywhere: fixed
    assert model_options(s, b)["num_replicas"] == 1
    fixed = model_options(s, c)
    assert fixed["num_replicas"] == 2
    assert fixed["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0.25}


def test_multiplexed_models_share_one_deployment() -> None:
    s = Settings(ray_multiplex_models=2, models=[
        {"source": "/m/a", "name": "a", "ray_multiplex": "small", "ray_num_cpus": 0.5,
         "max_queue": 10},
        {"source": "/m/big", "name": "big", "threads": 2},
        {"source": "/m/b", "name": "b", "ray_multiplex": "small", "ray_num_cpus": 1,
         "ray_replicas": 2, "max_queue": 20},
        {"source": "/m/c", "name": "org/c", "ray_multiplex": "small", "aliases": ["c"]}])
    planned = plan(s)
    assert [(p.name, p.multiplexed) for p in planned] == [("small", True), ("big", False)]
    assert [m.served_name for m in planned[0].models] == ["a", "b", "org/c"]
    options = deployment_options(s, planned[0])
    # the largest of its models' figures: any one of them must fit a replica
    assert options["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0}
    assert options["num_replicas"] == 2
    assert options["max_ongoing_requests"] == 10 + 20 + 1024   # what their queues hold
    _, handles = build_app(s)._bound_deployment.init_args
    shared = handles["small"]._bound_deployment
    assert shared.func_or_class is MultiplexedReplica
    assert handles["big"]._bound_deployment.func_or_class is ModelReplica
    passed, models, most = shared.init_args
    assert [m.served_name for m in models] == ["a", "b", "org/c"] and most == 2
    replica = multiplexed_settings(passed, models)
    assert replica.preload == "none" and not replica.ray and replica.groups == []
    assert [m.served_name for m in replica.models] == ["a", "b", "org/c"]


def test_a_tenant_unloads_its_model_once() -> None:
    unloaded: list[str] = []
    tenant = Tenant("a", unloaded.append)
    tenant.__del__()            # Ray Serve dropping it past its count...
    tenant.__del__()            # ...and Python collecting it
    assert unloaded == ["a"]


def test_access_log_follows_the_setting() -> None:
    s = settings(access_log=True, log_level="warning")
    assert model_options(s, s.model_configs()[0])["logging_config"] == {
        "enable_access_log": True, "log_level": "WARNING"}


def test_build_app_refuses_what_ray_mode_cannot_serve() -> None:
    with pytest.raises(InvalidRequest, match="no models"):
        build_app(Settings())
    twice = Settings(models=[{"source": "/m/a", "name": "a/b"}, {"source": "/m/b", "name": "a_b"}])
    with pytest.raises(InvalidRequest, match="share a name"):
        build_app(twice)
    clash = Settings(models=[{"source": "/m/a", "name": "a"},
                             {"source": "/m/b", "name": "b", "ray_multiplex": "a"}])
    with pytest.raises(InvalidRequest, match="share a name"):
        build_app(clash)
    lost = Settings(models=[{"source": "/m/a", "name": "a"}],
                    groups=[{"name": "g", "task": "feature-extraction", "models": ["nope"]}])
    with pytest.raises(InvalidRequest, match="nope") as caught:
        build_app(lost)
    assert caught.value.param == "groups"


def test_serve_run_arguments_are_settings() -> None:
    app = build_app({"models": "/m/minilm", "threads": "1"})
    passed, handles = app._bound_deployment.init_args
    assert passed.threads == 1 and list(handles) == ["_m_minilm"]


def test_local_ray_binds_the_loopback_without_dashboard() -> None:
    options = launch.local_ray_options(num_cpus=2)
    assert options == {"_node_ip_address": "127.0.0.1", "include_dashboard": False,
                       "num_cpus": 2}


class FakeEngine:
    def __init__(self, ok: bool, states: dict, broken: dict | None = None) -> None:
        self.answer, self.failed = (ok, states), broken or {}

    def ready(self):
        return self.answer

    def broken(self):
        return self.failed


def replica(cls, engine: FakeEngine):
    # without Ray Serve's constructor call, nor its awaited __del__ (no engine to close)
    made = object.__new__(type("Probe", (cls,), {"__del__": lambda self: None}))
    made.name, made.engine = "m", engine
    return made


def test_health_follows_the_engines_readiness() -> None:
    replica(ModelReplica, FakeEngine(True, {"m": "ready"})).check_health()
    replica(ModelReplica, FakeEngine(True, {"m": "unloaded"})).check_health()
    # its breaker open (or its worker dead): readiness false, the replica is replaced
    with pytest.raises(ModelUnavailable, match="not ready"):
        replica(ModelReplica, FakeEngine(False, {"m": "ready"})).check_health()
    with pytest.raises(ModelUnavailable, match="failed"):
        replica(ModelReplica, FakeEngine(False, {"m": "failed"})).check_health()
    # a multiplexed replica: one model's failure is that model's 503s, not a new replica
    replica(MultiplexedReplica, FakeEngine(False, {"a": "failed", "b": "ready"})).check_health()
    with pytest.raises(ModelUnavailable, match="worker died"):
        replica(MultiplexedReplica, FakeEngine(
            False, {"a": "failed"}, {"a": "worker died"})).check_health()


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
                            "org_smol": FakeHandle(status("org/smol", ready=False))})
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
                            "org_smol": FakeHandle(status("org/smol"))})
    try:
        ok, states = client.ready()
        assert not ok and states["minilm"] == "unavailable"
        assert client.describe("minilm")["state"] == "unavailable"
    finally:
        await client.close()


async def test_calls_pass_the_alias_and_the_replicas_error_through() -> None:
    minilm = FakeHandle(status("minilm"), run=ContextLengthExceeded("too long", param="input"))
    client = await started({"minilm": minilm, "org_smol": FakeHandle(status("org/smol"))})
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


class Options:
    """``handle.options(...)``: what it was given, and the handle's methods."""

    def __init__(self, handle: FakeHandle, given: dict) -> None:
        self.handle, self.given = handle, given

    def __getattr__(self, name: str):
        method = getattr(self.handle, name)
        given = self.given

        class Bound:
            def remote(self, *args):
                method.options.append(given)
                return method.remote(*args)
        return Bound()


class MultiplexedHandle(FakeHandle):
    def __init__(self, status, run=None) -> None:
        super().__init__(status, run)
        self.run.options = []

    def options(self, **given):
        return Options(self, given)


def shared_status(states: dict[str, str], **extra) -> dict:
    return {"models": [{"id": n, "object": "model", "created": 1, "owned_by": "hfserve",
                        "state": st} for n, st in states.items()],
            "ready": True, "states": states, "breakers": {}, "broken": {},
            "replica": "r1", "requests": 0, **extra}


def multiplexed(**kw) -> Settings:
    return Settings(models=[
        {"source": "/m/a", "name": "a", "ray_multiplex": "small", "aliases": ["first"]},
        {"source": "/m/b", "name": "b", "ray_multiplex": "small"},
        {"source": "/m/c", "name": "c"}], **kw)


async def test_a_multiplexed_call_names_its_model() -> None:
    small = MultiplexedHandle(shared_status({"a": "ready", "b": "unloaded"}), run="result")
    client = RayEngineClient(multiplexed(), {"small": small,
                                            "c": FakeHandle(status("c"), run="own")})
    await client.start()
    try:
        assert await client.run("first", None, ["x"]) == "result"  # type: ignore[arg-type]
        assert await client.run("b", None, ["x"]) == "result"      # type: ignore[arg-type]
        assert small.run.options == [{"multiplexed_model_id": "a"},
                                     {"multiplexed_model_id": "b"}]
        assert [c[0] for c in small.run.calls] == ["first", "b"]
        assert await client.run("c", None, ["x"]) == "own"         # type: ignore[arg-type]
        assert len(small.status.calls) == 1         # one status call per deployment
        assert {m["id"]: m["state"] for m in client.models()} == \
            {"a": "ready", "b": "unloaded", "c": "ready"}
        assert client.describe("first")["id"] == "a"
        assert client.ready() == (True, {"a": "ready", "b": "unloaded", "c": "ready"})
    finally:
        await client.close()


async def test_groups_route_at_the_ingress_as_in_one_process() -> None:
    groups = [{"name": "emb", "task": "feature-extraction", "models": ["a", "c"],
               "weights": {"a": 1, "c": 0}}]
    small = MultiplexedHandle(shared_status({"a": "ready", "b": "ready"}), run="from-a")
    client = RayEngineClient(multiplexed(groups=groups),
                             {"small": small, "c": FakeHandle(status("c"), run="from-c")})
    await client.start()
    try:
        from hfserve.runtime import served
        from hfserve.types import Task

        served.CURRENT.set(served.Served("req-1"))
        for task in (Task.FEATURE_EXTRACTION, Task.FEATURE_EXTRACTION):
            assert await client.run("emb", task, ["x"]) == "from-a"
        assert await client.run("auto", Task.FEATURE_EXTRACTION, ["x"]) == "from-a"
        assert small.run.options[-1] == {"multiplexed_model_id": "a"}
        assert served.CURRENT.get().model == "a"            # the response names the member
        arms = {a["model"]: a for a in client.group("emb")["arms"]}
        assert arms["a"]["requests"] == 3 and arms["c"]["requests"] == 0
        assert client.feedback("req-1", 1.0) == {"id": "req-1", "group": "emb", "model": "a"}
        assert client.label_of("emb") == "emb"
        assert any(m["id"] == "emb" and m.get("group") for m in client.models())
        assert client.describe("emb")["models"] == ["a", "c"]
        with pytest.raises(InvalidRequest, match="serves feature-extraction"):
            await client.run("emb", Task.TEXT_CLASSIFICATION, ["x"])
    finally:
        await client.close()


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
