"""Model discovery in folders and in a (fake, on-disk) HuggingFace cache, and resolving a cache
id to its snapshot folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfserve.registry import discovery
from hfserve.registry.source import resolve

CONFIG = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 8,
          "num_hidden_layers": 1, "vocab_size": 50, "max_position_embeddings": 32}


def fake_cache_repo(cache: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """Lay out a repo the way huggingface_hub does: blobs, a snapshot of links, refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for i, (name, data) in enumerate(files.items()):
        blob = repo / "blobs" / f"{i:040x}"
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("../..") / "blobs" / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_scan_folders_finds_model_folders_and_loose_gguf_files(tmp_path: Path) -> None:
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "llama.Q4.gguf").write_bytes(b"GGUF")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    found = discovery.scan_folders([tmp_path])
    assert sorted(m.served_name for m in found) == ["bert", "llama.Q4"]


def test_scan_folders_takes_a_model_folder_itself(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    found = discovery.scan_folders([tmp_path])
    assert [m.source for m in found] == [str(tmp_path)]


def test_scan_hf_cache_lists_model_repos_with_a_config(hf_cache: Path) -> None:
    fake_cache_repo(hf_cache, "org/tiny-bert", {"config.json": json.dumps(CONFIG).encode()})
    fake_cache_repo(hf_cache, "org/no-config", {"README.md": b"hello"})
    found = discovery.scan_hf_cache()
    assert [m.served_name for m in found] == ["org/tiny-bert"]


def test_scan_hf_cache_without_a_cache_is_empty(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "missing"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "missing"))
    assert discovery.scan_hf_cache() == []


def test_resolve_a_cache_id_to_its_snapshot(hf_cache: Path) -> None:
    snapshot = fake_cache_repo(hf_cache, "org/tiny-bert",
                               {"config.json": json.dumps(CONFIG).encode()})
    local = resolve("org/tiny-bert")
    assert local.path == snapshot.resolve()
    assert local.config["model_type"] == "bert"
    assert local.gguf_file is None
