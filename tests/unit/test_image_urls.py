"""SSRF through image URLs: every disguise of loopback, link-local and private addresses,
IPv6 forms, a redirect from an allowed host to one not allowed, and ``file://`` are
refused with a 400-class error, and a sentinel server on loopback is never reached."""

from __future__ import annotations

import http.server
import threading

import pytest

from hfserve.errors import InvalidRequest
from hfserve.media.images import ImageLimits, image_bytes


class Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []
    target = ""

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.hits.append(self.path)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.target)
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def sentinel():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _disguises(port: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/a.png", f"http://localhost:{port}/a.png",
            f"http://2130706433:{port}/", f"http://0x7f000001:{port}/",
            f"http://0177.0.0.1:{port}/", f"http://127.1:{port}/", f"http://[::1]:{port}/",
            f"http://[::ffff:127.0.0.1]:{port}/", f"http://127.0.0.1.nip.io:{port}/",
            "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://192.168.1.1/",
            "http://[fe80::1]/", "file:///etc/passwd", "FILE:///etc/passwd",
            "gopher://127.0.0.1:70/", f"http://user@127.0.0.1:{port}/"]


def test_no_disguise_of_a_local_address_reaches_it(sentinel) -> None:
    Counting.hits.clear()
    for url in _disguises(sentinel):
        with pytest.raises(InvalidRequest) as refused:
            image_bytes(url, ImageLimits(), "messages")
        assert refused.value.status == 400
        assert "not allowed" in refused.value.message or "not taken" in refused.value.message
    assert Counting.hits == []


def test_a_redirect_off_the_allowlist_is_not_followed(sentinel) -> None:
    Counting.hits.clear()
    Counting.target = f"http://localhost:{sentinel}/secret"
    limits = ImageLimits(url_hosts=("127.0.0.1",))
    with pytest.raises(InvalidRequest) as refused:
        image_bytes(f"http://127.0.0.1:{sentinel}/redirect", limits)
    assert "HTTP 302" in refused.value.message
    assert Counting.hits == ["/redirect"]      # the allowed host only, never /secret


def test_an_allowed_host_is_fetched(sentinel) -> None:
    Counting.hits.clear()
    data = image_bytes(f"http://127.0.0.1:{sentinel}/a.png", ImageLimits(url_hosts=("127.0.0.1",)))
    assert data == b"" and Counting.hits == ["/a.png"]
