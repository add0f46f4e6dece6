"""The configured API keys as one ring: which entry a presented key is, checked against
every entry's salted hash in constant time, with what was already verified remembered (a
client sends the same key with every request; scrypt runs once per distinct key)."""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass

from hfserve.access_config import KeyConfig
from hfserve.security import hashing

ADMIN, INFERENCE = "admin", "inference"
_REMEMBERED_MISSES = 4096


@dataclass(frozen=True)
class Caller:
    """Who a request comes from, as the rest of the server sees it: never the key itself."""

    id: str
    scopes: frozenset[str]
    models: frozenset[str] | None = None      # None: every model
    rpm: int | None = None
    tpm: int | None = None

    def may(self, scope: str) -> bool:
        return scope in self.scopes


ANONYMOUS = Caller("anonymous", frozenset({INFERENCE, ADMIN}))


class KeyRing:
    def __init__(self, entries: list[KeyConfig]) -> None:
        self._entries = [(e.hash or "", Caller(e.id, frozenset(e.scopes),
                                               frozenset(e.models) if e.models is not None
                                               else None, e.rpm, e.tpm)) for e in entries]
        self._known: dict[bytes, tuple[bytes, Caller]] = {}
        self._misses: OrderedDict[bytes, None] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._entries)

    def remembered(self, presented: bytes) -> Caller | None:
        """The caller of a key verified before (no scrypt), else None."""
        fingerprint = hashlib.sha256(presented).digest()
        hit = self._known.get(fingerprint)
        return hit[1] if hit is not None and hmac.compare_digest(hit[0], fingerprint) else None

    def refused_before(self, presented: bytes) -> bool:
        """Whether this key was refused lately (answered without running scrypt again)."""
        return hashlib.sha256(presented).digest() in self._misses

    def verify(self, presented: bytes) -> Caller | None:
        """The caller ``presented`` is the key of, or None. Slow on purpose (scrypt per
        entry): run it off the event loop."""
        fingerprint = hashlib.sha256(presented).digest()
        found = None
        for hashed, caller in self._entries:   # every entry, whichever matches
            if hashing.verify(presented, hashed) and found is None:
                found = caller
        if found is not None:
            self._known[fingerprint] = (fingerprint, found)
        else:
            self._misses[fingerprint] = None
            while len(self._misses) > _REMEMBERED_MISSES:
                self._misses.popitem(last=False)
        return found
