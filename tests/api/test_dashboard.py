"""The web UI's files (public, with a strict Content-Security-Policy) and the JSON metrics
summary its charts draw."""

from __future__ import annotations

import re

from test_app import CHAT_URL, chat_body

from hfserve.api.routes.ui import FOLDER

KEY = "dashb0ard-Key-For-Tests-9QX"


def _scripts_and_styles(html: str) -> list[str]:
    return re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', html)


async def test_ui_is_public_with_a_strict_csp_even_with_keys(start) -> None:
    async with start(api_key=KEY) as srv:
        page = await srv.client.get("/ui")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["connect-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        # Nothing inline for the policy to forbid: every script is a file of the package.
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)
        assert not re.search(r"\s(style|on\w+)=", page.text)   # no inline style or handler
        for url in _scripts_and_styles(page.text):
            assert url.startswith("/ui/")
            asset = await srv.client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-security-policy"] == csp
        script = await srv.client.get("/ui/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert (await srv.client.get("/ui/")).text == page.text
        # Every module the page imports is served.
        for module in FOLDER.iterdir():
            for imported in re.findall(r'from "\./([\w.]+)"', module.read_text()):
                assert (await srv.client.get(f"/ui/{imported}")).status_code == 200
        # The APIs the page calls still need the key.
        assert (await srv.client.get("/v1/models")).status_code == 401
        assert (await srv.client.get("/metrics/summary")).status_code == 401
        assert (await srv.client.get("/ui/../v1/models")).status_code in (401, 404)
        assert (await srv.client.get("/ui/nothing.js")).status_code == 404


async def test_metrics_summary_counts_requests_and_tokens(server) -> None:
    first = (await server.client.get("/metrics/summary")).json()
    embedded = await server.client.post("/v1/embeddings", json={"model": "emb",
                                                                "input": ["a", "b c"]})
    assert embedded.status_code == 200
    chat = await server.client.post(CHAT_URL, json=chat_body(max_tokens=4))
    assert chat.status_code == 200
    second = (await server.client.get("/metrics/summary")).json()
    assert second["totals"]["requests"] == first["totals"]["requests"] + 2   # not its own
    completion = second["totals"]["tokens"].get("completion", 0)
    assert completion >= first["totals"]["tokens"].get("completion", 0) + 1
    assert second["window_seconds"] > 0
    assert second["requests_per_second"] > 0
    assert second["tokens_per_second"]["completion"] > 0
    latency = second["latency_seconds"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert second["batch_size"]["p50"] > 0
    assert set(second["queue_depth"]) >= {"emb", "gen"}
    assert all(v >= 0 for v in second["queue_depth"].values())


async def test_ui_off_is_a_404_and_the_rest_serves(start) -> None:
    async with start(ui=False) as srv:
        for path in ("/ui", "/ui/", "/ui/app.js"):
            response = await srv.client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["type"] == "not_found_error"
        assert (await srv.client.get("/metrics/summary")).status_code == 200
