"""Find models to serve in configured folders and in the HuggingFace cache."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hfserve.model_config import ModelConfig
from hfserve.registry.pipeline import PIPELINE_INDEX


def has_config(path: Path) -> bool:
    """config.json, or a diffusers pipeline's index."""
    return (path / "config.json").is_file() or (path / PIPELINE_INDEX).is_file()


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (has_config(path) or any(path.glob("*.gguf")))


def scan_folders(folders: Iterable[Path]) -> list[ModelConfig]:
    """Each model subfolder (or a folder that is itself a model) and each loose .gguf file."""
    found: list[ModelConfig] = []
    for folder in folders:
        folder = Path(folder).expanduser()
        if is_model_folder(folder) and has_config(folder):
            found.append(ModelConfig(source=str(folder), discovered=True))
            continue
        for child in sorted(folder.iterdir()) if folder.is_dir() else []:
            if child.suffix == ".gguf" and child.is_file():
                found.append(ModelConfig(source=str(child), discovered=True))
            elif is_model_folder(child):
                found.append(ModelConfig(source=str(child), name=child.name, discovered=True))
    return found


def scan_hf_cache(cache_dir: Path | None = None) -> list[ModelConfig]:
    """Every cached model repository that has a config.json, a pipeline index or a GGUF
    file."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir(cache_dir or constants.HF_HUB_CACHE)
    except CacheNotFound:
        return []
    found = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        files = {f.file_name for rev in repo.revisions for f in rev.files}
        if {"config.json", PIPELINE_INDEX} & files or any(name.endswith(".gguf") for name in files):
            found.append(ModelConfig(source=repo.repo_id, name=repo.repo_id, discovered=True))
    return found
