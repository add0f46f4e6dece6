"""Checks on client input that every layer shares (no HTTP, no model imports)."""

from __future__ import annotations

from hfserve.errors import InvalidRequest


def require_unicode(text: str, param: str) -> str:
    """``text`` unchanged, or a 400 when it holds a lone surrogate: JSON can spell one
    (``"\\ud800"``), Python keeps it in a str, and no tokenizer can encode it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(f"{param} holds a lone surrogate ({text[exc.start]!a}), which "
                             "is not valid Unicode text", param=param) from None
    return text
