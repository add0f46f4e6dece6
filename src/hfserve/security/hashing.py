"""API key secrets: salted scrypt hashes (what a config file may hold instead of the key),
their constant-time check, and the rules a key must meet to be accepted at all."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

SCHEME = "scrypt"
# scrypt's interactive-login cost (2^14, 8, 1): ~50 ms here. A key is hashed once at load
# and checked once per distinct key presented (KeyRing caches what it verified).
N, R, P, LENGTH = 2**14, 8, 1, 32
MIN_LENGTH = 16

# Values copied from examples and templates, never meant as a real key.
_PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "your-api-key", "your_api_key",
                      "yourapikey", "your-key", "your_key", "api-key-here", "placeholder",
                      "replaceme", "replace-me", "replace_me", "insert-key", "example-key",
                      "secret-key-here", "sk-xxx", "xxxxxxxx", "00000000", "12345678")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_key(key: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$digest`` for ``key`` (a new random salt unless given)."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, n=N, r=R, p=P, dklen=LENGTH)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def parse_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    """The parameters, salt and digest of a hash string; ValueError if it is not one."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError("not a key hash (expected scrypt$n$r$p$salt$digest, as "
                         "`hfserve hash-key` prints)")
    try:
        n, r, p = (int(v) for v in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise ValueError(f"malformed key hash: {exc}") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or len(salt) < 8 or len(digest) < 16:
        raise ValueError("key hash parameters out of range")
    return n, r, p, salt, digest


def verify(presented: bytes, hashed: str) -> bool:
    """Whether ``presented`` is the key ``hashed`` was made from (constant-time compare)."""
    n, r, p, salt, digest = parse_hash(hashed)
    got = hashlib.scrypt(presented, salt=salt, n=n, r=r, p=p, dklen=len(digest),
                         maxmem=256 * n * r * p + 2**20)
    return hmac.compare_digest(got, digest)


def weakness(key: str) -> str | None:
    """Why ``key`` may not be used as an API key, or None when it may."""
    if not key or not key.strip():
        return "an API key must not be empty"
    if key != key.strip():
        return "an API key must not start or end with whitespace"
    if len(key) < MIN_LENGTH:
        return f"an API key must have at least {MIN_LENGTH} characters (this one has {len(key)})"
    lowered = key.lower()
    if (any(word in lowered for word in _PLACEHOLDER_WORDS) or len(set(lowered)) <= 2
            or re.fullmatch(r"<.*>|\$\{.*\}|\{\{.*\}\}", lowered)):
        return "this API key looks like a placeholder from an example; use a random one " \
               "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    return None
