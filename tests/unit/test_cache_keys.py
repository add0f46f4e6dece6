"""Keys of the response cache: equal for the same input, options and model revision, and
different when any of them changes; inputs without a stable form have none."""

from __future__ import annotations

import os
from pathlib import Path

from hfserve.backends.placement import Placement
from hfserve.runtime.caching.cache_keys import item_key, prefix, revision
from hfserve.types import Family, ModelSpec, Task


def spec_at(path: Path) -> ModelSpec:
    return ModelSpec(name="m", source=str(path), path=path, architecture="BertModel",
                     model_type="bert", family=Family.ENCODER_ONLY, task=Task.EMBEDDING,
                     tasks=(Task.EMBEDDING,))


def test_options_in_any_order_give_the_same_key() -> None:
    one = prefix("m", "r", Task.EMBEDDING, {"truncate": True, "dimensions": 8})
    two = prefix("m", "r", Task.EMBEDDING, {"dimensions": 8, "truncate": True})
    assert one == two
    assert item_key(one, "hello") == item_key(two, "hello")


def test_every_part_of_the_key_changes_it() -> None:
    base = prefix("m", "r", Task.EMBEDDING, {"dimensions": 8})
    others = [prefix("m2", "r", Task.EMBEDDING, {"dimensions": 8}),
              prefix("m", "r2", Task.EMBEDDING, {"dimensions": 8}),
              prefix("m", "r", Task.TEXT_CLASSIFICATION, {"dimensions": 8}),
              prefix("m", "r", Task.EMBEDDING, {"dimensions": 16})]
    keys = {item_key(p, "hello") for p in [base, *others]}
    assert len(keys) == 5
    assert item_key(base, "hello") != item_key(base, "hello ")
    assert item_key(base, [1, 2]) != item_key(base, "[1, 2]")
    assert item_key(base, ["q", "d"]) != item_key(base, ["q", "d2"])
    assert item_key(base, True) != item_key(base, 1)


def test_bytes_have_a_key_and_objects_do_not() -> None:
    shared = prefix("m", "r", Task.IMAGE_CLASSIFICATION, {})
    assert item_key(shared, b"\x89PNG") == item_key(shared, b"\x89PNG")
    assert item_key(shared, b"\x89PNG") != item_key(shared, b"\x89PNH")
    assert item_key(shared, object()) is None
    assert prefix("m", "r", Task.EMBEDDING, {"x": object()}) is None


def test_the_revision_follows_the_weight_files_and_the_placement(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"0" * 16)
    (tmp_path / "config.json").write_text("{}")
    spec, cpu = spec_at(tmp_path), Placement()
    first = revision(spec, cpu)
    assert first == revision(spec, cpu)
    assert revision(spec, Placement(backend="openvino")) != first
    weights.write_bytes(b"0" * 17)                     # other weights
    assert revision(spec, cpu) != first
    sized = revision(spec, cpu)
    os.utime(weights, (1_000_000, 1_000_000))          # same size, touched
    assert revision(spec, cpu) != sized


def test_a_model_whose_files_are_gone_has_no_revision(tmp_path: Path) -> None:
    assert revision(spec_at(tmp_path / "missing"), Placement()) is None
