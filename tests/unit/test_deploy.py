"""The deployment files (Dockerfiles, compose.yaml, deploy/k8s) checked against the app they
deploy: the linters and schema validators of each format, then what they say of the server
(probe and health check paths are routes of the app, ports agree, the entrypoint's arguments
and HFSERVE_* values are accepted by the real CLI and Settings, the grace period covers the
drain). Nothing is built or run: no Docker engine or cluster is needed."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hfserve.api.app import create_app
from hfserve.api.family_errors import app_routes
from hfserve.cli import build_parser, settings_from
from hfserve.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile", "Dockerfile.cuda"]
OVERLAYS = ["cpu", "gpu"]
URL_PATH = re.compile(r"https?://[^/'\"]+(/[\w/.-]*)")


def tool(name: str) -> str:
    """A linter installed by the dev extra: beside this interpreter, else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (make dev installs it)")
    return found


@pytest.fixture(scope="module")
def get_routes() -> set[str]:
    app = create_app(Settings())
    return {info.path for info in app_routes(app) if "GET" in info.methods}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text, pending = (pending + line).strip(), ""
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in steps:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def exec_form(steps: list[tuple[str, str]], word: str) -> list[str]:
    (rest,) = [r for w, r in steps if w == word]
    return json.loads(rest)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name: str) -> None:
    done = subprocess.run([tool("hadolint"), "--no-color", name], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_runs_the_server_as_configured(name: str, get_routes: set[str],
                                                  monkeypatch) -> None:
    steps = final_stage(ROOT / name)
    assert len([w for w, _ in instructions(ROOT / name) if w == "FROM"]) >= 2   # multi-stage
    (user,) = [r for w, r in steps if w == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0          # numeric, so runAsNonRoot can verify it
    env = env_of(steps)
    (exposed,) = [r for w, r in steps if w == "EXPOSE"]
    assert int(exposed) == int(env["HFSERVE_PORT"])
    (volumes,) = [json.loads(r) for w, r in steps if w == "VOLUME"]
    assert "/models" in volumes
    (check,) = [r for w, r in steps if w == "HEALTHCHECK"]
    assert URL_PATH.search(check).group(1) == "/health" in get_routes
    # The entrypoint's arguments and the image's HFSERVE_* values, through the real CLI.
    argv = exec_form(steps, "ENTRYPOINT") + exec_form(steps, "CMD")
    assert argv[0] == "hfserve"
    for key, value in env.items():
        if key.startswith("HFSERVE_"):
            monkeypatch.setenv(key, value)
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    settings = settings_from(args)
    assert settings.host == "0.0.0.0" and settings.port == int(exposed)
    assert settings.model_dirs == [Path("/models")]


def test_compose_services(get_routes: set[str]) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"hfserve", "redis", "prometheus", "grafana"}
    server = services["hfserve"]
    assert server["ports"] == ["8000:8000"]
    env = server["environment"]
    settings = Settings(rate_limit_store=env["HFSERVE_RATE_LIMIT_STORE"],
                        drain_timeout_s=float(env["HFSERVE_DRAIN_TIMEOUT_S"]))
    assert settings.rate_limit_store.startswith("redis://redis:")
    assert int(server["stop_grace_period"].rstrip("s")) > settings.drain_timeout_s
    assert any(v.endswith(":/models:ro") for v in server["volumes"])
    test = " ".join(server["healthcheck"]["test"])
    assert URL_PATH.search(test).group(1) in get_routes
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        for port in service.get("ports", []):    # nothing but the API leaves the host
            assert name == "hfserve" or port.startswith("127.0.0.1:"), name
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] in get_routes
    assert job["static_configs"][0]["targets"] == ["hfserve:8000"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/hfserve_api_key"
    assert compose["secrets"]["hfserve_api_key"]["environment"] == "HFSERVE_API_KEY"


def test_grafana_dashboard_queries_real_metrics() -> None:
    from hfserve import metrics

    names = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/hfserve.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"hfserve_\w+", target["expr"])}
    assert used
    for name in used:
        base = re.sub(r"_(bucket|total|count|sum)$", "", name)
        assert base in names or name in names, name


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    done = subprocess.run([tool("kubectl"), "kustomize", f"deploy/k8s/overlays/{request.param}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return request.param, [d for d in yaml.safe_load_all(done.stdout) if d]


def one(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def test_overlay_validates_against_kubernetes_schemas(rendered) -> None:
    import kubernetes_validate

    _, docs = rendered
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue                # a CRD of the Prometheus Operator: checked below
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_overlay_matches_the_server(rendered, get_routes: set[str]) -> None:
    overlay, docs = rendered
    deployment, service = one(docs, "Deployment"), one(docs, "Service")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    settings = Settings(host=env["HFSERVE_HOST"], port=int(env["HFSERVE_PORT"]),
                        model_dirs=json.loads(env["HFSERVE_MODEL_DIRS"]),
                        drain_timeout_s=float(env["HFSERVE_DRAIN_TIMEOUT_S"]))
    assert "HFSERVE_API_KEY" in env                  # 0.0.0.0 with admin routes needs a key
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.port}
    probes = {k: container[k]["httpGet"] for k in
              ("startupProbe", "readinessProbe", "livenessProbe")}
    for probe in probes.values():
        assert probe["path"] in get_routes and probe["port"] in ports
    assert probes["readinessProbe"]["path"] == "/ready"       # 503 while loading or draining
    assert probes["livenessProbe"]["path"] == "/health"
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + settings.drain_timeout_s
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"]
    assert one(docs, "PersistentVolumeClaim")["metadata"]["name"] == claim
    selector = service["spec"]["selector"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == \
        [(settings.port, "http")]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    if overlay == "gpu":
        assert metric["pods"]["metric"]["name"] == "hfserve_queue_depth"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["image"].endswith(":cuda")
    else:
        assert metric["resource"]["name"] == "cpu"
        assert container["resources"]["requests"]["cpu"]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] in get_routes
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
