"""publish: a cache folder appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfserve.backends.export_cache import cached_or_built, is_complete, publish


def write(staging: Path) -> None:
    staging.mkdir()
    (staging / "weights").write_text("w")


def test_published_folder_is_complete_and_nothing_is_left_aside(tmp_path: Path) -> None:
    folder = tmp_path / "torch" / "model-1234"
    assert publish(folder, write)
    assert is_complete(folder) and (folder / "weights").read_text() == "w"
    assert [p.name for p in folder.parent.iterdir()] == ["model-1234"]


def test_what_the_check_rejects_is_not_kept(tmp_path: Path) -> None:
    folder = tmp_path / "tokenizer" / "t-1"
    assert not publish(folder, write, check=lambda staging: False)
    assert not folder.exists() and list(folder.parent.iterdir()) == []


@pytest.mark.parametrize("error", [OSError("disk full"),
                                   ValueError("the model is quantized and not serializable")])
def test_a_failing_write_leaves_nothing_and_raises_nothing(tmp_path: Path,
                                                           error: Exception) -> None:
    def broken(staging: Path) -> None:
        write(staging)
        raise error

    folder = tmp_path / "torch" / "m"
    assert not publish(folder, broken)
    assert list(folder.parent.iterdir()) == []


def test_the_first_writer_wins(tmp_path: Path) -> None:
    folder = tmp_path / "torch" / "m"
    assert publish(folder, write)
    assert not publish(folder, lambda staging: (staging.mkdir(), (staging / "other").touch()))
    assert sorted(p.name for p in folder.iterdir()) == [".complete", "weights"]


def test_cached_or_built_builds_once_then_reads_and_rebuilds_a_damaged_copy(
        tmp_path: Path) -> None:
    folder = tmp_path / "torch" / "m"
    built: list[str] = []

    def build() -> str:
        built.append("built")
        return "weights"

    def read(f: Path) -> str:
        return (f / "weights").read_text()

    def store(made: str, staging: Path) -> None:
        staging.mkdir()
        (staging / "weights").write_text(made)

    assert cached_or_built(folder, read, build, store) == "weights"
    assert cached_or_built(folder, read, build, store) == "weights"
    assert built == ["built"]                           # the second came from the cache
    (folder / "weights").unlink()                       # damaged: read fails
    assert cached_or_built(folder, read, build, store) == "weights"
    assert built == ["built", "built"] and read(folder) == "weights"
    assert cached_or_built(tmp_path / "t", read, build, store,
                           check=lambda made, staging: False) == "weights"
    assert not (tmp_path / "t").exists()               # rejected: not kept
