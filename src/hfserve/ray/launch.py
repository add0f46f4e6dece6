"""``hfserve serve --ray``: join a Ray cluster (or start a local instance bound to
127.0.0.1 with the dashboard off), start Ray Serve's HTTP proxy on the server's host and
port, deploy the application, and serve until interrupted."""

from __future__ import annotations

import importlib.util
import signal
import threading
from typing import Any

from hfserve.config import Settings

APP_NAME = "hfserve"
INSTALL = "Ray mode needs Ray Serve: pip install 'hfserve[ray]'"


def local_ray_options(num_cpus: int | None = None) -> dict[str, Any]:
    """``ray.init`` of a local instance: every Ray service on the loopback address, no
    dashboard (Ray's dashboard and job API run code for anyone who reaches them)."""
    options: dict[str, Any] = {"_node_ip_address": "127.0.0.1", "include_dashboard": False}
    if num_cpus is not None:
        options["num_cpus"] = num_cpus
    return options


def start_ray(settings: Settings) -> None:
    import ray

    if settings.ray_address:
        ray.init(address=settings.ray_address)
    else:
        ray.init(**local_ray_options())


def available() -> bool:
    return importlib.util.find_spec("ray") is not None and \
        importlib.util.find_spec("ray.serve") is not None


def serve_ray(settings: Settings) -> None:
    """Deploy and serve until SIGINT or SIGTERM; then the application is deleted (and a
    local Ray instance shut down)."""
    import ray
    from ray import serve

    from hfserve.ray.app import build_app

    start_ray(settings)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        serve.delete(APP_NAME)
    finally:
        if not settings.ray_address:
            serve.shutdown()
            ray.shutdown()
