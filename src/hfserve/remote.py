"""``hfserve ps``, ``hfserve load ID``, ``hfserve unload ID``: the admin routes of a running
server, from the command line (standard library HTTP; a table by rich when installed)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

COLUMNS = ("id", "state", "device", "resident", "pinned", "in_flight", "breaker")


def add_commands(sub: argparse._SubParsersAction) -> None:
    for name, text in (("ps", "list a running server's models and their states"),
                       ("load", "load a model on a running server"),
                       ("unload", "unload a model on a running server")):
        command = sub.add_parser(name, help=text)
        if name != "ps":
            command.add_argument("model", metavar="ID")
        if name == "load":
            command.add_argument("--device", default=None, help="load on this device instead")
            command.add_argument("--backend", default=None, help="load with this backend")
        add_target(command)


def add_target(command: argparse.ArgumentParser) -> None:
    """``--url`` and ``--api-key``: which running server, and the key it takes."""
    command.add_argument("--url", default=os.environ.get("HFSERVE_URL",
                                                         "http://127.0.0.1:8000"),
                         help="the server (default: $HFSERVE_URL or 127.0.0.1:8000)")
    command.add_argument("--api-key", default=os.environ.get("HFSERVE_API_KEY"),
                         help="bearer token (default: $HFSERVE_API_KEY)")


def _request(args: argparse.Namespace, method: str, path: str, body: dict | None = None,
             accept: str = "application/json"):
    headers = {"Accept": accept, "Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(args.url.rstrip("/") + path, data=data, method=method,
                                     headers=headers)
    return urllib.request.urlopen(request, timeout=600)  # noqa: S310 - an operator's URL


def _quoted(model: str) -> str:
    return urllib.parse.quote(model, safe="/")


def _size(n: Any) -> str:
    if not n:
        return "-"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def rows(models: list[dict[str, Any]]) -> list[list[str]]:
    return [[str(m.get("id")), str(m.get("state")), str(m.get("device") or "-"),
             _size(m.get("resident_bytes")), "yes" if m.get("pinned") else "no",
             str(m.get("in_flight", 0)), str(m.get("breaker", "-"))] for m in models]


def table(models: list[dict[str, Any]]) -> str:
    """A plain table (rich prints its own when installed)."""
    body = [list(COLUMNS), *rows(models)]
    widths = [max(len(r[i]) for r in body) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in body)


def _print_table(models: list[dict[str, Any]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(table(models))
        return
    grid = Table(*COLUMNS)
    for row in rows(models):
        grid.add_row(*row)
    Console().print(grid)


def _fail(exc: Exception) -> int:
    if isinstance(exc, urllib.error.HTTPError):
        try:
            error = json.loads(exc.read()).get("error", {})
            print(f"hfserve: {exc.code} {error.get('message')}", file=sys.stderr)
        except ValueError:
            print(f"hfserve: HTTP {exc.code}", file=sys.stderr)
    else:
        print(f"hfserve: cannot reach the server: {exc}", file=sys.stderr)
    return 1


def cmd_ps(args: argparse.Namespace) -> int:
    try:
        with _request(args, "GET", "/v1/models") as response:
            models = json.loads(response.read())["data"]
    except (urllib.error.URLError, OSError) as exc:
        return _fail(exc)
    _print_table(models)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    body = {k: v for k, v in (("device", args.device), ("backend", args.backend)) if v}
    try:
        with _request(args, "POST", f"/v1/models/{_quoted(args.model)}/load", body,
                      accept="text/event-stream") as response:
            last: dict[str, Any] = {}
            for raw in response:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    last = json.loads(line[6:])
                    details = {k: v for k, v in last.items() if k not in ("event", "model")}
                    print(f"{last['event']}: {json.dumps(details) if details else ''}".rstrip())
    except (urllib.error.URLError, OSError) as exc:
        return _fail(exc)
    return 0 if last.get("event") == "ready" else 1


def cmd_unload(args: argparse.Namespace) -> int:
    try:
        with _request(args, "POST", f"/v1/models/{_quoted(args.model)}/unload", {}) as r:
            card = json.loads(r.read())
    except (urllib.error.URLError, OSError) as exc:
        return _fail(exc)
    print(f"{card['id']}: {card['state']}")
    return 0


COMMANDS = {"ps": cmd_ps, "load": cmd_load, "unload": cmd_unload}
