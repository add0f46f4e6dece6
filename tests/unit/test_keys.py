"""API keys: hashing, the rules a key must meet, key entries in the settings, the ring."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from hfserve.access_config import KeyConfig
from hfserve.config import Settings
from hfserve.security import hashing
from hfserve.security.keys import KeyRing

GOOD = "Zq8-rT2vLm9xW4pK7sB1"


def test_a_hash_verifies_its_key_only() -> None:
    hashed = hashing.hash_key(GOOD)
    assert hashed.startswith("scrypt$16384$8$1$") and GOOD not in hashed
    assert hashing.verify(GOOD.encode(), hashed)
    assert not hashing.verify(b"Zq8-rT2vLm9xW4pK7sB2", hashed)
    assert hashing.hash_key(GOOD) != hashed                     # salted


@pytest.mark.parametrize("text", ["bcrypt$x", "scrypt$3$8$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
                                  "scrypt$16384$8$1$!!$??", ""])
def test_a_malformed_hash_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        hashing.parse_hash(text)


@pytest.mark.parametrize(("key", "why"), [
    ("", "empty"), ("   ", "empty"), ("short-key", "at least 16"),
    ("changeme-changeme-123", "placeholder"), ("sk-xxxxxxxxxxxxxxxxxxxxxxxx", "placeholder"),
    ("your-api-key-goes-here", "placeholder"), ("<YOUR_API_KEY_HERE_PLEASE>", "placeholder"),
    ("aaaaaaaaaaaaaaaaaaaa", "placeholder"), (" " + GOOD, "whitespace")])
def test_weak_keys_are_refused_with_the_reason(key: str, why: str) -> None:
    assert why in (hashing.weakness(key) or "")


def test_a_random_key_is_accepted() -> None:
    assert hashing.weakness(GOOD) is None


@pytest.mark.parametrize("key", ["", "changeme", "sk-xxx", "your-api-key", "tooshort"])
def test_settings_refuse_weak_keys_in_every_form(key: str) -> None:
    with pytest.raises(ValidationError, match="API key"):
        Settings(api_key=key)
    with pytest.raises(ValidationError, match="API key"):
        Settings(keys=[{"id": "a", "key": key}])


def test_a_plain_key_is_hashed_at_load_and_not_kept() -> None:
    s = Settings(keys=[{"id": "alice", "key": GOOD, "scopes": ["inference"],
                        "models": ["emb"], "rpm": 5}])
    entry = s.keys[0]
    assert entry.key is None and hashing.verify(GOOD.encode(), entry.hash)
    assert GOOD not in repr(s) and GOOD not in s.model_dump_json()
    assert (entry.models, entry.rpm) == (["emb"], 5)


def test_the_single_api_key_is_a_key_with_both_scopes() -> None:
    s = Settings(api_key=GOOD)
    assert s.api_key is None
    assert [(k.id, k.scopes) for k in s.keys] == [("api_key", ["inference", "admin"])]


def test_entries_need_exactly_one_of_key_and_hash_and_unique_ids() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        KeyConfig(id="a")
    with pytest.raises(ValidationError, match="exactly one"):
        KeyConfig(id="a", key=GOOD, hash=hashing.hash_key(GOOD))
    with pytest.raises(ValidationError, match="unique"):
        Settings(keys=[{"id": "a", "key": GOOD}, {"id": "a", "key": GOOD + "x"}])
    with pytest.raises(ValidationError):
        KeyConfig(id="a", key=GOOD, scopes=["root"])


@pytest.mark.parametrize("form", ["yaml", "json"])
def test_keys_file_adds_its_entries(tmp_path, form: str) -> None:
    entries = [{"id": "ops", "hash": hashing.hash_key(GOOD), "scopes": ["admin"]}]
    path = tmp_path / f"keys.{form}"
    path.write_text(json.dumps(entries) if form == "json" else
                    "keys:\n" + "".join(f"  - id: {e['id']}\n    hash: '{e['hash']}'\n"
                                        "    scopes: [admin]\n" for e in entries))
    s = Settings(keys=[{"id": "app", "key": GOOD + "-app"}], keys_file=path)
    assert [k.id for k in s.keys] == ["app", "ops"]
    assert s.keys[1].scopes == ["admin"]


def test_the_ring_finds_the_entry_and_remembers_both_answers() -> None:
    s = Settings(keys=[{"id": "a", "key": GOOD}, {"id": "b", "key": GOOD + "-b",
                                                   "scopes": ["admin"]}])
    ring = KeyRing(s.keys)
    assert ring.remembered((GOOD + "-b").encode()) is None
    caller = ring.verify((GOOD + "-b").encode())
    assert caller.id == "b" and caller.may("admin") and not caller.may("inference")
    assert ring.remembered((GOOD + "-b").encode()) is caller
    assert ring.verify(b"not-a-key-of-this-server") is None
    assert ring.refused_before(b"not-a-key-of-this-server")
    assert not ring.refused_before(GOOD.encode())
