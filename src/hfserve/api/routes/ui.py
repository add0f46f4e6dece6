"""GET /ui: the dashboard and playground, static files shipped inside the package
(``api/ui/``). Public and secret-free (the page asks for a key itself when the server has
keys); every file is sent with a strict Content-Security-Policy: scripts, styles and
requests only from this server, nothing inline, no frames.

One route per file, fixed when the module is imported, rather than a static-files mount:
no path from a request ever reaches the file system, and each file gets the headers below."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
    "img-src 'self' data: blob:", "base-uri 'none'", "form-action 'none'",
    "frame-ancestors 'none'"))
HEADERS = {"content-security-policy": CONTENT_SECURITY_POLICY,
           "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "x-frame-options": "DENY", "cache-control": "no-cache"}
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".png": "image/png",
               ".svg": "image/svg+xml"}
FOLDER = files("hfserve.api") / "ui"

router = APIRouter(tags=["UI"])


def _route(body: bytes, media_type: str):
    async def serve() -> Response:
        return Response(body, media_type=media_type, headers=HEADERS)
    return serve


def _add(path: str, name: str) -> None:
    resource = FOLDER / name
    media_type = MEDIA_TYPES[name[name.rindex("."):]]
    router.add_api_route(path, _route(resource.read_bytes(), media_type), methods=["GET"],
                         include_in_schema=False, response_class=Response)


for _name in sorted(r.name for r in FOLDER.iterdir()
                    if r.is_file() and r.name[r.name.rfind("."):] in MEDIA_TYPES):
    _add(f"/ui/{_name}", _name)
_add("/ui", "index.html")
_add("/ui/", "index.html")
