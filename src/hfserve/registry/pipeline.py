"""Diffusers pipelines on disk: a folder whose ``model_index.json`` names the pipeline class
and, for each component (unet, vae, text_encoder...), the subfolder holding it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PIPELINE_INDEX = "model_index.json"


def is_pipeline(folder: Path) -> bool:
    return (Path(folder) / PIPELINE_INDEX).is_file()


def is_pipeline_config(config: dict[str, Any]) -> bool:
    """Whether a raw config is a pipeline's index (diffusers writes both keys)."""
    return "_class_name" in config and "_diffusers_version" in config


def component_folders(folder: Path) -> list[Path]:
    """The pipeline's own folder and each component's subfolder, where the files are."""
    folder = Path(folder)
    if not is_pipeline(folder):
        return [folder]
    return [folder, *sorted(p for p in folder.iterdir() if p.is_dir()
                            and not p.name.startswith("."))]
