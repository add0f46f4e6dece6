"""Who can reach the server: the start-up refusal to expose admin routes to the network
without keys, and the Host / Origin rule that keeps a web page in a browser (DNS rebinding,
cross-site form posts) from changing anything."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from hfserve.config import Settings

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: Settings) -> str | None:
    """Why the server must not start as configured, or None."""
    if settings.admin_routes and not settings.keys and not is_loopback(settings.host):
        return (f"refusing to serve admin routes on {settings.host}, which other machines "
                "can reach, without API keys: set `keys` (or `api_key`), bind a loopback "
                "address (--host 127.0.0.1), or turn admin routes off (--no-admin-routes)")
    return None


def host_name(value: str) -> str:
    """The name part of a Host header value (``[::1]:8000`` -> ``[::1]``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


class HostRule:
    """Host names (and origins) a mutating request is accepted through."""

    def __init__(self, allowed: list[str], bound: str, origins: list[str]) -> None:
        self.any = "*" in allowed
        self.names = {a.lower() for a in allowed if not a.startswith("*.")} | LOCAL_NAMES
        self.names.add(host_name(bound) if not _is_ip(bound) else bound.lower())
        self.suffixes = tuple(a.lower()[1:] for a in allowed if a.startswith("*."))
        self.origins = {o.rstrip("/").lower() for o in origins}

    def name_allowed(self, name: str) -> bool:
        return self.any or name in self.names or (bool(self.suffixes)
                                                  and name.endswith(self.suffixes))

    def host_allowed(self, host: str | None) -> bool:
        if host is None:
            return False
        name = host_name(host)
        # An IP address in Host cannot be a rebound name: a page reaching the server by its
        # address is of that origin, and the Origin check still applies to it.
        return self.name_allowed(name) or _is_ip(name)

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins or "*" in self.origins:
            return True
        if origin == "null":          # sandboxed frames, file:// pages
            return False
        try:
            parts = urlsplit(origin)
            name = parts.hostname
        except ValueError:
            return False
        if not name or parts.scheme not in ("http", "https"):
            return False
        return self.name_allowed(f"[{name}]" if ":" in name else name)
