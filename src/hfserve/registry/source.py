"""Resolve what a user points at (a folder, a .gguf file, a HuggingFace cache id) to a local
folder plus the model's raw config (config.json, a diffusers pipeline's model_index.json, or
GGUF metadata), without touching the network."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfserve.errors import ModelNotFound
from hfserve.registry.gguf_header import check_gguf
from hfserve.registry.pipeline import PIPELINE_INDEX


@dataclass(frozen=True)
class LocalSource:
    path: Path
    gguf_file: str | None
    config: dict[str, Any]
    sentence_transformers: bool


def _gguf_config(folder: Path, gguf_file: str, trust_remote_code: bool) -> dict[str, Any]:
    from transformers import AutoConfig

    check_gguf(folder / gguf_file)
    return AutoConfig.from_pretrained(str(folder), gguf_file=gguf_file,
                                      trust_remote_code=trust_remote_code).to_dict()


def _from_cache(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError) as exc:
        raise ModelNotFound(f"model source {repo_id!r} is neither a local path nor in the "
                            "HuggingFace cache", param="model") from exc


def _single_gguf(folder: Path) -> str | None:
    files = sorted(p.name for p in folder.glob("*.gguf"))
    return files[0] if len(files) == 1 else None


def resolve(source: str, gguf_file: str | None = None,
            trust_remote_code: bool = False) -> LocalSource:
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        path, gguf_file = path.parent, path.name
    elif not path.exists():
        if source.startswith((".", "/", "~")) or source.count("/") > 1:
            raise ModelNotFound(f"model path {source!r} does not exist", param="model")
        path = _from_cache(source)
    if not path.is_dir():
        raise ModelNotFound(f"model source {source!r} is not a model folder", param="model")
    config_file = path / "config.json"
    if not config_file.is_file() and (path / PIPELINE_INDEX).is_file():
        config_file = path / PIPELINE_INDEX     # a diffusers pipeline: its index
    if gguf_file is None and not config_file.is_file():
        gguf_file = _single_gguf(path)
    if gguf_file is not None:
        if not (path / gguf_file).is_file():
            raise ModelNotFound(f"no GGUF file {gguf_file!r} in {path.name!r}", param="model")
        config = _gguf_config(path, gguf_file, trust_remote_code)
    elif config_file.is_file():
        config = json.loads(config_file.read_text())
    else:
        raise ModelNotFound(f"no config.json, {PIPELINE_INDEX} or single .gguf file in "
                            f"{path.name!r}",
                            param="model")
    return LocalSource(path=path.resolve(), gguf_file=gguf_file, config=config,
                       sentence_transformers=(path / "modules.json").is_file())
