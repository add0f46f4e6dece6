"""Cache-Control as the routes read it: no-cache and no-store bypass the response cache."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from hfserve.api.cache_control import use_cache


def request_with(*values: str) -> Request:
    headers = [(b"cache-control", v.encode()) for v in values]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


@pytest.mark.parametrize("values", [(), ("max-age=0",), ("private, max-age=60",)])
def test_other_directives_use_the_cache(values: tuple[str, ...]) -> None:
    assert use_cache(request_with(*values))


@pytest.mark.parametrize("values", [("no-cache",), ("No-Store",), ("max-age=0, no-cache",),
                                    ("private", "no-store")])
def test_no_cache_and_no_store_bypass_it(values: tuple[str, ...]) -> None:
    assert not use_cache(request_with(*values))
